package manifest

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A Label is a manifest told in plain words, in two layers like the CMU IoT
// security and privacy label: a short layer that fits on a box (what it
// senses, where the data goes, how long it is kept, how long it gets
// security updates) and a detailed layer with a few plain sentences per
// stream. It is built from the manifest alone: a label describes data and
// never shows any.
//
// Everything in it is written for someone who has never heard of the Data
// Privacy Vocabulary: second person, short sentences, no vocabulary terms
// (see terms.go). The tests hold the text to a Flesch Reading Ease of at
// least 60.
type Label struct {
	DeviceType  string     `json:"deviceType"`
	Title       string     `json:"title"`
	Description string     `json:"description,omitempty"`
	Short       ShortLayer `json:"short"`
	// Streams is the detailed layer, one entry per stream, in the order of
	// Manifest.Streams (by name).
	Streams []StreamLabel `json:"streams"`
	// Correlations are sentences on what streams reveal together (clause
	// 2B c), each combination once.
	Correlations []string    `json:"correlations,omitempty"`
	Responsible  Responsible `json:"responsible"`
}

// ShortLayer is the label's first layer.
type ShortLayer struct {
	// Draft is true for a manifest its owner has not confirmed; the text
	// says so first, under the title.
	Draft bool `json:"draft"`
	// Senses lists what the device reports, in plain words (the stream
	// titles).
	Senses []string `json:"senses"`
	// DataGoes is the most exposing answer across all streams: GoesNowhere
	// ("stays on this hub"), GoesDeidentified ("leaves, de-identified", also
	// for anonymous data) or GoesLinked ("leaves, linked to you").
	DataGoes string `json:"dataGoes"`
	// SharedWith names every recipient outside the hub, each once.
	SharedWith []string `json:"sharedWith,omitempty"`
	// OnlyIfYouAgree is true when every recipient gets data only for a
	// purpose that is off until you turn it on.
	OnlyIfYouAgree bool `json:"onlyIfYouAgree,omitempty"`
	// KeptFor is the longest time the hub keeps any stream ("2 years").
	KeptFor string `json:"keptFor"`
	// OthersKeep are sentences for recipients that keep data longer than
	// the hub does.
	OthersKeep []string `json:"othersKeep,omitempty"`
	// UpdatesUntil is the last day of security updates, in words
	// ("31 December 2031"), or "" when the manifest does not say.
	UpdatesUntil string `json:"updatesUntil"`
	// SupportEnded is true when that day is before the label's date.
	SupportEnded bool `json:"supportEnded"`
	// Support is the support state at the label's date: unknown,
	// supported, ending (within 90 days) or ended.
	Support SupportState `json:"support"`
	// SnoopRisk answers "can it snoop on me?" ("Can tell when someone is
	// home"); empty when no stream carries such data.
	SnoopRisk []string `json:"snoopRisk"`
	// Control says what turning a stream off does.
	Control string `json:"control"`
}

// StreamLabel is the detailed layer for one stream.
type StreamLabel struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Sentence is a short second-person paragraph: what is sent and how
	// often, how it is used, where it goes, how long it is kept and what it
	// can reveal.
	Sentence string         `json:"sentence"`
	Purposes []PurposeLabel `json:"purposes"`
	// Recipients has one or more sentences per recipient outside the hub.
	Recipients []string `json:"recipients,omitempty"`
	KeptFor    string   `json:"keptFor"`
	// Reveals says what the stream can show about people.
	Reveals string `json:"reveals"`
	// RevealsWith are sentences on what it shows together with others.
	RevealsWith []string `json:"revealsWith,omitempty"`
	// Learning is "" or a sentence on automated decisions and machine
	// learning (clause 2B d).
	Learning string `json:"learning,omitempty"`
	// Control says what turning the stream off does.
	Control string `json:"control"`
}

// PurposeLabel is one reason a stream is collected.
type PurposeLabel struct {
	Text      string `json:"text"`
	Essential bool   `json:"essential"` // the device needs it, so it starts on
}

// Responsible says whom to address (clause 2A accountability).
type Responsible struct {
	Maker           string `json:"maker"`
	MakerWeb        string `json:"makerWeb,omitempty"`
	MakerContact    string `json:"makerContact"`
	Contact         string `json:"contact"`         // support
	SecurityContact string `json:"securityContact"` // vulnerability disclosure
	UpdateMechanism string `json:"updateMechanism"`
	UpdatesUntil    string `json:"updatesUntil"`
	SupportEnded    bool   `json:"supportEnded"`
}

// Explain renders a manifest as a plain-language label. now decides
// whether security support has already ended.
func Explain(m *Manifest, now time.Time) Label {
	l := Label{
		DeviceType:  m.DeviceType,
		Title:       m.Title,
		Description: sentence(m.Description),
	}
	l.Short.Draft = m.Draft
	device := "your " + lowerFirst(m.Title)

	// Which streams take part in some combination, so a stream declared
	// non-personal is not said to tell nothing when it helps reveal more.
	inCombination := map[string]bool{}
	for _, s := range m.Streams {
		for _, c := range s.RevealsWith {
			inCombination[s.Name] = true
			for _, o := range c.Streams {
				inCombination[o] = true
			}
		}
	}

	var longest time.Duration
	var keptFor string
	recipientKeeps := map[string]Duration{}
	var recipientOrder []string
	goes := 0 // 0 stays, 1 de-identified, 2 linked
	allOptional := true
	risks := map[string]bool{}
	seenCombo := map[string]bool{}

	for _, s := range m.Streams {
		sl := StreamLabel{
			Name:    s.Name,
			Title:   s.Title,
			KeptFor: s.Retention.Human(),
			Control: streamControl(m.CanStopStreams),
		}
		if s.Retention.D >= longest {
			longest, keptFor = s.Retention.D, s.Retention.Human()
		}
		for _, p := range s.Purposes {
			text := strings.TrimSuffix(strings.TrimSpace(p.Description), ".")
			if text == "" {
				text = PurposeWords(p.ID)
			}
			sl.Purposes = append(sl.Purposes, PurposeLabel{Text: lowerFirst(text), Essential: p.Essential})
		}
		for _, r := range s.Recipients {
			sl.Recipients = append(sl.Recipients, recipientSentence(r, optional(s, r)))
			allOptional = allOptional && optional(s, r)
			if _, ok := recipientKeeps[r.Name]; !ok {
				recipientOrder = append(recipientOrder, r.Name)
			}
			if r.Retention.D >= recipientKeeps[r.Name].D {
				recipientKeeps[r.Name] = r.Retention
			}
			switch r.Identifiable {
			case "linked":
				goes = max(goes, 2)
			default:
				goes = max(goes, 1)
			}
		}
		switch {
		case strings.TrimSpace(s.Reveals) != "":
			sl.Reveals = "It can show " + sentence(s.Reveals)
		case inCombination[s.Name]:
			sl.Reveals = "On its own, it tells little about you."
		default:
			sl.Reveals = "The maker says it tells nothing about you."
		}
		for _, c := range s.RevealsWith {
			sl.RevealsWith = append(sl.RevealsWith,
				"With "+joinAnd(quoteTitles(m, c.Streams))+", it can show "+sentence(c.Reveals))
			all := append([]string{s.Name}, c.Streams...)
			sort.Strings(all)
			key := strings.Join(all, ",") + "|" + c.Reveals
			if !seenCombo[key] {
				seenCombo[key] = true
				names := append([]string{s.Name}, c.Streams...)
				l.Correlations = append(l.Correlations,
					"Together, "+joinAnd(quoteTitles(m, names))+" can show "+sentence(c.Reveals))
			}
		}
		sl.Learning = learning(s.AutomatedDecisions, s.MachineLearning)
		for _, pd := range s.PersonalData {
			for _, r := range snoopRisks {
				for _, t := range r.Terms {
					if t == pd {
						risks[r.Risk] = true
					}
				}
			}
		}
		sl.Sentence = streamSentence(device, s, sl.Reveals)
		l.Short.Senses = append(l.Short.Senses, lowerFirst(s.Title))
		l.Streams = append(l.Streams, sl)
	}

	l.Short.DataGoes = []string{GoesNowhere, GoesDeidentified, GoesLinked}[goes]
	l.Short.SharedWith = recipientOrder
	l.Short.OnlyIfYouAgree = len(recipientOrder) > 0 && allOptional
	l.Short.KeptFor = keptFor
	for _, name := range recipientOrder {
		if d := recipientKeeps[name]; d.D > longest {
			l.Short.OthersKeep = append(l.Short.OthersKeep,
				upperFirst(name)+" may keep it for up to "+d.Human()+".")
		}
	}
	for _, r := range snoopRisks {
		if risks[r.Risk] {
			l.Short.SnoopRisk = append(l.Short.SnoopRisk, r.Risk)
		}
	}
	if m.CanStopStreams {
		l.Short.Control = "You can turn off each kind of data. The device then stops sending it."
	} else {
		l.Short.Control = "You can turn off each kind of data. The hub then drops it, but the device still sends it."
	}
	l.Short.Support = m.Support.State(now)
	if until := m.Support.SecurityUpdatesUntil; !until.IsZero() {
		l.Short.UpdatesUntil = dateWords(until)
		l.Short.SupportEnded = l.Short.Support == SupportEnded
	}
	l.Responsible = Responsible{
		Maker:           m.Maker.Name,
		MakerWeb:        m.Maker.URL,
		MakerContact:    contact(m.Maker.Contact),
		Contact:         contact(m.Support.Contact),
		SecurityContact: contact(m.Support.VulnerabilityDisclosure),
		UpdateMechanism: sentence(m.Support.UpdateMechanism),
		UpdatesUntil:    l.Short.UpdatesUntil,
		SupportEnded:    l.Short.SupportEnded,
	}
	return l
}

// streamSentence writes the stream's paragraph: what is sent and when, how
// it is used, where it goes, how long it is kept, what it can show.
func streamSentence(device string, s *Stream, reveals string) string {
	var parts []string
	what, event := streamObject(s)
	switch {
	case event != "":
		parts = append(parts, upperFirst(device)+" tells the hub "+event+".")
	case !s.Continuous || s.SamplingInterval.D <= 0:
		when := "each time it changes"
		if s.Affordance == "event" {
			when = "each time it happens"
		}
		parts = append(parts, upperFirst(device)+" tells the hub "+what+", "+when+".")
	default:
		parts = append(parts, upperFirst(every(s.SamplingInterval))+", "+device+" tells the hub "+what+".")
	}
	if u := sentence(s.Use); u != "" {
		parts = append(parts, u)
	}
	var always, ifYes []string
	for _, r := range s.Recipients {
		if optional(s, r) {
			ifYes = appendOnce(ifYes, nameInSentence(r.Name))
		} else {
			always = appendOnce(always, nameInSentence(r.Name))
		}
	}
	switch {
	case len(always) > 0:
		parts = append(parts, "It also goes to "+joinAnd(always)+".")
		if len(ifYes) > 0 {
			parts = append(parts, "If you say yes, it also goes to "+joinAnd(ifYes)+".")
		}
	case len(ifYes) > 0:
		parts = append(parts, "It stays on this hub, unless you say yes to sharing it with "+joinAnd(ifYes)+".")
	default:
		parts = append(parts, "It stays on this hub.")
	}
	parts = append(parts, "The hub keeps it for "+s.Retention.Human()+".")
	parts = append(parts, reveals)
	return strings.Join(parts, " ")
}

// streamObject returns what the stream tells, as the object of "tells the
// hub": the stream's description where it reads as one ("how many watts
// your home draws"), else its title. An event described as "Sent each time
// the door opens" gives instead the clause "each time the door opens".
func streamObject(s *Stream) (what, event string) {
	d := strings.TrimSpace(s.Description)
	d = strings.TrimSuffix(d, ".")
	if rest, ok := strings.CutPrefix(d, "Sent "); ok && rest != "" {
		return "", rest
	}
	if d == "" || strings.ContainsAny(d, ".!?;") || len(strings.Fields(d)) > 16 {
		return "the " + lowerFirst(s.Title), ""
	}
	return lowerFirst(d), ""
}

// every turns a sampling interval into "every 5 seconds" or "every minute".
func every(d Duration) string {
	h := d.Human()
	if rest, ok := strings.CutPrefix(h, "1 "); ok {
		return "every " + rest
	}
	return "every " + h
}

// optional reports whether r gets the stream only for a purpose that is off
// until the owner turns it on. A recipient whose purpose is not among the
// stream's own purposes is taken to get it always.
func optional(s *Stream, r Recipient) bool {
	for _, p := range s.Purposes {
		if p.ID == r.Purpose {
			return !p.Essential
		}
	}
	return false
}

func recipientSentence(r Recipient, ifYes bool) string {
	var b strings.Builder
	if ifYes {
		b.WriteString("If you say yes, " + nameInSentence(r.Name) + " gets it")
	} else {
		b.WriteString(upperFirst(r.Name) + " gets it")
	}
	if w, ok := identifiableWords[r.Identifiable]; ok {
		b.WriteString(", " + w + ",")
	}
	b.WriteString(" " + PurposeWords(r.Purpose) + ".")
	b.WriteString(" " + RoleSentence(r.Role))
	b.WriteString(" They keep it for " + r.Retention.Human() + ".")
	if c := contact(r.Contact); c != "" {
		b.WriteString(" Ask them at " + c + ".")
	}
	if r.Terms != "" {
		b.WriteString(" Their terms are at " + r.Terms + ".")
	}
	return b.String()
}

func learning(automated, ml bool) string {
	switch {
	case automated && ml:
		return "The system learns from it over time. It also acts on it by itself, without asking you each time."
	case automated:
		return "The system acts on it by itself, without asking you each time."
	case ml:
		return "The system learns from it over time."
	}
	return ""
}

func streamControl(canStop bool) string {
	if canStop {
		return "You can turn it off. The device then stops sending it."
	}
	return "You can turn it off. The hub then drops it, but the device still sends it."
}

// quoteTitles names streams by their titles, in quotes.
func quoteTitles(m *Manifest, names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		t := n
		if s := m.Stream(n); s != nil && s.Title != "" {
			t = s.Title
		}
		out = append(out, `"`+t+`"`)
	}
	return out
}

// contact shows an e-mail address without its mailto: prefix; URLs as
// they are.
func contact(c string) string {
	c = strings.TrimSpace(c)
	if addr, ok := strings.CutPrefix(c, "mailto:"); ok {
		return addr
	}
	return c
}

// reach says how to use a contact: "write to a@b" or "go to https://…".
func reach(c string) string {
	if strings.HasPrefix(c, "https://") || strings.HasPrefix(c, "http://") {
		return "go to " + c
	}
	return "write to " + c
}

func dateWords(t time.Time) string {
	return fmt.Sprintf("%d %s %d", t.Day(), t.Month(), t.Year())
}

// sentence trims s and makes it a sentence: capital first, full stop last.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	switch s[len(s)-1] {
	case '.', '!', '?':
	default:
		s += "."
	}
	return s
}

// lowerFirst lower-cases the first letter of a sentence-case phrase
// ("Room thermostat" → "room thermostat") so it can stand inside a
// sentence. Phrases with other capitals ("Acme Heat Pro", "CO2 level") are
// names or acronyms and stay as written.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !unicode.IsUpper(r) {
		return s
	}
	for _, c := range s[n:] {
		if unicode.IsUpper(c) {
			return s
		}
	}
	return string(unicode.ToLower(r)) + s[n:]
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// nameInSentence lower-cases a recipient name that starts with a common
// word ("Your energy supplier", "The maker"), keeping proper names.
func nameInSentence(name string) string {
	first, _, _ := strings.Cut(name, " ")
	switch first {
	case "Your", "The", "A", "An", "Our":
		return strings.ToLower(first[:1]) + name[1:]
	}
	return name
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// The rendered label: a list of blocks shared by Text and Markdown, so both
// say exactly the same.

type blockKind int

const (
	bTitle blockKind = iota
	bWarning
	bHeading
	bSubheading
	bPara
	bBullet
	bLead // a short line introducing the bullets below it
)

type block struct {
	kind blockKind
	text string
}

func (l Label) blocks() []block {
	var bs []block
	add := func(k blockKind, text string) { bs = append(bs, block{k, text}) }

	add(bTitle, l.Title+": privacy and security label")
	if l.Short.Draft {
		add(bWarning, "DRAFT. No one has confirmed this label yet. It comes from a device file that was added to this hub, and its owner has not checked it. Do not trust it until they do.")
	}
	if l.Short.SupportEnded {
		add(bWarning, "NO MORE SECURITY FIXES. Security updates for this device ended on "+l.Short.UpdatesUntil+". Think about replacing it.")
	}
	if l.Description != "" {
		add(bPara, l.Description)
	}

	s := l.Short
	add(bHeading, "In short")
	add(bBullet, "What it senses: "+strings.Join(s.Senses, ", ")+".")
	where := "Where your data goes: it " + s.DataGoes + "."
	switch s.DataGoes {
	case GoesLinked:
		where = "Where your data goes: some of it leaves this hub, linked to you."
	case GoesDeidentified:
		where = "Where your data goes: some of it leaves this hub, with your name taken off."
	}
	if len(s.SharedWith) > 0 {
		names := make([]string, len(s.SharedWith))
		for i, n := range s.SharedWith {
			names[i] = nameInSentence(n)
		}
		where += " It goes to " + joinAnd(names) + "."
		if s.OnlyIfYouAgree {
			where += " This only happens if you say yes."
		}
	}
	add(bBullet, where)
	add(bBullet, "How long it is kept: up to "+s.KeptFor+" on this hub."+prefixSpace(strings.Join(s.OthersKeep, " ")))
	if len(s.SnoopRisk) == 0 {
		add(bBullet, "Can it snoop on you? Not from what it sends to the hub.")
	} else {
		var rs []string
		for _, r := range s.SnoopRisk {
			rs = append(rs, "It "+lowerFirst(r)+".")
		}
		add(bBullet, "Can it snoop on you? "+strings.Join(rs, " "))
	}
	switch {
	case s.UpdatesUntil == "":
		add(bBullet, "Security updates: unknown. The maker does not say for how long.")
	case s.Support == SupportEnding:
		add(bBullet, "Security updates: end soon, on "+s.UpdatesUntil+".")
	case s.SupportEnded:
		add(bBullet, "Security updates: ended on "+s.UpdatesUntil+".")
	default:
		add(bBullet, "Security updates: until "+s.UpdatesUntil+".")
	}
	add(bBullet, "Your choice: "+s.Control)

	add(bHeading, "In detail")
	for _, st := range l.Streams {
		add(bSubheading, st.Title)
		add(bPara, st.Sentence)
		add(bLead, "Why it is used:")
		for _, p := range st.Purposes {
			note := " (only if you say yes)."
			if p.Essential {
				note = " (needed for it to work)."
			}
			add(bBullet, upperFirst(p.Text)+note)
		}
		if len(st.Recipients) > 0 {
			add(bLead, "Who else gets it:")
			for _, r := range st.Recipients {
				add(bBullet, r)
			}
		}
		if st.Learning != "" {
			add(bPara, st.Learning)
		}
		add(bPara, st.Control)
	}

	if len(l.Correlations) > 0 {
		add(bHeading, "What your data shows together")
		for _, c := range l.Correlations {
			add(bBullet, c)
		}
	}

	r := l.Responsible
	add(bHeading, "Who is responsible")
	maker := "Made by " + r.Maker + ". To ask them, " + reach(r.MakerContact) + "."
	if r.MakerWeb != "" {
		maker += " Their website is " + r.MakerWeb + "."
	}
	add(bBullet, maker)
	add(bBullet, "For help, "+reach(r.Contact)+".")
	add(bBullet, "To report a security flaw, "+reach(r.SecurityContact)+".")
	if r.UpdateMechanism != "" {
		add(bBullet, "How it gets updates: "+lowerFirst(r.UpdateMechanism))
	}
	switch {
	case r.UpdatesUntil == "":
	case r.SupportEnded:
		add(bBullet, "Security updates ended on "+r.UpdatesUntil+".")
	default:
		add(bBullet, "Security updates until "+r.UpdatesUntil+".")
	}
	return bs
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

// Text renders the whole label as plain text for a terminal, wrapped at
// 78 columns: the short layer, then "In detail" per stream, then what the
// streams show together and who is responsible.
func (l Label) Text() string {
	const width = 78
	var b strings.Builder
	prev := bTitle
	for i, bl := range l.blocks() {
		if i > 0 {
			// A blank line between blocks, except inside a list and under
			// a stream's title.
			if !(bl.kind == bBullet && (prev == bBullet || prev == bLead)) && prev != bSubheading {
				b.WriteString("\n")
			}
		}
		switch bl.kind {
		case bTitle:
			b.WriteString(bl.text + "\n")
			b.WriteString(strings.Repeat("=", utf8.RuneCountInString(bl.text)) + "\n")
		case bHeading:
			b.WriteString(bl.text + "\n")
			b.WriteString(strings.Repeat("-", utf8.RuneCountInString(bl.text)) + "\n")
		case bSubheading:
			b.WriteString(bl.text + "\n")
		case bWarning:
			b.WriteString(wrap("!! "+bl.text, width, "   "))
		case bBullet:
			b.WriteString(wrap("- "+bl.text, width, "  "))
		default:
			b.WriteString(wrap(bl.text, width, ""))
		}
		prev = bl.kind
	}
	return b.String()
}

// Markdown renders the same label as Markdown, for the docs and the
// privacy impact assessment.
func (l Label) Markdown() string {
	var b strings.Builder
	prev := bTitle
	for i, bl := range l.blocks() {
		if i > 0 && !(bl.kind == bBullet && prev == bBullet) {
			b.WriteString("\n")
		}
		t := mdInline(bl.text)
		switch bl.kind {
		case bTitle:
			b.WriteString("# " + t + "\n")
		case bHeading:
			b.WriteString("## " + t + "\n")
		case bSubheading:
			b.WriteString("### " + t + "\n")
		case bWarning:
			b.WriteString("> **" + t + "**\n")
		case bBullet:
			b.WriteString("- " + t + "\n")
		case bLead:
			b.WriteString("**" + t + "**\n")
		default:
			b.WriteString(t + "\n")
		}
		prev = bl.kind
	}
	return b.String()
}

// wrap breaks text into lines of at most width columns; lines after the
// first start with indent. A word longer than a line (a URL) gets a line
// of its own.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	col := 0
	for i, w := range strings.Fields(text) {
		n := utf8.RuneCountInString(w)
		switch {
		case i == 0:
		case col+1+n > width:
			b.WriteString("\n" + indent)
			col = utf8.RuneCountInString(indent)
		default:
			b.WriteString(" ")
			col++
		}
		b.WriteString(w)
		col += n
	}
	b.WriteString("\n")
	return b.String()
}

// mdInline escapes Markdown in authored text and turns e-mail addresses
// and web addresses into links.
func mdInline(s string) string {
	words := strings.Split(s, " ")
	for i, w := range words {
		core := strings.TrimRight(w, ".,;:)")
		tail := w[len(core):]
		switch {
		case strings.HasPrefix(core, "https://") || strings.HasPrefix(core, "http://"):
			words[i] = "<" + core + ">" + tail
		case strings.Count(core, "@") == 1 && !strings.ContainsAny(core, "<>()\"") && strings.Contains(core[strings.IndexByte(core, '@'):], "."):
			words[i] = "<" + core + ">" + tail
		default:
			words[i] = mdEscaper.Replace(w)
		}
	}
	return strings.Join(words, " ")
}

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "#", `\#`, "|", `\|`,
)
