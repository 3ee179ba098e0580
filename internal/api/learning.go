package api

import (
	"errors"
	"net/http"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/store"
)

// learningJSON is one entry of the machine-learning register: a learning
// use of one stream, who decides it and whether the caller does.
type learningJSON struct {
	consent.LearningUse
	Device   string   `json:"device"`
	Deciders deciders `json:"deciders"`
}

// learningRegister lists every stream and use of the household's devices
// that their manifests mark candor:machineLearning or
// candor:automatedDecisions, with the state of its own switch. Every
// member sees it; access.Principal.CanDecide says who may switch.
func (s *Server) learningRegister(w http.ResponseWriter, r *http.Request, p access.Principal) {
	var list []store.Device
	var err error
	if p.Operator && r.URL.Query().Get("household") == "" {
		list, err = s.st.AllDevices(r.Context())
	} else {
		var hh string
		if hh, err = s.householdParam(r, p, r.URL.Query().Get("household")); err == nil {
			list, err = s.st.Devices(r.Context(), hh)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []learningJSON{}
	for _, d := range list {
		if d.Revoked() || p.SeeDevice(d) != nil {
			continue
		}
		uses, err := s.cfg.Consent.Learning(r.Context(), d.ID)
		var ce *consent.Error
		if errors.As(err, &ce) {
			continue // a device whose type has no manifest in force learns nothing the hub knows of
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, u := range uses {
			out = append(out, learningJSON{LearningUse: u, Device: d.Name, Deciders: decidersOf(p, d)})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"learning": out})
}

// setLearning switches one learning use of a stream on or off, alone:
// collection and the stream's other uses stay as they are. It is a
// consent decision (a record with a receipt, logged), in force for the
// next reading; members who do not decide get 403 with who does.
func (s *Server) setLearning(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := decider(p, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Purpose string `json:"purpose"`
		On      *bool  `json:"on"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.On == nil {
		s.fail(w, r, badRequest("on: required, true or false"))
		return
	}
	if !consent.IsLearningPurpose(in.Purpose) {
		s.fail(w, r, badRequest("purpose: %q must be %q or %q; other uses are switched with PUT /api/v1/devices/{id}/consent/{stream}",
			in.Purpose, consent.PurposeMachineLearning, consent.PurposeAutomatedDecisions))
		return
	}
	stream := r.PathValue("stream")
	rec, err := s.cfg.Consent.Set(r.Context(), consent.Change{AccountID: acc, DeviceID: d.ID, Stream: stream,
		Purpose: in.Purpose, Recipient: consent.RecipientHub, On: *in.On})
	if err != nil {
		s.failConsent(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"record": rec, "decision": s.cfg.Consent.Allowed(d.ID, stream)})
}
