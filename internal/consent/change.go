package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// Sentinel errors, tested with errors.Is. Every refusal is an *Error that
// wraps one of them, or catalog.ErrNoManifest for a device whose type has
// no manifest in force, and names the field at fault.
var (
	ErrUnknownDevice    = errors.New("unknown device")
	ErrUnknownStream    = errors.New("unknown stream")
	ErrUnknownPurpose   = errors.New("unknown purpose")
	ErrUnknownRecipient = errors.New("unknown recipient")
	ErrRetentionTooLong = errors.New("retention longer than the manifest allows")
	ErrInvalid          = errors.New("invalid value")
	ErrUnknownRecord    = errors.New("unknown consent record")
)

// Error is a refused consent call. Nothing was changed.
type Error struct {
	Field string   // account_id, device_id, stream, purpose, recipient, retention or record_id
	Value string   // the value given
	Valid []string // the values that would have been accepted, when few
	Err   error    // one of the sentinel errors
	Msg   string   // plain-language explanation
}

func (e *Error) Error() string { return "consent: " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Change switches one use of a stream on or off.
type Change struct {
	AccountID string // who decides (the caller checks they may)
	DeviceID  string
	Stream    string
	// Purpose is the purpose term as in the manifest
	// ("dpv:ResearchAndDevelopment"); its full IRI is accepted too.
	Purpose string
	// Recipient is RecipientHub or the name of one of the stream's
	// recipients; for an external recipient Purpose must be that
	// recipient's purpose.
	Recipient string
	On        bool
}

// StreamRouting is where a stream's data goes on the hub.
type StreamRouting struct {
	KeepOnHub bool `json:"keep_on_hub"`
	// Retention is how long the hub keeps it; the zero Duration means the
	// longest the manifest allows. Build it with manifest.ParseDuration.
	Retention manifest.Duration `json:"retention"`
}

// Set records a decision and enforces it: when Set returns nil, Allowed
// already answers with it. The decision is checked against the manifest in
// force; a refusal is an *Error and changes nothing. The returned Record is
// the one appended to the log (its RecordID gives the receipt).
func (s *Service) Set(ctx context.Context, c Change) (Record, error) {
	c.Purpose = compactTerm(strings.TrimSpace(c.Purpose))
	if err := checkAccount(c.AccountID); err != nil {
		return Record{}, err
	}
	e, err := s.resolve(ctx, c.DeviceID)
	if err != nil {
		return Record{}, err
	}
	st, err := findStream(e, c.DeviceID, c.Stream)
	if err != nil {
		return Record{}, err
	}
	purpose, recipient, err := findUse(st, c.DeviceID, c.Purpose, c.Recipient)
	if err != nil {
		return Record{}, err
	}

	var rec Record
	err = s.mutate(func() ([]notice, error) {
		old, cur, err := s.currentLocked(ctx, c.DeviceID, e)
		if err != nil {
			return nil, err
		}
		wasOn, _ := cur.useOn(st, purpose.ID, c.Recipient)
		rec = s.newRecord(KindConsent, status(c.On, wasOn), c.AccountID, c.DeviceID, e, st)
		rec.Purposes = []RecordPurpose{recordPurpose(purpose)}
		switch {
		case recipient == nil && IsLearningPurpose(purpose.ID):
			// A learning use collects and keeps nothing of its own: it
			// is a use of what the stream's purposes collect.
			keep, retention := cur.route(st)
			rec.Recipient = s.hubRecipient()
			rec.Processing = []string{ProcessUse}
			rec.Storage = hubStorage(keep, retention, st)
		case recipient == nil:
			keep, retention := cur.route(st)
			rec.Recipient = s.hubRecipient()
			rec.Processing = []string{ProcessCollect, ProcessStore, ProcessUse}
			rec.Storage = hubStorage(keep, retention, st)
		default:
			rec.Recipient = RecordRecipient{Name: recipient.Name, Role: IRI(recipient.Role),
				Identifiable: recipient.Identifiable, Contact: recipient.Contact, Terms: recipient.Terms}
			rec.Processing = []string{ProcessCollect, ProcessShare}
			rec.Storage = RecordStorage{Location: StoredByRecipient, Duration: recipient.Retention.Text}
		}
		doc, err := encodeRecord(&rec)
		if err != nil {
			return nil, fmt.Errorf("consent: encode record: %w", err)
		}
		srec := s.storeRecord(&rec, c.Stream, purpose.ID, c.Recipient, doc)
		d := store.ConsentDecision{DeviceID: c.DeviceID, Stream: c.Stream, Purpose: purpose.ID, Recipient: c.Recipient, On: c.On,
			AccountID: c.AccountID, RecordID: rec.RecordID, DecidedAt: rec.Timestamp}
		if err := s.st.RecordConsentDecision(ctx, srec, d); err != nil {
			return nil, fmt.Errorf("consent: store decision: %w", err)
		}
		explicit := cloneMap(cur.explicit)
		explicit[useKey{c.Stream, purpose.ID, c.Recipient}] = d
		next := buildTable(c.DeviceID, e, cur.base, explicit, cur.routing)
		s.publishLocked([]*deviceTable{next}, nil)
		return diff(old, next, c.Stream), nil
	})
	if err != nil {
		return Record{}, err
	}
	s.record(ctx, rec)
	s.closeRequests(ctx, c.DeviceID, c.Stream, purpose.ID, c.Recipient)
	return rec, nil
}

// SetRouting records where a stream's data goes on the hub and for how
// long, like Set: checked against the manifest (a retention longer than the
// stream's candor:retention is refused), stored with a record, in force
// when it returns.
func (s *Service) SetRouting(ctx context.Context, accountID, deviceID, stream string, r StreamRouting) (Record, error) {
	if err := checkAccount(accountID); err != nil {
		return Record{}, err
	}
	e, err := s.resolve(ctx, deviceID)
	if err != nil {
		return Record{}, err
	}
	st, err := findStream(e, deviceID, stream)
	if err != nil {
		return Record{}, err
	}
	retention, err := checkRetention(st, deviceID, r.Retention)
	if err != nil {
		return Record{}, err
	}

	var rec Record
	err = s.mutate(func() ([]notice, error) {
		old, cur, err := s.currentLocked(ctx, deviceID, e)
		if err != nil {
			return nil, err
		}
		wasKept, _ := cur.route(st)
		rec = s.newRecord(KindStorage, status(r.KeepOnHub, wasKept), accountID, deviceID, e, st)
		rec.Purposes = make([]RecordPurpose, 0, len(st.Purposes))
		for _, p := range st.Purposes {
			rec.Purposes = append(rec.Purposes, recordPurpose(p))
		}
		rec.Recipient = s.hubRecipient()
		rec.Processing = []string{ProcessStore}
		effective := st.Retention
		if !retention.IsZero() {
			effective = retention
		}
		rec.Storage = hubStorage(r.KeepOnHub, effective, st)
		doc, err := encodeRecord(&rec)
		if err != nil {
			return nil, fmt.Errorf("consent: encode record: %w", err)
		}
		srec := s.storeRecord(&rec, stream, "", RecipientHub, doc)
		sr := store.ConsentRouting{DeviceID: deviceID, Stream: stream, KeepOnHub: r.KeepOnHub, Retention: retention.Text,
			AccountID: accountID, RecordID: rec.RecordID, DecidedAt: rec.Timestamp}
		if err := s.st.RecordConsentRouting(ctx, srec, sr); err != nil {
			return nil, fmt.Errorf("consent: store routing: %w", err)
		}
		routing := cloneMap(cur.routing)
		routing[stream] = sr
		next := buildTable(deviceID, e, cur.base, cur.explicit, routing)
		s.publishLocked([]*deviceTable{next}, nil)
		return diff(old, next, stream), nil
	})
	if err != nil {
		return Record{}, err
	}
	s.record(ctx, rec)
	return rec, nil
}

// record puts a decision in the transparency log, whichever front end it
// came through, in one shape: ids only (device, stream, record), the
// person deciding as the actor (from ctx). The decision is already in
// force and its signed record stored, so a failure is reported in the
// hub's log instead of undoing the person's choice.
func (s *Service) record(ctx context.Context, rec Record) {
	if s.audit == nil {
		return
	}
	d, err := s.st.Device(ctx, rec.Device.ID)
	if err == nil {
		ev := auditlog.Event{Action: auditlog.ActionConsentChange, Household: d.HouseholdID,
			Subject: auditlog.Subject{Device: d.ID, Stream: rec.Stream.Name}, Purpose: "consent choice",
			Detail: map[string]string{"record": rec.RecordID, "kind": rec.Kind}}
		err = s.audit.Record(ctx, ev)
	}
	if err != nil {
		s.log.Error("consent change not recorded in the transparency log", "record", rec.RecordID, "device", rec.Device.ID, "err", err)
	}
}

func (s *Service) newRecord(kind, event, accountID, deviceID string, e *catalog.Entry, st *manifest.Stream) Record {
	pd := iris(st.PersonalData)
	return Record{
		SchemaVersion: SchemaVersion,
		RecordID:      newRecordID(),
		Timestamp:     s.now().UTC().Truncate(time.Millisecond),
		Kind:          kind,
		Event:         event,
		ConsentType:   ConsentExpressed,
		LegalBasis:    LegalBasis,
		DataSubject:   Subject{ID: accountID},
		Controller:    s.controllerNow(),
		Device:        RecordDevice{ID: deviceID, Type: e.Manifest.DeviceType},
		Stream:        RecordStream{Name: st.Name, Title: st.Title},
		PersonalData:  pd,
		Notice:        noticeOf(e),
		Jurisdiction:  s.jurisdiction,
	}
}

func (s *Service) hubRecipient() RecordRecipient {
	return RecordRecipient{Name: RecipientHub, Role: RoleController, Contact: s.controllerNow().Contact}
}

// controllerNow is the hub's operator as the settings name them now.
func (s *Service) controllerNow() Party {
	c := s.controller
	if s.operator == nil {
		return c
	}
	o := s.operator()
	if o.Name != "" {
		c.Name = o.Name
	}
	if o.Contact != "" {
		c.Contact = o.Contact
	}
	return c
}

func hubStorage(keep bool, retention manifest.Duration, st *manifest.Stream) RecordStorage {
	if !keep {
		return RecordStorage{Location: StoredNowhere, MaxDuration: st.Retention.Text}
	}
	return RecordStorage{Location: StoredOnHub, Duration: retention.Text, MaxDuration: st.Retention.Text}
}

func (s *Service) storeRecord(rec *Record, stream, purpose, recipient string, doc []byte) store.ConsentRecord {
	return store.ConsentRecord{
		ID:        rec.RecordID,
		AccountID: rec.DataSubject.ID,
		DeviceID:  rec.Device.ID,
		Stream:    stream,
		Purpose:   purpose,
		Recipient: recipient,
		CreatedAt: rec.Timestamp,
		Doc:       doc,
	}
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func checkAccount(id string) error {
	if strings.TrimSpace(id) == "" {
		return &Error{Field: "account_id", Err: ErrInvalid, Msg: "no account given: every decision is made by someone"}
	}
	return nil
}

func findStream(e *catalog.Entry, deviceID, name string) (*manifest.Stream, error) {
	if st := e.Manifest.Stream(name); st != nil {
		return st, nil
	}
	names := e.Manifest.StreamNames()
	return nil, &Error{Field: "stream", Value: name, Valid: names, Err: ErrUnknownStream,
		Msg: fmt.Sprintf("unknown stream %q: the %s manifest (version %d) of device %q declares %s",
			name, e.Manifest.DeviceType, e.Version, deviceID, quoteList(names))}
}

// findUse checks that the stream has the purpose for the recipient and
// returns both (recipient nil: the hub).
func findUse(st *manifest.Stream, deviceID, purpose, recipient string) (manifest.Purpose, *manifest.Recipient, error) {
	if recipient == RecipientHub && IsLearningPurpose(purpose) {
		if marked(st, purpose) {
			return learningPurpose(purpose), nil, nil
		}
		return manifest.Purpose{}, nil, &Error{Field: "purpose", Value: purpose, Err: ErrUnknownPurpose,
			Msg: fmt.Sprintf("stream %q of device %q is not marked for %s in its manifest, so there is no such use to switch",
				st.Name, deviceID, manifest.PurposeWords(purpose))}
	}
	if recipient == RecipientHub {
		for _, p := range st.Purposes {
			if p.ID == purpose {
				return p, nil, nil
			}
		}
		var ids []string
		for _, p := range st.Purposes {
			ids = appendOnce(ids, p.ID)
		}
		return manifest.Purpose{}, nil, &Error{Field: "purpose", Value: purpose, Valid: ids, Err: ErrUnknownPurpose,
			Msg: fmt.Sprintf("unknown purpose %q for stream %q of device %q: its manifest declares %s",
				purpose, st.Name, deviceID, quoteList(ids))}
	}
	var names, purposes []string
	names = append(names, RecipientHub)
	var found bool
	for i := range st.Recipients {
		r := &st.Recipients[i]
		names = appendOnce(names, r.Name)
		if r.Name != recipient {
			continue
		}
		found = true
		purposes = appendOnce(purposes, r.Purpose)
		if r.Purpose == purpose {
			return recipientPurpose(st, *r), r, nil
		}
	}
	if !found {
		return manifest.Purpose{}, nil, &Error{Field: "recipient", Value: recipient, Valid: names, Err: ErrUnknownRecipient,
			Msg: fmt.Sprintf("unknown recipient %q for stream %q of device %q: it can go to %s",
				recipient, st.Name, deviceID, quoteList(names))}
	}
	return manifest.Purpose{}, nil, &Error{Field: "purpose", Value: purpose, Valid: purposes, Err: ErrUnknownPurpose,
		Msg: fmt.Sprintf("unknown purpose %q for recipient %q of stream %q of device %q: the manifest gives it the stream for %s",
			purpose, recipient, st.Name, deviceID, quoteList(purposes))}
}

// recipientPurpose is the purpose an external recipient gets the stream
// for, with the stream's own words for it when the stream declares it too.
func recipientPurpose(st *manifest.Stream, r manifest.Recipient) manifest.Purpose {
	for _, p := range st.Purposes {
		if p.ID == r.Purpose {
			return p
		}
	}
	return manifest.Purpose{ID: r.Purpose, Description: manifest.PurposeWords(r.Purpose)}
}

// checkRetention validates a chosen retention and returns it re-parsed
// from its text (zero: the manifest's).
func checkRetention(st *manifest.Stream, deviceID string, d manifest.Duration) (manifest.Duration, error) {
	if d.IsZero() {
		if d.D != 0 {
			return manifest.Duration{}, &Error{Field: "retention", Err: ErrInvalid,
				Msg: "give the retention as an ISO 8601 duration such as P30D (see manifest.ParseDuration)"}
		}
		return manifest.Duration{}, nil
	}
	parsed, err := manifest.ParseDuration(d.Text)
	if err != nil {
		return manifest.Duration{}, &Error{Field: "retention", Value: d.Text, Err: ErrInvalid, Msg: "retention: " + err.Error()}
	}
	if parsed.D <= 0 {
		return manifest.Duration{}, &Error{Field: "retention", Value: d.Text, Err: ErrInvalid,
			Msg: fmt.Sprintf("retention %s is zero; to keep nothing, turn off keeping it on this hub", d.Text)}
	}
	if parsed.D > st.Retention.D {
		return manifest.Duration{}, &Error{Field: "retention", Value: d.Text, Valid: []string{st.Retention.Text}, Err: ErrRetentionTooLong,
			Msg: fmt.Sprintf("retention %s (%s) for stream %q of device %q is longer than its manifest allows: %s (%s) at most; shorter is always allowed",
				d.Text, parsed.Human(), st.Name, deviceID, st.Retention.Text, st.Retention.Human())}
	}
	return parsed, nil
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func quoteList(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
