package consent

import (
	"context"
	"slices"
	"strings"

	"github.com/candor-iot/candor/internal/manifest"
)

// Sharing is what turning on a use that sends a stream out of the hub
// would send, to whom and on what terms. The API and the pages show it,
// and ask for a confirmation, before such a use is turned on.
type Sharing struct {
	DeviceID  string `json:"device_id"`
	Stream    string `json:"stream"`
	Title     string `json:"title"`
	Purpose   string `json:"purpose"`
	Recipient string `json:"recipient"`
	// What lists what each reading carries, in plain words.
	What []string `json:"what"`
	// Why is the purpose the recipient gets it for, in plain words.
	Why string `json:"why"`
	// Linked says how identifiable it is when it leaves: "linked",
	// "de-identified" or "anonymous"; LinkedText says it in words.
	Linked     string `json:"linked"`
	LinkedText string `json:"linked_text"`
	// Role is the recipient's DPV role, in words.
	Role    string            `json:"role"`
	Terms   string            `json:"terms,omitempty"`
	Contact string            `json:"contact,omitempty"`
	Keeps   manifest.Duration `json:"keeps"`
	// Reveals is what the stream can show about the household on its
	// own, when its manifest says.
	Reveals string `json:"reveals,omitempty"`
	// AlreadyGets lists what the recipient already gets from the
	// household ("Meter: meter reading"), when the caller fills it in
	// with Receiving.
	AlreadyGets []string `json:"already_gets,omitempty"`
	// Together warns what the recipient could learn from the household
	// with this stream and what it already gets, when the caller fills it
	// in with Service.Together.
	Together []Together `json:"together,omitempty"`
}

// Receiving lists what recipient already gets from the given devices:
// each "device name: stream title" whose use for that recipient is on.
// names maps device ids to their names.
func (s *Service) Receiving(ctx context.Context, names map[string]string, recipient string) []string {
	var out []string
	ids := make([]string, 0, len(names))
	for id := range names {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		dt, err := s.table(ctx, id)
		if err != nil {
			continue
		}
		for _, st := range dt.entry.Manifest.Streams {
			if slices.Contains(dt.lookup(st.Name).Recipients, recipient) {
				title := st.Title
				if title == "" {
					title = st.Name
				}
				out = append(out, names[id]+": "+strings.ToLower(title))
			}
		}
	}
	return out
}

// Sharing describes the use (stream, purpose, recipient) of a device
// before it is turned on. A use for the hub itself sends nothing out and
// is refused like an unknown recipient.
func (s *Service) Sharing(ctx context.Context, deviceID, stream, purpose, recipient string) (Sharing, error) {
	purpose = compactTerm(strings.TrimSpace(purpose))
	e, err := s.resolve(ctx, deviceID)
	if err != nil {
		return Sharing{}, err
	}
	st, err := findStream(e, deviceID, stream)
	if err != nil {
		return Sharing{}, err
	}
	p, r, err := findUse(st, deviceID, purpose, recipient)
	if err != nil {
		return Sharing{}, err
	}
	if r == nil {
		return Sharing{}, &Error{Field: "recipient", Value: recipient, Err: ErrUnknownRecipient,
			Msg: "a use on this hub sends nothing out, so there is nothing to confirm"}
	}
	out := Sharing{DeviceID: deviceID, Stream: st.Name, Title: st.Title, Purpose: p.ID, Recipient: r.Name,
		Why: purposeText(p), Linked: r.Identifiable, LinkedText: identifiable[r.Identifiable],
		Role: manifest.RoleSentence(r.Role), Terms: r.Terms, Contact: r.Contact, Keeps: r.Retention,
		Reveals: strings.TrimSpace(st.Reveals)}
	if out.Title == "" {
		out.Title = st.Name
	}
	if out.LinkedText == "" {
		out.LinkedText = "linked to you, as far as the manifest says"
	}
	for _, f := range st.Fields {
		w := f.Description
		if w == "" {
			w = f.Name
		}
		if f.Unit != "" {
			w += " (" + f.Unit + ")"
		}
		out.What = append(out.What, w)
	}
	return out, nil
}
