package api

import (
	"errors"
	"net/http"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/store"
)

// decider returns the account making a consent choice about d: the
// person whose keys seal its readings, or an owner for a shared device
// (access.Principal.Decide says why anyone else may not).
func decider(p access.Principal, d store.Device) (string, error) {
	if err := p.Decide(d); err != nil {
		return "", err
	}
	return p.Account.ID, nil
}

// deciders is who makes a device's consent choices, and whether the
// caller is one of them, as consentState shows it.
type deciders struct {
	Person    string `json:"person,omitempty"`
	Owners    bool   `json:"owners"`
	YouDecide bool   `json:"you_decide"`
	Explained string `json:"explained"`
}

func decidersOf(p access.Principal, d store.Device) deciders {
	person, owners := access.Deciders(d)
	out := deciders{Person: person, Owners: owners, YouDecide: p.CanDecide(d)}
	switch {
	case out.YouDecide:
		out.Explained = "You decide for this device."
	case owners:
		out.Explained = "The owners of the household decide for this shared device. You can ask them with POST /api/v1/devices/{id}/consent/requests."
	default:
		out.Explained = "The person whose keys seal this device's readings decides for it (account " + person + "). You can ask them with POST /api/v1/devices/{id}/consent/requests."
	}
	return out
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
	changes, err := s.cfg.Consent.Pending(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if changes == nil {
		changes = []consent.PendingChange{}
	}
	// Changes are what a newer manifest version asks beyond what was
	// agreed: each waits for a yes or no (PUT consent or routing).
	writeJSON(w, http.StatusOK, struct {
		consent.DeviceState
		Deciders deciders                `json:"deciders"`
		Changes  []consent.PendingChange `json:"changes"`
	}{st, decidersOf(p, d), changes})
}

// askConsent stores a request that whoever decides for a device turn one
// use of a stream on or off; it is listed to them until they choose.
func (s *Server) askConsent(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if p.Operator {
		s.fail(w, r, access.ErrNotYourChoice.Errorf("a request is a person's: log in as a member of the household"))
		return
	}
	var in struct {
		Stream    string `json:"stream"`
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
	req, err := s.cfg.Consent.Ask(r.Context(), consent.Change{AccountID: p.Account.ID, DeviceID: d.ID, Stream: in.Stream,
		Purpose: in.Purpose, Recipient: in.Recipient, On: *in.On})
	if err != nil {
		s.failConsent(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"request": requestJSON(req)})
}

// consentRequests lists the open requests the caller decides: about the
// devices sealed under their keys and, for an owner, the shared ones.
func (s *Server) consentRequests(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, access.ErrNotYourChoice.Errorf("requests go to people who decide: log in as one"))
		return
	}
	list, err := s.cfg.Consent.Requests(r.Context(), p.Account.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, req := range list {
		d, err := s.st.Device(r.Context(), req.DeviceID)
		if err != nil || !p.CanDecide(d) {
			continue
		}
		out = append(out, requestJSON(req))
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
}

func requestJSON(r store.ConsentRequest) map[string]any {
	return map[string]any{"id": r.ID, "device_id": r.DeviceID, "asked_by": r.AccountID, "stream": r.Stream,
		"purpose": r.Purpose, "recipient": r.Recipient, "on": r.On, "created_at": r.CreatedAt}
}

// setConsent turns one use (purpose × recipient) of a stream on or off.
// Off is in force from the very next reading.
func (s *Server) setConsent(w http.ResponseWriter, r *http.Request, p access.Principal) {
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
		Purpose   string `json:"purpose"`
		Recipient string `json:"recipient"`
		On        *bool  `json:"on"`
		// Confirm says the caller has shown the person what will leave
		// (the sharing member of the 409 answer) and they agreed.
		Confirm bool `json:"confirm,omitempty"`
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
	if *in.On && in.Recipient != consent.RecipientHub && !in.Confirm {
		// Data leaves the hub: answer with what would leave, to whom
		// and on what terms, and wait for a request that confirms it.
		sh, err := s.cfg.Consent.Sharing(r.Context(), d.ID, r.PathValue("stream"), in.Purpose, in.Recipient)
		if err != nil {
			s.failConsent(w, r, err)
			return
		}
		if devs, err := s.st.Devices(r.Context(), d.HouseholdID); err == nil {
			names := make(map[string]string, len(devs))
			ids := make([]string, 0, len(devs))
			for _, hd := range devs {
				names[hd.ID] = hd.Name
				ids = append(ids, hd.ID)
			}
			sh.AlreadyGets = s.cfg.Consent.Receiving(r.Context(), names, sh.Recipient)
			sh.Together = s.cfg.Consent.Together(r.Context(), ids, names, d.ID, sh.Stream, sh.Recipient)
		}
		writeProblemDoc(w, r, problem{Type: problemPrefix + "confirm-sharing", Status: http.StatusConflict,
			Detail:  "this sends data out of the hub: show the person what leaves (sharing), then send the request again with \"confirm\": true",
			Sharing: &sh})
		return
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
	acc, err := decider(p, d)
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
		if !p.Member(p.Account.HouseholdID) {
			s.fail(w, r, access.ErrNotYourChoice.Errorf("consent records are a person's: log in as a member of the household, or name a device with ?device="))
			return
		}
		q.AccountID = p.Account.ID
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
