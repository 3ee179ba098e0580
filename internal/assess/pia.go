package assess

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// ConsentState gives the state of every use of a device's streams
// (*consent.Service does).
type ConsentState interface {
	State(ctx context.Context, deviceID string) (consent.DeviceState, error)
}

// PIA is a privacy impact assessment of one household, in the structure
// of a DPIA (GDPR article 35(7)): the processing described, its necessity
// and proportionality, the risks to people, the measures in force with
// their evidence, and the risks that remain. Every part is computed from
// the hub's live configuration.
type PIA struct {
	Household     string      `json:"household"`
	HouseholdName string      `json:"household_name"`
	Processing    Processing  `json:"processing"`
	Necessity     []Necessity `json:"necessity"`
	Risks         []Risk      `json:"risks"`
	Measures      []Measure   `json:"measures"`
	Residual      []Risk      `json:"residual_risks"`
}

// Processing describes what the household's devices send and what
// happens to it.
type Processing struct {
	Devices []PIADevice `json:"devices"`
	// StoredAt says where stored readings are kept.
	StoredAt   string       `json:"stored_at"`
	Encryption []Encryption `json:"encryption"`
}

// PIADevice is one device and its streams.
type PIADevice struct {
	ID              string      `json:"id"`
	Name            string      `json:"name"`
	Type            string      `json:"type"`
	ManifestVersion int         `json:"manifest_version"`
	Streams         []PIAStream `json:"streams"`
}

// PIAStream is one stream: its personal data, uses and recipients.
type PIAStream struct {
	Name               string         `json:"name"`
	Title              string         `json:"title"`
	Categories         []Term         `json:"personal_data"` // DPV pd: or candor: terms
	Purposes           []PIAPurpose   `json:"purposes"`
	Recipients         []PIARecipient `json:"recipients"`
	KeptOnHub          bool           `json:"kept_on_hub"`
	Retention          string         `json:"retention"` // ISO 8601 duration in force
	RetentionWords     string         `json:"retention_words"`
	MachineLearning    bool           `json:"machine_learning"`
	AutomatedDecisions bool           `json:"automated_decisions"`
	Reveals            string         `json:"reveals,omitempty"`
}

// Term is a vocabulary term and its plain words.
type Term struct {
	ID    string `json:"id"`
	Words string `json:"words"`
}

// PIAPurpose is one purpose of a stream on the hub.
type PIAPurpose struct {
	Term
	// LegalBasis is a DPV term: dpv:Contract for what the device needs
	// to work, dpv:Consent for the rest.
	LegalBasis string `json:"legal_basis"`
	Essential  bool   `json:"essential"`
	On         bool   `json:"on"`
	ByPerson   bool   `json:"decided_by_person"`
}

// PIARecipient is someone outside the hub a stream may go to.
type PIARecipient struct {
	Name         string `json:"name"`
	Role         string `json:"role"` // DPV term
	Purpose      Term   `json:"purpose"`
	Terms        string `json:"terms,omitempty"`
	Contact      string `json:"contact,omitempty"`
	Retention    string `json:"retention,omitempty"`
	Identifiable string `json:"identifiable"`
	On           bool   `json:"on"`
	Endpoint     bool   `json:"endpoint_set"`
}

// Encryption is the key setting of one key owner of the household.
type Encryption struct {
	Owner string `json:"owner"` // acc_… or hh_…
	Mode  string `json:"mode"`  // hub-assisted or user-held
	Text  string `json:"text"`
}

// Necessity says, per use, whether it is needed, on by default or turned
// on by a person.
type Necessity struct {
	Device  string `json:"device"`
	Stream  string `json:"stream"`
	Purpose string `json:"purpose"`
	To      string `json:"to"` // "hub" or a recipient name
	State   string `json:"state"`
	Text    string `json:"text"`
}

// Necessity states.
const (
	StateEssential = "essential"
	StateDefaultOn = "on-by-default"
	StateTurnedOn  = "turned-on"
	StateOff       = "off"
)

// Risk is one risk to the people of the household.
type Risk struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`  // alone, together, automated, leaves
	Level string `json:"level"` // high, medium, low
	Text  string `json:"text"`
	// Sources are the device/stream pairs it comes from; Parts name them
	// in words (for a risk of streams together).
	Sources []string `json:"sources"`
	Parts   []string `json:"parts,omitempty"`
	// Label is what the device's label says the stream shows, in the
	// maker's words.
	Label string `json:"label,omitempty"`
}

// Measure is a protection in force, with live evidence.
type Measure struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Evidence string `json:"evidence"`
}

// buildPIA gathers the facts of one household.
func (s *Service) buildPIA(ctx context.Context, hh store.Household) (*PIA, error) {
	p := &PIA{Household: hh.ID, HouseholdName: hh.Name,
		Processing: Processing{StoredAt: "On this hub only, in its database file in the data directory."}}
	devs, err := s.cfg.Store.Devices(ctx, hh.ID)
	if err != nil {
		return nil, err
	}
	eps, err := s.cfg.Store.RecipientEndpoints(ctx, hh.ID)
	if err != nil {
		return nil, err
	}
	endpoint := map[string]bool{}
	for _, e := range eps {
		endpoint[e.Recipient] = true
	}
	owners := map[string]bool{}
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		pd, err := s.piaDevice(ctx, d, endpoint)
		if err != nil {
			return nil, err
		}
		if pd == nil {
			continue
		}
		p.Processing.Devices = append(p.Processing.Devices, *pd)
		owners[d.KeyOwnerID()] = true
	}
	for _, o := range slices.Sorted(mapsKeys(owners)) {
		p.Processing.Encryption = append(p.Processing.Encryption, s.encryption(ctx, o))
	}
	p.Necessity = necessity(p)
	p.Risks = risks(p)
	p.Measures = s.measures(ctx, p)
	p.Residual = residual(p)
	return p, nil
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (s *Service) piaDevice(ctx context.Context, d store.Device, endpoint map[string]bool) (*PIADevice, error) {
	e, err := s.cfg.Manifests.Current(d.Type)
	if err != nil || e == nil || e.Manifest == nil {
		return nil, nil // a type without a manifest in force sends nothing
	}
	var state consent.DeviceState
	if s.cfg.Consent != nil {
		if state, err = s.cfg.Consent.State(ctx, d.ID); err != nil {
			return nil, fmt.Errorf("consent state of %s: %w", d.ID, err)
		}
	}
	pd := &PIADevice{ID: d.ID, Name: d.Name, Type: d.Type, ManifestVersion: e.Version}
	for _, st := range e.Manifest.Streams {
		ps := PIAStream{Name: st.Name, Title: st.Title, MachineLearning: st.MachineLearning,
			AutomatedDecisions: st.AutomatedDecisions, Reveals: st.Reveals, KeptOnHub: true,
			Retention: st.Retention.Text, RetentionWords: st.Retention.Human()}
		for _, c := range st.PersonalData {
			ps.Categories = append(ps.Categories, Term{ID: c, Words: manifest.PersonalDataWords(c)})
		}
		uses := useStates(state, st.Name)
		if ss := streamState(state, st.Name); ss != nil {
			ps.KeptOnHub = ss.Routing.KeepOnHub
			if !ss.Routing.Retention.IsZero() {
				ps.Retention, ps.RetentionWords = ss.Routing.Retention.Text, ss.Routing.Retention.Human()
			}
		}
		for _, pu := range st.Purposes {
			u := uses[consent.RecipientHub+"|"+pu.ID]
			on, by := pu.Essential, false
			if u != nil {
				on, by = u.On, u.Source == consent.SourceExplicit
			}
			basis := "dpv:Consent"
			if pu.Essential {
				basis = "dpv:Contract"
			}
			ps.Purposes = append(ps.Purposes, PIAPurpose{Term: Term{ID: pu.ID, Words: manifest.PurposeWords(pu.ID)},
				LegalBasis: basis, Essential: pu.Essential, On: on, ByPerson: by})
		}
		for _, rc := range st.Recipients {
			u := uses[rc.Name+"|"+rc.Purpose]
			ps.Recipients = append(ps.Recipients, PIARecipient{Name: rc.Name, Role: rc.Role,
				Purpose: Term{ID: rc.Purpose, Words: manifest.PurposeWords(rc.Purpose)}, Terms: rc.Terms, Contact: rc.Contact,
				Retention: rc.Retention.Text, Identifiable: rc.Identifiable, On: u != nil && u.On, Endpoint: endpoint[rc.Name]})
		}
		pd.Streams = append(pd.Streams, ps)
	}
	return pd, nil
}

func streamState(ds consent.DeviceState, stream string) *consent.StreamState {
	for i := range ds.Streams {
		if ds.Streams[i].Stream == stream {
			return &ds.Streams[i]
		}
	}
	return nil
}

func useStates(ds consent.DeviceState, stream string) map[string]*consent.UseState {
	out := map[string]*consent.UseState{}
	if ss := streamState(ds, stream); ss != nil {
		for i := range ss.Uses {
			u := &ss.Uses[i]
			out[u.Recipient+"|"+u.Purpose] = u
		}
	}
	return out
}

func (s *Service) encryption(ctx context.Context, owner string) Encryption {
	who := "the household"
	if strings.HasPrefix(owner, "acc_") {
		who = "the person who added the device"
	}
	o, err := s.cfg.Store.KeyOwner(ctx, owner)
	if err != nil {
		return Encryption{Owner: owner, Mode: "none yet", Text: "No readings were sealed for " + who + " yet."}
	}
	if o.Mode == store.KeyModeUserHeld {
		return Encryption{Owner: owner, Mode: string(o.Mode), Text: "Readings are sealed with keys only " + who + " can open. The hub cannot read them."}
	}
	return Encryption{Owner: owner, Mode: string(o.Mode), Text: "Readings are sealed on disk. The hub holds a key to open them for " + who + "."}
}

func necessity(p *PIA) []Necessity {
	var out []Necessity
	for _, d := range p.Processing.Devices {
		for _, st := range d.Streams {
			for _, pu := range st.Purposes {
				n := Necessity{Device: d.ID, Stream: st.Name, Purpose: pu.ID, To: "hub"}
				switch {
				case pu.Essential && pu.On && !pu.ByPerson:
					n.State, n.Text = StateEssential, fmt.Sprintf("%s: %s. It is used %s. The device needs it to work.", d.Name, st.Title, pu.Words)
				case pu.On && pu.ByPerson:
					n.State, n.Text = StateTurnedOn, fmt.Sprintf("%s: %s. It is used %s. A person turned this on.", d.Name, st.Title, pu.Words)
				case pu.On:
					n.State, n.Text = StateDefaultOn, fmt.Sprintf("%s: %s. It is used %s. It was on from the start.", d.Name, st.Title, pu.Words)
				default:
					n.State, n.Text = StateOff, fmt.Sprintf("%s: %s. It is not used %s. This is off.", d.Name, st.Title, pu.Words)
				}
				out = append(out, n)
			}
			for _, rc := range st.Recipients {
				n := Necessity{Device: d.ID, Stream: st.Name, Purpose: rc.Purpose.ID, To: rc.Name}
				if rc.On {
					n.State, n.Text = StateTurnedOn, fmt.Sprintf("%s: %s. It goes to %s. A person turned this on.", d.Name, st.Title, rc.Name)
				} else {
					n.State, n.Text = StateOff, fmt.Sprintf("%s: %s. It does not go to %s. This is off.", d.Name, st.Title, rc.Name)
				}
				out = append(out, n)
			}
		}
	}
	return out
}

// collected reports whether any use of a stream is on.
func collected(st PIAStream) bool {
	for _, p := range st.Purposes {
		if p.On {
			return true
		}
	}
	for _, r := range st.Recipients {
		if r.On {
			return true
		}
	}
	return false
}

func risks(p *PIA) []Risk {
	var out []Risk
	byCategory := map[string][]string{} // category → device/stream sources
	names := map[string]string{}        // source → "stream (device)"
	catWords := map[string]string{}
	for _, d := range p.Processing.Devices {
		for _, st := range d.Streams {
			if len(st.Categories) == 0 || !collected(st) {
				continue
			}
			src := d.ID + "/" + st.Name
			names[src] = fmt.Sprintf("%s (%s)", st.Title, d.Name)
			if st.Reveals != "" {
				out = append(out, Risk{ID: "alone:" + src, Kind: "alone", Level: "medium", Sources: []string{src}, Label: st.Reveals,
					Text: fmt.Sprintf("%s: %s. Even on its own, this can tell a lot about you and your home.", d.Name, st.Title)})
			}
			for _, c := range st.Categories {
				byCategory[c.ID] = append(byCategory[c.ID], src)
				catWords[c.ID] = c.Words
			}
			if st.MachineLearning || st.AutomatedDecisions {
				what := "A program learns from"
				if st.AutomatedDecisions {
					what = "A program makes choices from"
				}
				out = append(out, Risk{ID: "automated:" + src, Kind: "automated", Level: "medium", Sources: []string{src},
					Text: fmt.Sprintf("%s: %s. %s it. It may get things wrong about you.", d.Name, st.Title, what)})
			}
			for _, rc := range st.Recipients {
				if !rc.On {
					continue
				}
				level, how := "medium", "without your name"
				if rc.Identifiable == "linked" {
					level, how = "high", "linked to you"
				}
				out = append(out, Risk{ID: "leaves:" + src + ":" + rc.Name, Kind: "leaves", Level: level, Sources: []string{src},
					Text: fmt.Sprintf("%s: %s. It goes to %s, %s. Once it leaves, the hub cannot take it back.", d.Name, st.Title, rc.Name, how)})
			}
		}
	}
	// Together: streams of several devices that carry the same kind of
	// personal data say more than each alone (door, motion and meter all
	// show when people are home).
	for _, c := range slices.Sorted(mapsKeysS(byCategory)) {
		srcs := byCategory[c]
		devices := map[string]bool{}
		for _, s := range srcs {
			dev, _, _ := strings.Cut(s, "/")
			devices[dev] = true
		}
		if len(devices) < 2 {
			continue
		}
		sort.Strings(srcs)
		var parts []string
		for _, s := range srcs {
			parts = append(parts, names[s])
		}
		out = append(out, Risk{ID: "together:" + c, Kind: "together", Level: "high", Sources: srcs, Parts: parts,
			Text: fmt.Sprintf("%d streams from %d devices each say something about %s. Put together, they show the pattern of your days.", len(srcs), len(devices), catWords[c])})
	}
	return out
}

func mapsKeysS(m map[string][]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func joinAnd(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

func (s *Service) measures(ctx context.Context, p *PIA) []Measure {
	on, total, byPerson := 0, 0, 0
	for _, d := range p.Processing.Devices {
		for _, st := range d.Streams {
			for _, pu := range st.Purposes {
				total++
				if pu.On {
					on++
				}
				if pu.ByPerson {
					byPerson++
				}
			}
			for _, rc := range st.Recipients {
				total++
				if rc.On {
					on++
				}
			}
		}
	}
	out := []Measure{
		{ID: "consent", Title: "Each use can be turned off",
			Evidence: fmt.Sprintf("%d of %d uses are on. People chose %d of them. Off means the hub does not keep or send it.", on, total, byPerson)},
		{ID: "labels", Title: "Only what the label says is kept",
			Evidence: "The hub refuses data a device's label does not list."},
	}
	var modes []string
	for _, e := range p.Processing.Encryption {
		modes = append(modes, e.Text)
	}
	if len(modes) > 0 {
		out = append(out, Measure{ID: "encryption", Title: "Stored data is sealed", Evidence: strings.Join(modes, " ")})
	}
	// The log's size grows with every action (this report's own signing
	// among them), so the evidence is whether its checkpoint was saved
	// elsewhere, which changes rarely: a new version only when it does.
	if s.cfg.LogSize != nil {
		ev := "The hub writes each read, share and change in a public log. No copy of its checkpoint has left the hub yet, so no one else can vouch for it."
		if at, err := s.cfg.Store.AuditMark(ctx, MarkCheckpoint); err == nil && !at.IsZero() {
			ev = "The hub writes each read, share and change in a public log. A copy of its checkpoint last left the hub on " + at.UTC().Format(time.DateOnly) + ", so changes to it can be caught."
		}
		out = append(out, Measure{ID: "log", Title: "Every use of your data is written down", Evidence: ev})
	}
	if s.cfg.Quarantine != nil {
		qs, err := s.cfg.Quarantine.Quarantined(ctx)
		if err == nil {
			ev := fmt.Sprintf("%d devices are held now.", len(qs))
			if k := s.cfg.MonitorKeep; k > 0 {
				// What the watch keeps is part of the processing too.
				ev += fmt.Sprintf(" The watch counts messages, sizes and times, never what they say. It keeps only these counts, for %s.", keepWords(k))
			}
			out = append(out, Measure{ID: "quarantine", Title: "Devices that act oddly are held", Evidence: ev})
		}
	} else {
		out = append(out, Measure{ID: "quarantine", Title: "Devices that act oddly are held", Evidence: "This hub has no such watch yet."})
	}
	return out
}

// keepWords says a keeping time in whole days, or hours when shorter.
func keepWords(d time.Duration) string {
	if days := int(d / (24 * time.Hour)); days >= 1 && d%(24*time.Hour) == 0 {
		if days == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", days)
	}
	return fmt.Sprintf("%d hours", int(d.Hours()))
}

func residual(p *PIA) []Risk {
	var out []Risk
	for _, r := range p.Risks {
		if r.Level == "low" {
			continue
		}
		rr := r
		switch r.Kind {
		case "leaves":
			rr.Text = "What was already sent stays with them. Their terms decide what they do with it."
		case "together":
			rr.Text = "The hub can keep these apart from others, but anyone who sees them all can put them together."
		case "automated":
			rr.Text = "The program may still be wrong. Check what it decides."
		default:
			continue
		}
		out = append(out, rr)
	}
	return out
}
