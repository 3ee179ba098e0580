package api

import (
	"errors"
	"net/http"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/store"
)

// person returns the account deciding about a household's devices:
// consent is a person's choice, so the local operator (no person) may
// look but not decide (access.Principal.CanDecide).
func person(p access.Principal, householdID string) (string, error) {
	if !p.CanDecide(householdID) {
		return "", errors.Join(identity.ErrForbidden, errors.New("consent is a person's choice: log in as a member of the household"))
	}
	return p.Account.ID, nil
}

// consentState shows every use of every stream of a device, on or off,
// and whether by the person's choice or by default.
func (s *Server) consentState(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.cfg.Consent.State(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// setConsent turns one use (purpose × recipient) of a stream on or off.
// Off is in force from the very next reading.
func (s *Server) setConsent(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := person(p, d.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Purpose   string `json:"purpose"`
		Recipient string `json:"recipient"`
		On        *bool  `json:"on"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.On == nil {
		s.fail(w, r, badRequest("on: required, true or false"))
		return
	}
	if in.Recipient == "" {
		in.Recipient = consent.RecipientHub
	}
	rec, err := s.cfg.Consent.Set(r.Context(), consent.Change{AccountID: acc, DeviceID: d.ID, Stream: r.PathValue("stream"),
		Purpose: in.Purpose, Recipient: in.Recipient, On: *in.On})
	if err != nil {
		s.failConsent(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"record": rec, "decision": s.cfg.Consent.Allowed(d.ID, r.PathValue("stream"))})
}

// setRouting chooses whether a stream is kept on the hub and for how long
// (never longer than its manifest allows).
func (s *Server) setRouting(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := person(p, d.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		KeepOnHub *bool  `json:"keep_on_hub"`
		Retention string `json:"retention,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.KeepOnHub == nil {
		s.fail(w, r, badRequest("keep_on_hub: required, true or false"))
		return
	}
	var ret manifest.Duration
	if in.Retention != "" {
		if ret, err = manifest.ParseDuration(in.Retention); err != nil {
			s.fail(w, r, badRequest("retention: %v", err))
			return
		}
	}
	rec, err := s.cfg.Consent.SetRouting(r.Context(), acc, d.ID, r.PathValue("stream"), consent.StreamRouting{KeepOnHub: *in.KeepOnHub, Retention: ret})
	if err != nil {
		s.failConsent(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"record": rec, "decision": s.cfg.Consent.Allowed(d.ID, r.PathValue("stream"))})
}

func (s *Server) failConsent(w http.ResponseWriter, r *http.Request, err error) {
	var ce *consent.Error
	if errors.As(err, &ce) {
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid-consent", ce.Error())
		return
	}
	s.fail(w, r, err)
}

// consentRecords lists the consent records about a device (?device=) or
// made by the caller.
func (s *Server) consentRecords(w http.ResponseWriter, r *http.Request, p access.Principal) {
	q := consent.HistoryQuery{}
	if dev := r.URL.Query().Get("device"); dev != "" {
		r.SetPathValue("id", dev)
		d, err := s.device(r, p)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		q.DeviceID = d.ID
	} else {
		acc, err := person(p, p.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		q.AccountID = acc
	}
	recs, err := s.cfg.Consent.History(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if recs == nil {
		recs = []consent.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs})
}

// consentReceipt serves a record as a receipt signed by the hub.
func (s *Server) consentReceipt(w http.ResponseWriter, r *http.Request, p access.Principal) {
	rec, err := s.cfg.Consent.Record(r.Context(), r.PathValue("id"))
	if err != nil {
		if errors.Is(err, consent.ErrUnknownRecord) {
			err = errors.Join(store.ErrNotFound, err)
		}
		s.fail(w, r, err)
		return
	}
	r.SetPathValue("id", rec.Device.ID)
	if _, err := s.device(r, p); err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.cfg.Consent.Receipt(r.Context(), rec.RecordID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="consent-receipt-`+rec.RecordID+`.json"`)
	_, _ = w.Write(b)
}

// consentKey serves the public key receipts are signed with.
func (s *Server) consentKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(signkey.MarshalPublicKey(s.cfg.Consent.PublicKey()))
}
