package consent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// Source says where a state comes from.
type Source string

// Sources of a state.
const (
	SourceDefault  Source = "default"  // nobody decided: the manifest's default
	SourceExplicit Source = "explicit" // a person decided (see DecidedBy)
)

// DeviceState is every decision about one device, for the UI.
type DeviceState struct {
	DeviceID        string `json:"device_id"`
	DeviceType      string `json:"device_type"`
	ManifestVersion int    `json:"manifest_version"`
	// DeviceCanStop is the manifest's candor:canStopStreams: the device
	// stops generating a stream it is told to stop.
	DeviceCanStop bool          `json:"device_can_stop"`
	Streams       []StreamState `json:"streams"`
}

// StreamState is one stream: what is enforced, where it goes, and each use.
type StreamState struct {
	Stream   string       `json:"stream"`
	Title    string       `json:"title"`
	Personal bool         `json:"personal"`
	Decision Decision     `json:"decision"` // what Allowed answers now
	Routing  RoutingState `json:"routing"`
	Uses     []UseState   `json:"uses"`
	// Effect says in plain words what happens to the stream now.
	Effect string `json:"effect"`
}

// RoutingState is a stream's routing and where it comes from.
type RoutingState struct {
	KeepOnHub bool              `json:"keep_on_hub"`
	Retention manifest.Duration `json:"retention"`     // effective
	Max       manifest.Duration `json:"max_retention"` // the manifest's
	Source    Source            `json:"source"`
	DecidedBy string            `json:"decided_by,omitempty"`
	DecidedAt time.Time         `json:"decided_at,omitzero"`
	RecordID  string            `json:"record_id,omitempty"`
	Why       string            `json:"why"`
}

// UseState is one use of a stream (a purpose for a recipient) and its
// state.
type UseState struct {
	Purpose   string `json:"purpose"` // term, as Change.Purpose takes it
	Recipient string `json:"recipient"`
	On        bool   `json:"on"`
	Source    Source `json:"source"`
	Essential bool   `json:"essential"`
	// PurposeText and RecipientText are the manifest's words (or plain
	// words for its terms); Why says why the use is on or off.
	PurposeText   string    `json:"purpose_text"`
	RecipientText string    `json:"recipient_text"`
	Why           string    `json:"why"`
	DecidedBy     string    `json:"decided_by,omitempty"`
	DecidedAt     time.Time `json:"decided_at,omitzero"`
	RecordID      string    `json:"record_id,omitempty"`
}

// State lists every use of every stream of a device, with its state, its
// source and plain explanations, against the manifest in force.
func (s *Service) State(ctx context.Context, deviceID string) (DeviceState, error) {
	dt, err := s.table(ctx, deviceID)
	if err != nil {
		return DeviceState{}, err
	}
	m := dt.entry.Manifest
	out := DeviceState{DeviceID: deviceID, DeviceType: m.DeviceType, ManifestVersion: dt.entry.Version, DeviceCanStop: m.CanStopStreams}
	for _, st := range m.Streams {
		ss := StreamState{Stream: st.Name, Title: st.Title, Personal: st.Personal(), Decision: dt.lookup(st.Name)}
		for _, p := range st.Purposes {
			if hasUse(ss.Uses, p.ID, RecipientHub) {
				continue
			}
			u := UseState{Purpose: p.ID, Recipient: RecipientHub, Essential: p.Essential,
				PurposeText: purposeText(p), RecipientText: "this hub, for you"}
			dt.fill(&u, st)
			ss.Uses = append(ss.Uses, u)
		}
		for _, r := range st.Recipients {
			if r.Name == RecipientHub || hasUse(ss.Uses, r.Purpose, r.Name) {
				continue
			}
			p := recipientPurpose(st, r)
			u := UseState{Purpose: r.Purpose, Recipient: r.Name, Essential: p.Essential,
				PurposeText: purposeText(p), RecipientText: recipientText(r)}
			dt.fill(&u, st)
			ss.Uses = append(ss.Uses, u)
		}
		ss.Routing = dt.routingState(st)
		ss.Effect = effect(ss.Decision, m.CanStopStreams)
		out.Streams = append(out.Streams, ss)
	}
	return out, nil
}

func hasUse(us []UseState, purpose, recipient string) bool {
	for _, u := range us {
		if u.Purpose == purpose && u.Recipient == recipient {
			return true
		}
	}
	return false
}

func (dt *deviceTable) fill(u *UseState, st *manifest.Stream) {
	var explicit bool
	u.On, explicit = dt.useOn(st, u.Purpose, u.Recipient)
	if explicit {
		d := dt.explicit[useKey{st.Name, u.Purpose, u.Recipient}]
		u.Source, u.DecidedBy, u.DecidedAt, u.RecordID = SourceExplicit, d.AccountID, d.DecidedAt, d.RecordID
		u.Why = fmt.Sprintf("Turned %s on %s.", onOff(u.On), dateWords(d.DecidedAt))
		return
	}
	u.Source = SourceDefault
	switch {
	case u.Recipient != RecipientHub:
		u.Why = "Off until you say yes: nothing leaves this hub by default."
	case u.Essential:
		u.Why = "On by default: the device needs this to work. You can turn it off."
	default:
		u.Why = "Off until you say yes: the device works without it."
	}
}

func (dt *deviceTable) routingState(st *manifest.Stream) RoutingState {
	keep, retention := dt.route(st)
	rs := RoutingState{KeepOnHub: keep, Retention: retention, Max: st.Retention, Source: SourceDefault}
	r, ok := dt.routing[st.Name]
	if !ok {
		rs.Why = fmt.Sprintf("Kept on this hub for up to %s, the longest its manifest allows.", st.Retention.Human())
		return rs
	}
	rs.Source, rs.DecidedBy, rs.DecidedAt, rs.RecordID = SourceExplicit, r.AccountID, r.DecidedAt, r.RecordID
	if !keep {
		rs.Why = fmt.Sprintf("Not kept on this hub, as chosen on %s.", dateWords(r.DecidedAt))
	} else {
		rs.Why = fmt.Sprintf("Kept on this hub for %s, as chosen on %s.", retention.Human(), dateWords(r.DecidedAt))
	}
	return rs
}

func effect(d Decision, canStop bool) string {
	if !d.Collect {
		if canStop {
			return "Off: nothing is kept or shared, and the device has been told to stop sending it."
		}
		return "Off: nothing is kept or shared. The device still sends it; the hub drops it."
	}
	var b strings.Builder
	if d.StoreOnHub {
		b.WriteString("Kept on this hub for " + d.Retention.Human() + ".")
	} else {
		b.WriteString("Not kept on this hub.")
	}
	if len(d.Recipients) > 0 {
		b.WriteString(" Shared with " + strings.Join(d.Recipients, ", ") + ".")
	}
	return b.String()
}

func purposeText(p manifest.Purpose) string {
	if t := strings.TrimSuffix(strings.TrimSpace(p.Description), "."); t != "" {
		return t
	}
	return manifest.PurposeWords(p.ID)
}

var identifiable = map[string]string{
	"linked":        "linked to you",
	"de-identified": "with your name taken off",
	"anonymous":     "with nothing that points to you",
}

func recipientText(r manifest.Recipient) string {
	var b strings.Builder
	b.WriteString(r.Name + " gets it")
	if w, ok := identifiable[r.Identifiable]; ok {
		b.WriteString(", " + w + ",")
	}
	b.WriteString(" " + manifest.PurposeWords(r.Purpose) + ". " + manifest.RoleSentence(r.Role))
	if !r.Retention.IsZero() {
		b.WriteString(" They keep it for " + r.Retention.Human() + ".")
	}
	return b.String()
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func dateWords(t time.Time) string { return t.UTC().Format("2 January 2006") }

// table returns the device's table for the manifest in force, loading or
// rebuilding (and publishing) it when needed.
func (s *Service) table(ctx context.Context, deviceID string) (*deviceTable, error) {
	e, err := s.resolve(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	if dt := s.snap.Load().get(deviceID); dt != nil && sameManifest(dt.entry, e) {
		return dt, nil
	}
	var dt *deviceTable
	err = s.mutate(func() ([]notice, error) {
		old, cur, err := s.currentLocked(ctx, deviceID, e)
		if err != nil {
			return nil, err
		}
		dt = cur
		if cur == old {
			return nil, nil
		}
		s.publishLocked([]*deviceTable{cur}, nil)
		if old == nil {
			return nil, nil
		}
		return diff(old, cur, ""), nil
	})
	return dt, err
}

// HistoryQuery selects records. Zero fields do not filter; the caller
// scopes the query to what the asking person may see.
type HistoryQuery struct {
	AccountID string
	DeviceID  string
	AfterSeq  int64 // cursor: records after this Record.Seq
	Limit     int   // 0: all
}

// History lists consent records, oldest first.
func (s *Service) History(ctx context.Context, q HistoryQuery) ([]Record, error) {
	rs, err := s.st.ConsentRecords(ctx, store.ConsentRecordQuery{AccountID: q.AccountID, DeviceID: q.DeviceID, AfterSeq: q.AfterSeq, Limit: q.Limit})
	if err != nil {
		return nil, fmt.Errorf("consent: history: %w", err)
	}
	out := make([]Record, 0, len(rs))
	for _, r := range rs {
		rec, err := decodeRecord(r.Doc)
		if err != nil {
			return nil, fmt.Errorf("consent: stored record %q: %w", r.ID, err)
		}
		rec.Seq = r.Seq
		out = append(out, rec)
	}
	return out, nil
}

// Record returns one record (an *Error wrapping ErrUnknownRecord if there
// is none), for example to check who may download its receipt.
func (s *Service) Record(ctx context.Context, recordID string) (Record, error) {
	r, err := s.storedRecord(ctx, recordID)
	if err != nil {
		return Record{}, err
	}
	rec, err := decodeRecord(r.Doc)
	if err != nil {
		return Record{}, fmt.Errorf("consent: stored record %q: %w", r.ID, err)
	}
	rec.Seq = r.Seq
	return rec, nil
}

func (s *Service) storedRecord(ctx context.Context, recordID string) (store.ConsentRecord, error) {
	r, err := s.st.ConsentRecord(ctx, recordID)
	if errors.Is(err, store.ErrNotFound) {
		return store.ConsentRecord{}, &Error{Field: "record_id", Value: recordID, Err: ErrUnknownRecord,
			Msg: fmt.Sprintf("no consent record %q", recordID)}
	}
	if err != nil {
		return store.ConsentRecord{}, fmt.Errorf("consent: record %q: %w", recordID, err)
	}
	return r, nil
}
