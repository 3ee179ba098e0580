package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
)

// ActorKind says what kind of party did something.
type ActorKind string

// The kinds of actor.
const (
	ActorPerson    ActorKind = "person"    // an account, acting through a login session
	ActorToken     ActorKind = "token"     // an API token (ID is the token's id, never its secret)
	ActorDevice    ActorKind = "device"    // a device, e.g. publishing or being quarantined by its own behaviour
	ActorOperator  ActorKind = "operator"  // whoever holds the local control socket
	ActorHub       ActorKind = "hub"       // the hub itself: retention, policy, recovery
	ActorRecipient ActorKind = "recipient" // a third party that data is forwarded to
)

// Actions the hub records. The list is not closed: any name of two to four
// lower-case dotted parts is accepted, so a new feature can log a new
// action without changing this package, but using these constants keeps
// names consistent for people searching their log.
const (
	ActionReadingsRead     = "readings.read"
	ActionReadingsForward  = "readings.forward"
	ActionReadingsExport   = "readings.export"
	ActionConsentChange    = "consent.change"
	ActionDataDelete       = "data.delete"
	ActionDataShred        = "data.shred" // crypto-shredding: the key was destroyed
	ActionManifestChange   = "manifest.change"
	ActionDeviceCreate     = "device.create"
	ActionDeviceDelete     = "device.delete"
	ActionCredentialCreate = "device.credential.create"
	ActionCredentialRotate = "device.credential.rotate"
	ActionCredentialRevoke = "device.credential.revoke"
	ActionDeviceQuarantine = "device.quarantine"
	ActionSecurityFinding  = "security.finding"
	ActionKeyChange        = "key.change" // a person's key settings: mode, recipient
	ActionKeyRotate        = "key.rotate"
	ActionAccountCreate    = "account.create"
	ActionAccountDelete    = "account.delete"
	ActionAccountRole      = "account.role.change"
	ActionAccountLogin     = "account.login"
	ActionTokenCreate      = "token.create"
	ActionTokenRevoke      = "token.revoke"
	ActionSessionRevoke    = "session.revoke"
	ActionHouseholdCreate  = "household.create"
	ActionAuditExport      = "auditlog.export"
	ActionAuditRecover     = "auditlog.recover" // written by Open after repairing a torn tail
	ActionUpdateOffer      = "update.offer"     // a firmware update offered to a device
	ActionUpdatePostpone   = "update.postpone"  // an owner postponed an update
	ActionUpdatePolicy     = "update.policy"    // automatic security updates switched on or off for a device
	ActionUpdateInstall    = "update.install"   // a device reported an update installed
	ActionUpdateFail       = "update.fail"      // a device reported an update failed
	ActionUpdateRefuse     = "update.refuse"    // the hub refused metadata or an image (signature, freeze, rollback, mismatch, downgrade)
)

// Limits on events. They keep the log about ids and counts: a field that
// needs more room is probably carrying data that belongs in the store, not
// in a public, undeletable log.
const (
	MaxIDLen        = 128
	MaxPurposeLen   = 256
	MaxDetailKeys   = 32
	MaxDetailKeyLen = 64
	MaxDetailValLen = 256
	MaxEventSize    = 16 << 10 // encoded
)

// Actor is who did it.
type Actor struct {
	Kind ActorKind
	// ID is the account, token, device or recipient id. It is required
	// except for the operator and the hub.
	ID string
}

// Subject is which data an event touched: ids, never values.
type Subject struct {
	Device    string
	Stream    string
	Account   string
	Recipient string
	// From and To bound the time range of readings touched (zero: unset).
	From time.Time
	To   time.Time
}

// IsZero reports whether no subject field is set.
func (s Subject) IsZero() bool {
	return s.Device == "" && s.Stream == "" && s.Account == "" && s.Recipient == "" && s.From.IsZero() && s.To.IsZero()
}

// Event is one accountable action: who did what, to which data, why and
// when. Its canonical JSON encoding (MarshalJSON) is the leaf data of the
// Merkle tree, so the same event always hashes the same.
type Event struct {
	// Time is when it happened; Append fills in the current time if zero.
	// It is stored in UTC with nanoseconds.
	Time      time.Time
	Actor     Actor
	Action    string // e.g. "readings.read"; see the Action constants
	Household string // the household whose data or devices it concerns ("" for hub-wide)
	Subject   Subject
	Purpose   string // why, e.g. "dashboard", "forward:energy-coop", "retention"
	// Detail carries further ids and counts (e.g. "readings": "120",
	// "credential": "cred_…"). Never payloads, secrets or readings values.
	Detail map[string]string
}

// ErrInvalidEvent is wrapped by every event validation error.
var ErrInvalidEvent = errors.New("invalid audit event")

// FieldError names the event field that is wrong and why.
type FieldError struct {
	Field  string // e.g. "actor.id", "detail[readings]"
	Reason string
}

func (e *FieldError) Error() string { return "audit event: " + e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidEvent) true.
func (e *FieldError) Unwrap() error { return ErrInvalidEvent }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks an event before it is logged. The error is a *FieldError
// naming the first field at fault.
func (e *Event) Validate() error {
	if err := e.validateFields(); err != nil {
		return err
	}
	return checkSize(len(e.appendCanonical(nil)))
}

func checkSize(n int) error {
	if n > MaxEventSize {
		return fieldErr("event", "encodes to %d bytes, at most %d", n, MaxEventSize)
	}
	return nil
}

func (e *Event) validateFields() error {
	if err := checkTime("time", e.Time, true); err != nil {
		return err
	}
	switch e.Actor.Kind {
	case ActorPerson, ActorToken, ActorDevice, ActorRecipient:
		if e.Actor.ID == "" {
			return fieldErr("actor.id", "required for actor kind %q", e.Actor.Kind)
		}
	case ActorOperator, ActorHub:
	case "":
		return fieldErr("actor.kind", "required")
	default:
		return fieldErr("actor.kind", "unknown kind %q (want person, token, device, operator, hub or recipient)", e.Actor.Kind)
	}
	if err := checkID("actor.id", e.Actor.ID); err != nil {
		return err
	}
	if err := checkAction(e.Action); err != nil {
		return err
	}
	if err := checkID("household", e.Household); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{
		{"subject.device", e.Subject.Device},
		{"subject.stream", e.Subject.Stream},
		{"subject.account", e.Subject.Account},
		{"subject.recipient", e.Subject.Recipient},
	} {
		if err := checkID(f.name, f.v); err != nil {
			return err
		}
	}
	if err := checkTime("subject.from", e.Subject.From, false); err != nil {
		return err
	}
	if err := checkTime("subject.to", e.Subject.To, false); err != nil {
		return err
	}
	if !e.Subject.From.IsZero() && !e.Subject.To.IsZero() && e.Subject.To.Before(e.Subject.From) {
		return fieldErr("subject.to", "is before subject.from")
	}
	if err := checkText("purpose", e.Purpose, MaxPurposeLen); err != nil {
		return err
	}
	if len(e.Detail) > MaxDetailKeys {
		return fieldErr("detail", "%d keys, at most %d", len(e.Detail), MaxDetailKeys)
	}
	for k, v := range e.Detail {
		if err := checkDetailKey(k); err != nil {
			return err
		}
		if err := checkText("detail["+k+"]", v, MaxDetailValLen); err != nil {
			return err
		}
	}
	return nil
}

func checkTime(field string, t time.Time, required bool) error {
	if t.IsZero() {
		if required {
			return fieldErr(field, "required")
		}
		return nil
	}
	// RFC 3339 has four-digit years; before 1970 is surely a bug.
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return fieldErr(field, "year %d is out of range 1970..9999", y)
	}
	return nil
}

func checkID(field, s string) error {
	if len(s) > MaxIDLen {
		return fieldErr(field, "%d bytes, at most %d", len(s), MaxIDLen)
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fieldErr(field, "contains whitespace or a control character")
		}
	}
	return nil
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fieldErr(field, "%d bytes, at most %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fieldErr(field, "contains a control character")
		}
	}
	return nil
}

// checkAction accepts 2..4 dot-separated parts of [a-z][a-z0-9_]*.
func checkAction(a string) error {
	if a == "" {
		return fieldErr("action", "required")
	}
	if len(a) > 64 {
		return fieldErr("action", "%d bytes, at most 64", len(a))
	}
	parts, start := 1, true
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c == '.':
			if start {
				return fieldErr("action", "%q has an empty part", a)
			}
			parts++
			start = true
		case c >= 'a' && c <= 'z':
			start = false
		case (c >= '0' && c <= '9' || c == '_') && !start:
		default:
			return fieldErr("action", "%q: parts are lower-case letters, digits and '_', starting with a letter", a)
		}
	}
	if start {
		return fieldErr("action", "%q has an empty part", a)
	}
	if parts < 2 || parts > 4 {
		return fieldErr("action", "%q has %d dot-separated parts, want 2 to 4 (e.g. readings.read)", a, parts)
	}
	return nil
}

func checkDetailKey(k string) error {
	field := "detail[" + k + "]"
	if k == "" || len(k) > MaxDetailKeyLen {
		return fieldErr(field, "key must be 1..%d bytes", MaxDetailKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.')) {
			return fieldErr(field, "key must be lower-case letters, digits, '_' and '.', starting with a letter")
		}
	}
	return nil
}

// appendCanonical appends the event's canonical JSON: keys in byte order,
// empty fields left out, times in UTC RFC 3339 with nanoseconds. It must
// equal logformat.Canonicalize of any JSON rendering of the same event; a
// test holds it to that.
func (e *Event) appendCanonical(b []byte) []byte {
	b = append(b, `{"action":`...)
	b = logformat.AppendString(b, e.Action)
	b = append(b, `,"actor":{`...)
	if e.Actor.ID != "" {
		b = append(b, `"id":`...)
		b = logformat.AppendString(b, e.Actor.ID)
		b = append(b, ',')
	}
	b = append(b, `"kind":`...)
	b = logformat.AppendString(b, string(e.Actor.Kind))
	b = append(b, '}')
	if len(e.Detail) > 0 {
		b = append(b, `,"detail":{`...)
		keys := make([]string, 0, len(e.Detail))
		for k := range e.Detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = logformat.AppendString(b, k)
			b = append(b, ':')
			b = logformat.AppendString(b, e.Detail[k])
		}
		b = append(b, '}')
	}
	b = appendField(b, "household", e.Household)
	b = appendField(b, "purpose", e.Purpose)
	if s := &e.Subject; !s.IsZero() {
		b = append(b, `,"subject":{`...)
		n := len(b)
		b = appendField(b, "account", s.Account)
		b = appendField(b, "device", s.Device)
		b = appendTimeField(b, "from", s.From)
		b = appendField(b, "recipient", s.Recipient)
		b = appendField(b, "stream", s.Stream)
		b = appendTimeField(b, "to", s.To)
		b = slices.Delete(b, n, n+1) // the first field's leading comma
		b = append(b, '}')
	}
	b = appendTimeField(b, "time", e.Time)
	return append(b, '}')
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return logformat.AppendString(b, v)
}

func appendTimeField(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// MarshalJSON returns the event's canonical JSON, the exact leaf data.
func (e Event) MarshalJSON() ([]byte, error) { return e.appendCanonical(nil), nil }

// wireEvent is the JSON shape of an event, for decoding.
type wireEvent struct {
	Time  string `json:"time"`
	Actor struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	} `json:"actor"`
	Action    string `json:"action"`
	Household string `json:"household"`
	Subject   struct {
		Device    string `json:"device"`
		Stream    string `json:"stream"`
		Account   string `json:"account"`
		Recipient string `json:"recipient"`
		From      string `json:"from"`
		To        string `json:"to"`
	} `json:"subject"`
	Purpose string            `json:"purpose"`
	Detail  map[string]string `json:"detail"`
}

// UnmarshalJSON decodes any JSON rendering of an event (it need not be
// canonical). It does not validate; see ParseEvent.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("audit event: %w", err)
	}
	var ev Event
	var err error
	if ev.Time, err = parseTime("time", w.Time); err != nil {
		return err
	}
	if ev.Subject.From, err = parseTime("subject.from", w.Subject.From); err != nil {
		return err
	}
	if ev.Subject.To, err = parseTime("subject.to", w.Subject.To); err != nil {
		return err
	}
	ev.Actor = Actor{Kind: ActorKind(w.Actor.Kind), ID: w.Actor.ID}
	ev.Action, ev.Household, ev.Purpose = w.Action, w.Household, w.Purpose
	ev.Subject.Device, ev.Subject.Stream = w.Subject.Device, w.Subject.Stream
	ev.Subject.Account, ev.Subject.Recipient = w.Subject.Account, w.Subject.Recipient
	if len(w.Detail) > 0 {
		ev.Detail = w.Detail
	}
	*e = ev
	return nil
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fieldErr(field, "not an RFC 3339 time: %q", s)
	}
	return t.UTC(), nil
}

// ParseEvent decodes the leaf data of a log entry. It insists on the
// canonical form and a valid event, so every entry has exactly one
// reading and anything else is reported rather than guessed at.
func ParseEvent(data []byte) (Event, error) {
	var ev Event
	if err := ev.UnmarshalJSON(data); err != nil {
		return Event{}, err
	}
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	if !bytes.Equal(ev.appendCanonical(nil), data) {
		return Event{}, fmt.Errorf("%w: entry is not in canonical form", ErrInvalidEvent)
	}
	return ev, nil
}
