package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/names"
)

// The document as written. Prefixed keys are the DPV and candor: terms.
type rawManifest struct {
	Context        json.RawMessage            `json:"@context"`
	Type           json.RawMessage            `json:"@type"`
	Title          string                     `json:"title"`
	Description    string                     `json:"description"`
	Version        struct{ Model string }     `json:"version"`
	DeviceType     string                     `json:"candor:deviceType"`
	Maker          *Party                     `json:"candor:maker"`
	Support        *rawSupport                `json:"candor:support"`
	Identifiers    *Identifiers               `json:"candor:identifiers"`
	Updates        *rawUpdates                `json:"candor:updates"`
	Advisories     *AdvisoryFeeds             `json:"candor:advisories"`
	CanStopStreams bool                       `json:"candor:canStopStreams"`
	Draft          bool                       `json:"candor:draft"`
	RevealsAcross  []rawAcross                `json:"candor:revealsAcross"`
	Properties     map[string]json.RawMessage `json:"properties"`
	Events         map[string]json.RawMessage `json:"events"`
}

type rawSupport struct {
	Contact                 string `json:"contact"`
	SecurityUpdatesUntil    string `json:"securityUpdatesUntil"`
	VulnerabilityDisclosure string `json:"vulnerabilityDisclosure"`
	UpdateMechanism         string `json:"updateMechanism"`
}

type rawSchema struct {
	Type                 string               `json:"type"`
	Properties           map[string]*rawField `json:"properties"`
	Required             []string             `json:"required"`
	AdditionalProperties *bool                `json:"additionalProperties"`
}

type rawField struct {
	Type        string   `json:"type"`
	Unit        string   `json:"unit"`
	Description string   `json:"description"`
	Minimum     *float64 `json:"minimum"`
	Maximum     *float64 `json:"maximum"`
	Enum        []string `json:"enum"`
	MaxLength   int      `json:"maxLength"`
}

type rawForm struct {
	Href  string          `json:"href"`
	Topic string          `json:"mqv:topic"`
	Op    json.RawMessage `json:"op"`
}

type rawAffordance struct {
	rawSchema
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Data        *rawSchema `json:"data"` // events carry their payload schema here
	Forms       []rawForm  `json:"forms"`

	PersonalData       []string         `json:"dpv:hasPersonalData"`
	Purposes           []rawPurpose     `json:"dpv:hasPurpose"`
	Recipients         []rawRecipient   `json:"dpv:hasRecipient"`
	Use                string           `json:"candor:use"`
	AutomatedDecisions bool             `json:"candor:automatedDecisions"`
	MachineLearning    bool             `json:"candor:machineLearning"`
	Retention          string           `json:"candor:retention"`
	SamplingInterval   string           `json:"candor:samplingInterval"`
	Continuous         bool             `json:"candor:continuous"`
	Reveals            string           `json:"candor:reveals"`
	RevealsWith        []rawCombination `json:"candor:revealsWith"`
	MaxPerMinute       float64          `json:"candor:maxMessagesPerMinute"`
	MaxPayloadBytes    int              `json:"candor:maxPayloadBytes"`
}

type rawPurpose struct {
	ID          string `json:"@id"`
	Essential   bool   `json:"candor:essential"`
	Description string `json:"description"`
}

type rawRecipient struct {
	Name         string `json:"name"`
	Role         string `json:"@type"`
	Purpose      string `json:"dpv:hasPurpose"`
	Terms        string `json:"candor:terms"`
	Retention    string `json:"candor:retention"`
	Contact      string `json:"candor:contact"`
	Identifiable string `json:"candor:identifiable"`
}

// rawAcross is one candor:revealsAcross rule: what this device type's
// data shows together with other device types' data.
type rawAcross struct {
	Categories  []string `json:"categories"`
	DeviceTypes []string `json:"deviceTypes"`
	Reveals     string   `json:"reveals"`
}

type rawCombination struct {
	Streams []string `json:"streams"`
	Reveals string   `json:"reveals"`
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	typeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	termRE = regexp.MustCompile(`^(dpv|pd|candor):[A-Z][A-Za-z0-9]*$`)
)

// problems collects validation problems.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Parse reads and validates a manifest document. file names it in errors.
// On any problem it returns a *ValidationError listing all of them and no
// manifest: invalid manifests are never half-loaded.
func Parse(file string, data []byte) (*Manifest, error) {
	// Structure first, against the published schema; then the checks a
	// schema cannot express. Both run so one pass reports everything; where
	// both flag the same path the specific message wins.
	var schemaProblems []Problem
	if err := schemaCheck(data); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		schemaProblems = ve.Problems
	}
	var raw rawManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		ps := schemaProblems
		if len(ps) == 0 || !strings.HasPrefix(ps[0].Message, "not valid JSON") {
			ps = append(ps, Problem{Message: jsonProblem(data, err)})
		}
		return nil, &ValidationError{File: file, Problems: ps}
	}
	var ps problems
	m := build(&raw, &ps)
	specific := make(map[string]bool, len(ps))
	for _, p := range ps {
		specific[p.Path] = true
	}
	for _, p := range schemaProblems {
		if !specific[p.Path] {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
		return nil, &ValidationError{File: file, Problems: ps}
	}
	m.Raw = append(json.RawMessage(nil), data...)
	return m, nil
}

// jsonProblem describes a JSON decoding error with its line and column.
func jsonProblem(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset)
		return fmt.Sprintf("line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := lineCol(data, typ.Offset)
		return fmt.Sprintf("line %d, column %d: %s must be %s, not %s", line, col, typ.Field, typ.Type, typ.Value)
	}
	return err.Error()
}

func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func build(raw *rawManifest, ps *problems) *Manifest {
	m := &Manifest{
		DeviceType:     raw.DeviceType,
		Title:          raw.Title,
		Description:    raw.Description,
		ModelVersion:   raw.Version.Model,
		CanStopStreams: raw.CanStopStreams,
		Draft:          raw.Draft,
	}
	if err := names.Check(raw.Title); err != nil {
		ps.add("title", "the title %v", err)
	}
	if !typeRE.MatchString(raw.DeviceType) {
		ps.add("candor:deviceType", "%q must be 1-40 characters of a-z, 0-9 and -", raw.DeviceType)
	}
	checkContext(raw.Context, ps)
	if raw.Maker != nil {
		m.Maker = *raw.Maker
		checkContact("candor:maker.contact", m.Maker.Contact, ps)
	}
	if raw.Support != nil {
		s := raw.Support
		m.Support = Support{Contact: s.Contact, VulnerabilityDisclosure: s.VulnerabilityDisclosure, UpdateMechanism: s.UpdateMechanism}
		checkContact("candor:support.contact", s.Contact, ps)
		checkContact("candor:support.vulnerabilityDisclosure", s.VulnerabilityDisclosure, ps)
		// No date means the maker does not say: the label then says
		// "unknown" rather than guess.
		if s.SecurityUpdatesUntil != "" {
			t, err := time.Parse(time.DateOnly, s.SecurityUpdatesUntil)
			if err != nil {
				ps.add("candor:support.securityUpdatesUntil", "%q is not a date such as 2030-12-31", s.SecurityUpdatesUntil)
			}
			m.Support.SecurityUpdatesUntil = t
		}
	}
	if raw.Identifiers != nil {
		m.Identifiers = *raw.Identifiers
	}
	if raw.Updates != nil {
		m.Updates = buildUpdates(raw.Updates, ps)
	}
	if raw.Advisories != nil {
		m.Advisories = buildAdvisoryFeeds(raw.Advisories, ps)
	}
	for _, group := range []struct {
		key  string
		kind string
		set  map[string]json.RawMessage
	}{{"properties", "property", raw.Properties}, {"events", "event", raw.Events}} {
		for name, body := range group.set {
			path := group.key + "." + name
			if m.Stream(name) != nil || (group.kind == "event" && raw.Properties[name] != nil) {
				ps.add(path, "stream %q is declared twice (as a property and as an event)", name)
				continue
			}
			s := buildStream(path, name, group.kind, body, ps)
			if s != nil {
				m.Streams = append(m.Streams, s)
				sort.Slice(m.Streams, func(i, j int) bool { return m.Streams[i].Name < m.Streams[j].Name })
			}
		}
	}
	m.RevealsAcross = buildAcross(m, raw.RevealsAcross, ps)
	if len(m.Streams) == 0 {
		ps.add("", "declares no data stream: add at least one entry under properties or events")
	}
	for _, s := range m.Streams {
		for i, c := range s.RevealsWith {
			for _, other := range c.Streams {
				if m.Stream(other) == nil {
					ps.add(fmt.Sprintf("%s.%s.candor:revealsWith[%d].streams", streamKey(s), s.Name, i), "%q is not a stream of this manifest", other)
				}
			}
		}
	}
	return m
}

func streamKey(s *Stream) string {
	if s.Affordance == "event" {
		return "events"
	}
	return "properties"
}

func checkContext(ctx json.RawMessage, ps *problems) {
	var list []json.RawMessage
	if err := json.Unmarshal(ctx, &list); err != nil || len(list) < 2 {
		ps.add("@context", "must be a list: the TD 1.1 context IRI, then an object binding the dpv, pd and candor prefixes")
		return
	}
	var first string
	if json.Unmarshal(list[0], &first) != nil || first != TDContext {
		ps.add("@context[0]", "must be %q", TDContext)
	}
	want := map[string]string{"dpv": DPVNamespace, "pd": PDNamespace, "candor": CandorNS}
	found := map[string]bool{}
	for _, item := range list[1:] {
		var obj map[string]any
		if json.Unmarshal(item, &obj) != nil {
			continue
		}
		for k, iri := range want {
			if v, ok := obj[k].(string); ok {
				if v != iri {
					ps.add("@context", "prefix %q must map to %q, not %q", k, iri, v)
				}
				found[k] = true
			}
		}
	}
	for _, k := range []string{"dpv", "pd", "candor"} {
		if !found[k] {
			ps.add("@context", "must bind the %q prefix to %q", k, want[k])
		}
	}
}

func buildStream(path, name, kind string, body json.RawMessage, ps *problems) *Stream {
	if !nameRE.MatchString(name) || name == "control" {
		ps.add(path, "stream name %q must be 1-64 characters of a-z, 0-9 and _, starting with a letter (and not \"control\")", name)
		return nil
	}
	var a rawAffordance
	if err := json.Unmarshal(body, &a); err != nil {
		ps.add(path, "%v", err)
		return nil
	}
	s := &Stream{
		Name: name, Affordance: kind, Title: a.Title, Description: a.Description,
		PersonalData: a.PersonalData, Use: a.Use, AutomatedDecisions: a.AutomatedDecisions,
		MachineLearning: a.MachineLearning, Continuous: a.Continuous, Reveals: a.Reveals,
		MaxPerMinute: a.MaxPerMinute, MaxPayloadBytes: a.MaxPayloadBytes,
	}
	schema, schemaPath := &a.rawSchema, path
	if kind == "event" {
		schemaPath = path + ".data"
		if a.Data == nil {
			ps.add(schemaPath, "an event must describe its payload under \"data\"")
			return nil
		}
		schema = a.Data
	}
	buildFields(s, schemaPath, schema, ps)
	buildForms(s, path, a.Forms, ps)

	for i, pd := range a.PersonalData {
		if !termRE.MatchString(pd) {
			ps.add(fmt.Sprintf("%s.dpv:hasPersonalData[%d]", path, i), "%q is not a pd:, dpv: or candor: term such as pd:Location", pd)
		}
	}
	if len(a.Purposes) == 0 {
		ps.add(path+".dpv:hasPurpose", "every stream needs at least one purpose (why it is collected)")
	}
	for i, p := range a.Purposes {
		pp := fmt.Sprintf("%s.dpv:hasPurpose[%d]", path, i)
		if !termRE.MatchString(p.ID) {
			ps.add(pp+".@id", "%q is not a dpv: or candor: purpose term such as dpv:ServiceProvision", p.ID)
		} else if p.ID == PurposeMachineLearning || p.ID == PurposeAutomatedDecisions {
			ps.add(pp+".@id", "%q is reserved for the hub's own learning switch: mark the stream with candor:machineLearning or candor:automatedDecisions instead", p.ID)
		}
		if strings.TrimSpace(p.Description) == "" {
			ps.add(pp+".description", "say in plain words what the purpose means for this stream")
		}
		s.Purposes = append(s.Purposes, Purpose(p))
	}
	if strings.TrimSpace(a.Use) == "" {
		ps.add(path+".candor:use", "say how the data is used")
	}
	s.Retention = duration(path+".candor:retention", a.Retention, true, ps)
	s.SamplingInterval = duration(path+".candor:samplingInterval", a.SamplingInterval, false, ps)
	for i, r := range a.Recipients {
		rp := fmt.Sprintf("%s.dpv:hasRecipient[%d]", path, i)
		rec := Recipient{Name: r.Name, Role: r.Role, Purpose: r.Purpose, Terms: r.Terms, Contact: r.Contact, Identifiable: r.Identifiable}
		if strings.TrimSpace(r.Name) == "" {
			ps.add(rp+".name", "name the recipient")
		} else if err := names.Check(r.Name); err != nil {
			// The name is shown to people deciding whether to share:
			// it must read as it is stored.
			ps.add(rp+".name", "the recipient's name %v", err)
		}
		if !termRE.MatchString(r.Role) {
			ps.add(rp+".@type", "%q is not a role term such as dpv:DataProcessor or dpv:ThirdParty", r.Role)
		}
		if !termRE.MatchString(r.Purpose) {
			ps.add(rp+".dpv:hasPurpose", "%q is not a purpose term", r.Purpose)
		}
		switch r.Identifiable {
		case "linked", "de-identified", "anonymous":
		default:
			ps.add(rp+".candor:identifiable", "%q must be linked, de-identified or anonymous", r.Identifiable)
		}
		if r.Terms != "" {
			if u, err := url.Parse(r.Terms); err != nil || u.Scheme != "https" {
				ps.add(rp+".candor:terms", "%q is not an https URL", r.Terms)
			}
		}
		checkContact(rp+".candor:contact", r.Contact, ps)
		rec.Retention = duration(rp+".candor:retention", r.Retention, true, ps)
		s.Recipients = append(s.Recipients, rec)
	}
	for _, c := range a.RevealsWith {
		s.RevealsWith = append(s.RevealsWith, Combination(c))
	}
	if s.Personal() && strings.TrimSpace(a.Reveals) == "" {
		ps.add(path+".candor:reveals", "a personal stream must say what it can reveal about people")
	}
	if a.MaxPerMinute <= 0 {
		ps.add(path+".candor:maxMessagesPerMinute", "declare the expected message rate (a positive number)")
	}
	if a.MaxPayloadBytes <= 0 || a.MaxPayloadBytes > 65536 {
		ps.add(path+".candor:maxPayloadBytes", "declare the largest payload in bytes (1-65536)")
	}
	return s
}

func buildFields(s *Stream, path string, sc *rawSchema, ps *problems) {
	if sc.Type != "object" {
		ps.add(path+".type", "a reading is a JSON object: type must be \"object\", not %q", sc.Type)
		return
	}
	if sc.AdditionalProperties == nil || *sc.AdditionalProperties {
		ps.add(path+".additionalProperties", "must be false: a manifest declares every field it sends")
	}
	if len(sc.Properties) == 0 {
		ps.add(path+".properties", "declare at least one field")
	}
	names := make([]string, 0, len(sc.Properties))
	for n := range sc.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := sc.Properties[n]
		fp := path + ".properties." + n
		if !nameRE.MatchString(n) {
			ps.add(fp, "field name %q must be 1-64 characters of a-z, 0-9 and _, starting with a letter", n)
			continue
		}
		switch f.Type {
		case "number", "integer":
			if f.Minimum == nil || f.Maximum == nil {
				ps.add(fp, "a numeric field needs minimum and maximum (the allowed range)")
			} else if *f.Minimum > *f.Maximum {
				ps.add(fp, "minimum %v is above maximum %v", *f.Minimum, *f.Maximum)
			}
			if strings.TrimSpace(f.Unit) == "" {
				ps.add(fp+".unit", "a numeric field needs a unit (e.g. \"degree Celsius\", \"percent\", \"count\")")
			}
		case "boolean":
		case "string":
			if len(f.Enum) == 0 && f.MaxLength <= 0 {
				ps.add(fp, "a text field needs enum (the allowed values) or maxLength")
			}
		default:
			ps.add(fp+".type", "%q must be number, integer, boolean or string", f.Type)
		}
		s.Fields = append(s.Fields, &Field{Name: n, Type: f.Type, Unit: f.Unit, Description: f.Description,
			Min: f.Minimum, Max: f.Maximum, Enum: f.Enum, MaxLength: f.MaxLength})
	}
	for _, r := range sc.Required {
		if sc.Properties[r] == nil {
			ps.add(path+".required", "%q is required but not declared under properties", r)
		}
	}
	s.Required = sc.Required
}

func buildForms(s *Stream, path string, forms []rawForm, ps *problems) {
	want := TopicTemplate + s.Name
	for i, f := range forms {
		if f.Topic == "" {
			continue
		}
		if f.Topic != want {
			ps.add(fmt.Sprintf("%s.forms[%d].mqv:topic", path, i), "%q must be %q (the hub's topic layout)", f.Topic, want)
		}
		s.Topic = f.Topic
	}
	if s.Topic == "" {
		ps.add(path+".forms", "declare the MQTT topic: a form with \"mqv:topic\": %q", want)
	}
}

func duration(path, v string, required bool, ps *problems) Duration {
	if v == "" {
		if required {
			ps.add(path, "required: an ISO 8601 duration such as P30D or P1Y")
		}
		return Duration{}
	}
	d, err := ParseDuration(v)
	if err != nil {
		ps.add(path, "%v", err)
	}
	return d
}

// checkContact accepts a mailto: or https: URL, or a bare e-mail address.
func checkContact(path, v string, ps *problems) {
	if strings.TrimSpace(v) == "" {
		ps.add(path, "required: an e-mail address or https URL")
		return
	}
	if addr, ok := strings.CutPrefix(v, "mailto:"); ok {
		v = addr
	} else if u, err := url.Parse(v); err == nil && u.Scheme == "https" && u.Host != "" {
		return
	}
	if _, err := mail.ParseAddress(v); err != nil {
		ps.add(path, "%q is not an e-mail address or https URL", v)
	}
}

func newDecoder(data []byte) *json.Decoder { return json.NewDecoder(bytes.NewReader(data)) }
