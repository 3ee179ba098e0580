package web

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// warning is something the owner should look at. Kind names the glossary
// entry that explains it and picks the icon; Text says it in words, so
// the warning never depends on colour or icon alone.
type warning struct {
	Kind string
	Text string
	Link string // where to read more on the page, or ""
}

// deviceSummary is a device as the home page lists it.
type deviceSummary struct {
	ID        string
	Name      string
	Type      string
	TypeTitle string
	Connected bool
	Revoked   bool
	Line      string // the one-line label
	Warnings  []warning
}

// labelFor explains the manifest in force for a device type; nil when the
// type has none (the hub then accepts nothing from such devices).
func (s *Server) labelFor(deviceType string) (*catalog.Entry, *manifest.Label) {
	e, err := s.cfg.Catalog.Current(deviceType)
	if err != nil {
		return nil, nil
	}
	l := manifest.Explain(e.Manifest, s.now())
	return e, &l
}

// deviceLabel is labelFor for one device: its short layer also says what
// leaves the hub now, given the device's consent choices.
func (s *Server) deviceLabel(d store.Device) (*catalog.Entry, *manifest.Label) {
	e, l := s.labelFor(d.Type)
	if l == nil || s.cfg.Consent == nil {
		return e, l
	}
	on := make(map[string][]string, len(e.Manifest.Streams))
	for _, st := range e.Manifest.Streams {
		on[st.Name] = s.cfg.Consent.Allowed(d.ID, st.Name).Recipients
	}
	wl := l.WithChoices(e.Manifest, on)
	return e, &wl
}

// oneLine is the label's short layer in one line: what it senses, where
// the data goes, how long it is kept, security updates until when.
func oneLine(l *manifest.Label) string {
	if l == nil {
		return "No data manifest: the hub accepts nothing from it."
	}
	sh := l.Short
	parts := []string{"Senses " + joinAnd(sh.Senses) + "."}
	parts = append(parts, goesNowSentence(sh))
	parts = append(parts, "Kept up to "+sh.KeptFor+".")
	parts = append(parts, updatesSentence(sh))
	return strings.Join(parts, " ")
}

func goesSentence(goes string) string {
	switch goes {
	case manifest.GoesLinked:
		return "Some data leaves this hub, linked to you."
	case manifest.GoesDeidentified:
		return "Some data leaves this hub, with your name taken off."
	}
	return "Data stays on this hub."
}

// goesNowSentence says where a device's data goes given its choices, and
// whether more could go if turned on.
func goesNowSentence(sh manifest.ShortLayer) string {
	if !sh.Choices || len(sh.SharedWith) == 0 {
		return goesSentence(sh.DataGoes)
	}
	now := goesSentence(sh.GoesNow)
	if sh.GoesNow == manifest.GoesNowhere {
		now = "Now data stays on this hub."
	}
	if len(sh.SharedNow) < len(sh.SharedWith) {
		now += " More could leave if you turn it on."
	}
	return now
}

func updatesSentence(sh manifest.ShortLayer) string {
	switch {
	case sh.UpdatesUntil == "":
		return "Security updates: unknown. The maker does not say how long it gets them."
	case sh.SupportEnded:
		return "Security updates ended on " + sh.UpdatesUntil + "."
	}
	return "Security updates until " + sh.UpdatesUntil + "."
}

// violationView is one kind of refused data: where, why and how often,
// never what it said.
type violationView struct {
	Stream string // the stream's title where the manifest has it
	Field  string
	Reason string
	Count  int64
	LastAt time.Time
	Kept   bool // a behaviour flag: the readings were kept, only counted
}

// violationsShown is how many violation rows a device page lists.
const violationsShown = 50

// violations merges the stored counts with those the ingest pipeline has
// not flushed yet, newest first, the newest violationsShown of them, and
// says how many rows were left off.
func (s *Server) violations(ctx context.Context, deviceID string, m *manifest.Manifest) ([]violationView, int, error) {
	// Pending first: a write to the store between the two reads then
	// counts its violations twice for that instant, never not at all.
	var pending []store.ViolationCount
	if s.cfg.Ingest != nil {
		pending = s.cfg.Ingest.PendingViolations(deviceID)
	}
	stored, total, err := s.st.Violations(ctx, deviceID, violationsShown)
	if err != nil {
		return nil, 0, fmt.Errorf("violations of %s: %w", deviceID, err)
	}
	// As the store will hold them once the pending counts are written
	// (the API lists the same rows).
	merged := store.MergeViolations(stored, pending)
	out := make([]violationView, 0, len(merged))
	for _, v := range merged {
		title := v.Stream
		if title == "" {
			title = "(any)" // the overflow row counts many streams and fields
		}
		if m != nil {
			if st := m.Stream(v.Stream); st != nil && st.Title != "" {
				title = st.Title
			}
		}
		out = append(out, violationView{
			Stream: title, Field: v.Field, Reason: reasonWords(v.Reason), Count: v.Count, LastAt: v.LastAt,
			Kept: v.Reason == ingest.FlagRateExceeded,
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastAt.After(out[j].LastAt) })
	leftOff := total - len(stored)
	if len(out) > violationsShown {
		leftOff += len(out) - violationsShown
		out = out[:violationsShown]
	}
	return out, leftOff, nil
}

// reasonWords says in plain words why a reading was refused.
func reasonWords(reason string) string {
	switch reason {
	case manifest.ViolUndeclaredStream:
		return "a kind of data its label does not list"
	case manifest.ViolUndeclaredField:
		return "a field its label does not list"
	case manifest.ViolMissingField:
		return "a field its label says must be there was missing"
	case manifest.ViolWrongType:
		return "a value of the wrong type"
	case manifest.ViolOutOfRange:
		return "a value outside the range its label gives"
	case manifest.ViolNotAllowed:
		return "a value its label does not allow"
	case manifest.ViolTooLarge:
		return "a reading larger than its label allows"
	case manifest.ViolMalformed:
		return "a reading the hub could not read"
	case ingest.FlagRateExceeded:
		return "sent far more often than its label says (these readings were kept)"
	case store.ViolationOverflow:
		return fmt.Sprintf("more fields or kinds of data its label does not list, counted together (the hub keeps at most %d names per device)", store.MaxViolationRows)
	}
	return strings.ReplaceAll(reason, "_", " ")
}

// warnings lists what the owner should look at for a device, most
// serious first.
func (s *Server) warnings(d store.Device, l *manifest.Label, viols []violationView) []warning {
	var ws []warning
	if d.Revoked() {
		ws = append(ws, warning{"revoke", "Revoked on " + when(d.RevokedAt) + ". It can no longer connect.", ""})
	}
	var refused, flagged int64
	for _, v := range viols {
		if v.Kept {
			flagged += v.Count
		} else {
			refused += v.Count
		}
	}
	if refused > 0 {
		ws = append(ws, warning{"refused-data", fmt.Sprintf("It sent data its label does not allow. The hub refused it %s.", times(refused)), "#refused"})
	}
	if flagged > 0 {
		ws = append(ws, warning{"refused-data", fmt.Sprintf("It sent data far more often than its label says (%s).", times(flagged)), "#refused"})
	}
	c := d.Counters
	if s.cfg.Ingest != nil {
		c = c.Add(s.cfg.Ingest.PendingCounters(d.ID))
	}
	if c.ACLDenied > 0 {
		ws = append(ws, warning{"mqtt", fmt.Sprintf("It tried to reach data that is not its own. The hub stopped it %s.", times(c.ACLDenied)), ""})
	}
	if c.AuthFailures > 0 {
		ws = append(ws, warning{"credential", fmt.Sprintf("Someone tried to connect as this device with a wrong secret %s.", times(c.AuthFailures)), ""})
	}
	switch {
	case l == nil:
		ws = append(ws, warning{"data-manifest", "Its type has no data manifest, so the hub accepts nothing from it.", ""})
	case l.Short.SupportEnded:
		ws = append(ws, warning{"end-of-support", "Security updates ended on " + l.Short.UpdatesUntil + ". Think about replacing it.", ""})
	case l.Short.Support == manifest.SupportEnding:
		ws = append(ws, warning{"end-of-support", "Security updates end soon, on " + l.Short.UpdatesUntil + ". Plan to replace it.", ""})
	}
	if l != nil && l.Short.Draft {
		ws = append(ws, warning{"label", "Its label is a draft that no one has checked yet. Do not trust it until an admin confirms it.", ""})
	}
	return ws
}

func times(n int64) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// summaries lists a household's devices for the home page: those with
// warnings first, then by name.
func (s *Server) summaries(ctx context.Context, householdID string) ([]deviceSummary, error) {
	list, err := s.st.Devices(ctx, householdID)
	if err != nil {
		return nil, fmt.Errorf("devices of household %s: %w", householdID, err)
	}
	out := make([]deviceSummary, 0, len(list))
	for _, d := range list {
		e, l := s.deviceLabel(d)
		var m *manifest.Manifest
		if e != nil {
			m = e.Manifest
		}
		viols, _, err := s.violations(ctx, d.ID, m)
		if err != nil {
			return nil, err
		}
		out = append(out, s.summary(d, e, l, viols))
	}
	sort.SliceStable(out, func(i, j int) bool {
		wi, wj := len(out[i].Warnings) > 0, len(out[j].Warnings) > 0
		if wi != wj {
			return wi
		}
		return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name)
	})
	return out, nil
}

func (s *Server) summary(d store.Device, e *catalog.Entry, l *manifest.Label, viols []violationView) deviceSummary {
	ds := deviceSummary{
		ID: d.ID, Name: d.Name, Type: d.Type, TypeTitle: d.Type, Revoked: d.Revoked(),
		Line: oneLine(l), Warnings: s.warnings(d, l, viols),
	}
	if e != nil && e.Manifest.Title != "" {
		ds.TypeTitle = e.Manifest.Title
	}
	if s.cfg.Presence != nil && !d.Revoked() {
		ds.Connected = s.cfg.Presence.Connected(d.ID)
	}
	return ds
}

// ownDevice loads a device the viewer may see. Another household's device
// is reported as not found, so its id cannot even be probed.
func (s *Server) ownDevice(ctx context.Context, v viewer, id string) (store.Device, error) {
	d, err := s.st.Device(ctx, id)
	if err != nil {
		return store.Device{}, err
	}
	if err := v.SeeDevice(d); err != nil {
		return store.Device{}, err
	}
	return d, nil
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return "nothing"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// whereWords answers "where does my data go?" as the label's text does;
// for one device's label, it says what leaves now and what could leave
// if turned on.
func whereWords(sh manifest.ShortLayer) string {
	if sh.Choices && len(sh.SharedWith) > 0 {
		return whereNowWords(sh)
	}
	where := "It " + sh.DataGoes + "."
	switch sh.DataGoes {
	case manifest.GoesLinked:
		where = "Some of it leaves this hub, linked to you."
	case manifest.GoesDeidentified:
		where = "Some of it leaves this hub, with your name taken off."
	}
	if len(sh.SharedWith) > 0 {
		where += " It goes to " + joinAnd(namesInSentence(sh.SharedWith)) + "."
		if sh.OnlyIfYouAgree {
			where += " This only happens if you say yes."
		}
	}
	return where
}

func whereNowWords(sh manifest.ShortLayer) string {
	var where string
	switch sh.GoesNow {
	case manifest.GoesLinked:
		where = "Now some of it leaves this hub, linked to you. It goes to " + joinAnd(namesInSentence(sh.SharedNow)) + "."
	case manifest.GoesDeidentified:
		where = "Now some of it leaves this hub, with your name taken off. It goes to " + joinAnd(namesInSentence(sh.SharedNow)) + "."
	default:
		where = "Now nothing leaves this hub."
	}
	var could []string
	for _, n := range sh.SharedWith {
		if !slices.Contains(sh.SharedNow, n) {
			could = append(could, n)
		}
	}
	if len(could) > 0 {
		how := "with your name taken off"
		if sh.DataGoes == manifest.GoesLinked {
			how = "maybe linked to you"
		}
		where += " If you turn it on, some could go to " + joinAnd(namesInSentence(could)) + ", " + how + "."
	}
	return where
}

func namesInSentence(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = nameInSentence(n)
	}
	return out
}

// updatesWords says until when the device gets security updates.
func updatesWords(sh manifest.ShortLayer) string {
	switch {
	case sh.UpdatesUntil == "":
		return "Unknown. The maker does not say for how long."
	case sh.SupportEnded:
		return "Ended on " + sh.UpdatesUntil + "."
	}
	return "Until " + sh.UpdatesUntil + "."
}

// nameInSentence lower-cases a recipient name that starts with a common
// word ("Your energy supplier"), keeping proper names.
func nameInSentence(name string) string {
	first, _, _ := strings.Cut(name, " ")
	switch first {
	case "Your", "The", "A", "An", "Our":
		return strings.ToLower(first[:1]) + name[1:]
	}
	return name
}

// lowerFirst lower-cases the first letter of a sentence-case phrase
// ("Can see you" → "can see you"); phrases with other capitals are names
// and stay as written.
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	for _, c := range s[1:] {
		if unicode.IsUpper(c) {
			return s
		}
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
