// Package importer drafts data manifests from the device descriptions of
// real ecosystems, so an owner starts from the device's own account of its
// data instead of a blank page:
//
//   - FromHomeAssistant reads Home Assistant MQTT discovery payloads (the
//     JSON published to homeassistant/<component>/[<node>/]<object>/config)
//     for the entities of one device; FromHomeAssistantDiscovery does the
//     same with the discovery topics known;
//   - FromZigbee2MQTT reads one device entry of Zigbee2MQTT's
//     bridge/devices (its definition and exposes);
//   - Confirm records the owner's confirmation of a draft.
//
// The importers return a complete manifest document (indented JSON) that passes
// manifest.Parse, with "candor:draft": true. Fields, types, units and
// ranges come from the source where it states them; everything the source
// cannot know — data categories, purposes, retention, what a stream
// reveals, the support promise and the contacts — is a suggestion or an
// obviously fake placeholder, and every such text says so ("Suggested from
// Home Assistant device_class motion — check before confirming"). Drafts
// are never enforced by the hub; Confirm is the owner's act of accepting
// one.
//
// Each stream's topic follows the hub's layout, candor/{{DEVICE_ID}}/<stream>,
// with a JSON object payload. Neither ecosystem publishes that way, so a
// bridge (or the device's firmware) republishes; stream and field
// descriptions name the source topics, templates and payload keys it reads.
//
// A manifest describes a device type, so what identifies one device — its
// name, identifiers and serial number, its IEEE address and friendly name —
// is not copied into the draft.
//
// Errors about the input are *InputError values that say where the problem
// is, such as `config 2: state_topic missing` or
// `definition.exposes[3]: unknown type "foo"`. No input makes the importers
// panic, and a draft they return always passes manifest.Parse (they check it
// before returning it).
package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

// Placeholders that pass validation but cannot be mistaken for real
// values: the .invalid top-level domain never resolves (RFC 6761).
const (
	PlaceholderContact = "mailto:unknown@invalid.invalid"
	PlaceholderMaker   = "Unknown maker (edit before confirming)"
)

// Suggested defaults for every imported stream.
const (
	suggestedRetention    = "P30D"
	suggestedPerMinute    = 60
	suggestedPayloadBytes = 256
	textMaxLength         = 256
)

// now is the clock that dates a draft; tests replace it.
var now = time.Now

// InputError is a problem with the input, located in it: Where is
// "config 2", "config 1, component \"t\"" or "definition.exposes[3]".
type InputError struct {
	Where   string
	Problem string
}

func (e *InputError) Error() string {
	if e.Where == "" {
		return e.Problem
	}
	return e.Where + ": " + e.Problem
}

func inputErr(where, format string, args ...any) *InputError {
	return &InputError{Where: where, Problem: fmt.Sprintf(format, args...)}
}

// The document as written, in the order the shipped templates use.
type document struct {
	Context     []any                 `json:"@context"`
	Type        string                `json:"@type"`
	Title       string                `json:"title"`
	Description string                `json:"description"`
	Version     docVersion            `json:"version"`
	DeviceType  string                `json:"candor:deviceType"`
	Draft       bool                  `json:"candor:draft"`
	Maker       docParty              `json:"candor:maker"`
	Support     docSupport            `json:"candor:support"`
	CanStop     bool                  `json:"candor:canStopStreams"`
	Properties  map[string]*docStream `json:"properties"`
}

type docVersion struct {
	Model string `json:"model"`
}

type docParty struct {
	Name    string `json:"name"`
	URL     string `json:"url,omitempty"`
	Contact string `json:"contact"`
}

type docSupport struct {
	Contact                 string `json:"contact"`
	SecurityUpdatesUntil    string `json:"securityUpdatesUntil,omitempty"`
	VulnerabilityDisclosure string `json:"vulnerabilityDisclosure"`
	UpdateMechanism         string `json:"updateMechanism"`
}

type docStream struct {
	Title                string               `json:"title"`
	Description          string               `json:"description"`
	Type                 string               `json:"type"`
	Properties           map[string]*docField `json:"properties"`
	Required             []string             `json:"required,omitempty"`
	AdditionalProperties bool                 `json:"additionalProperties"`
	ReadOnly             bool                 `json:"readOnly"`
	Observable           bool                 `json:"observable"`
	Forms                []docForm            `json:"forms"`
	PersonalData         []string             `json:"dpv:hasPersonalData"`
	Purposes             []docPurpose         `json:"dpv:hasPurpose"`
	Use                  string               `json:"candor:use"`
	AutomatedDecisions   bool                 `json:"candor:automatedDecisions"`
	MachineLearning      bool                 `json:"candor:machineLearning"`
	Retention            string               `json:"candor:retention"`
	Continuous           bool                 `json:"candor:continuous"`
	Reveals              string               `json:"candor:reveals,omitempty"`
	RevealsWith          []docCombination     `json:"candor:revealsWith,omitempty"`
	MaxPerMinute         float64              `json:"candor:maxMessagesPerMinute"`
	MaxPayloadBytes      int                  `json:"candor:maxPayloadBytes"`

	// Not part of the document: how the stream was classified, for
	// combinations across streams, and what the suggestions came from.
	prof      *profile
	suggested string
}

type docField struct {
	Type        string   `json:"type"`
	Unit        string   `json:"unit,omitempty"`
	Description string   `json:"description"`
	Minimum     *float64 `json:"minimum,omitempty"`
	Maximum     *float64 `json:"maximum,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	MaxLength   int      `json:"maxLength,omitempty"`
}

type docForm struct {
	Href  string `json:"href"`
	Topic string `json:"mqv:topic"`
	Op    string `json:"op"`
	QoS   string `json:"mqv:qos"`
}

type docPurpose struct {
	ID          string `json:"@id"`
	Essential   bool   `json:"candor:essential"`
	Description string `json:"description"`
}

type docCombination struct {
	Streams []string `json:"streams"`
	Reveals string   `json:"reveals"`
}

func newDocument(deviceType string) *document {
	return &document{
		Context: []any{
			manifest.TDContext,
			map[string]string{
				"dpv":    manifest.DPVNamespace,
				"pd":     manifest.PDNamespace,
				"candor": manifest.CandorNS,
				"mqv":    "http://www.example.org/mqtt-binding#",
			},
		},
		Type:       "tm:ThingModel",
		Version:    docVersion{Model: "0.1.0"},
		DeviceType: deviceType,
		Draft:      true,
		Properties: map[string]*docStream{},
	}
}

// newStream starts a stream with the suggested defaults.
func newStream(name, title string) *docStream {
	return &docStream{
		Title:      clip(title, 120),
		Type:       "object",
		Properties: map[string]*docField{},
		ReadOnly:   true,
		Observable: true,
		Forms: []docForm{{
			Href:  "mqtt://{{HUB}}",
			Topic: manifest.TopicTemplate + name,
			Op:    "observeproperty",
			QoS:   "1",
		}},
		PersonalData:    []string{},
		Retention:       suggestedRetention,
		MaxPerMinute:    suggestedPerMinute,
		MaxPayloadBytes: suggestedPayloadBytes,
	}
}

// applyProfiles sets the stream's privacy suggestions from the profiles of
// its fields. items[i] names what profs[i] was suggested from ("device_class
// motion", "occupancy"); singular and plural name the source ("Home
// Assistant", "Zigbee2MQTT property", "Zigbee2MQTT properties"). A stream
// that carries any personal data gets every purpose as not essential, so
// consent starts off until the owner decides otherwise.
func (s *docStream) applyProfiles(profs []*profile, items []string, singular, plural string) {
	type acc struct {
		words string
		items []string
	}
	var purposeOrder, revealsOrder []string
	purposes := map[string]*acc{}
	reveals := map[string]*acc{}
	add := func(a *acc, item string) {
		for _, it := range a.items {
			if it == item {
				return
			}
		}
		a.items = append(a.items, item)
	}
	// Most revealing first, so the first purpose and category are the ones
	// that matter most.
	order := make([]int, len(profs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return profRank(profs[order[a]]) < profRank(profs[order[b]]) })
	seenPD := map[string]bool{}
	for _, i := range order {
		p := profs[i]
		for _, pd := range p.personal {
			if !seenPD[pd] {
				seenPD[pd] = true
				s.PersonalData = append(s.PersonalData, pd)
			}
		}
		for _, ps := range p.purposes {
			a := purposes[ps.id]
			if a == nil {
				a = &acc{words: ps.words}
				purposes[ps.id] = a
				purposeOrder = append(purposeOrder, ps.id)
			}
			add(a, items[i])
		}
		if p.reveals != "" {
			a := reveals[p.reveals]
			if a == nil {
				a = &acc{words: p.reveals}
				reveals[p.reveals] = a
				revealsOrder = append(revealsOrder, p.reveals)
			}
			add(a, items[i])
		}
	}
	from := func(items []string) string {
		if len(items) == 1 {
			return "suggested from " + singular + " " + items[0]
		}
		return "suggested from " + plural + " " + joinWords(items)
	}
	var all []string
	for _, i := range order {
		dup := false
		for _, a := range all {
			dup = dup || a == items[i]
		}
		if !dup {
			all = append(all, items[i])
		}
	}
	s.suggested = from(all)
	for _, id := range purposeOrder {
		a := purposes[id]
		s.Purposes = append(s.Purposes, docPurpose{
			ID:          id,
			Essential:   len(s.PersonalData) == 0,
			Description: a.words + " (" + from(a.items) + " — check before confirming)",
		})
	}
	switch len(revealsOrder) {
	case 0:
	case 1:
		a := reveals[revealsOrder[0]]
		s.Reveals = upperFirst(from(a.items)) + " — check before confirming: " + a.words + "."
	default:
		parts := make([]string, len(revealsOrder))
		for i, r := range revealsOrder {
			a := reveals[r]
			parts[i] = a.words + " (" + from(a.items) + ")"
		}
		s.Reveals = "Suggested — check before confirming: " + strings.Join(parts, "; ") + "."
	}
	s.prof = profs[order[0]]
}

// profRank orders profiles from the most to the least revealing.
func profRank(p *profile) int {
	for i, q := range []*profile{profHealth, profImage, profPresence, profEnergy, profWater, profActuator,
		profPreference, profUnknown, profAmbient, profSafety, profDevice} {
		if p == q {
			return i
		}
	}
	return 100
}

func joinWords(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// field builders

func numberField(desc, unit string, min, max float64) *docField {
	lo, hi := finite(min, -wide), finite(max, wide)
	if lo > hi {
		lo, hi = hi, lo
	}
	return &docField{Type: "number", Unit: unit, Description: desc, Minimum: &lo, Maximum: &hi}
}

func finite(v, fallback float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fallback
	}
	return v
}

func boolField(desc string) *docField { return &docField{Type: "boolean", Description: desc} }

func enumField(desc string, values []string) *docField {
	return &docField{Type: "string", Description: desc, Enum: values}
}

func textField(desc string, maxLen int) *docField {
	return &docField{Type: "string", Description: desc, MaxLength: maxLen}
}

// finish renders the document, checks it is a valid draft manifest and
// returns it. A draft that does not validate is a bug in this package, not
// a problem with the input, and is reported as such.
func finish(d *document) ([]byte, error) {
	d.Title = clip(d.Title, 120)
	d.Description = clip(d.Description, 2000)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("importer: render draft: %w", err)
	}
	out := buf.Bytes()
	m, err := manifest.Parse("imported draft", out)
	if err != nil {
		return nil, fmt.Errorf("importer: the generated draft does not validate (a bug in the importer): %w", err)
	}
	if !m.Draft {
		return nil, fmt.Errorf("importer: the generated draft is not marked draft (a bug in the importer)")
	}
	return out, nil
}

// deviceTypeFrom checks an explicit device type, or derives one from the
// candidates (model, name, …) when it is empty.
func deviceTypeFrom(explicit string, candidates ...string) (string, error) {
	if explicit != "" {
		if !validType(explicit) {
			return "", inputErr("device type", "%q must be 1-40 characters of a-z, 0-9 and -, starting with a letter or digit", clip(explicit, 60))
		}
		return explicit, nil
	}
	for _, c := range candidates {
		t := strings.Trim(strings.ReplaceAll(sanitize(c, ""), "_", "-"), "-")
		if len(t) > 40 {
			t = strings.TrimRight(t[:40], "-")
		}
		if validType(t) {
			return t, nil
		}
	}
	return "", inputErr("device type", "none given and none can be derived from the input: pass one")
}

func validType(t string) bool {
	if len(t) < 1 || len(t) > 40 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0
		if !ok {
			return false
		}
	}
	return true
}

// supportPlaceholder is the honest support promise of an imported device:
// nothing is known, so it names no end date and the label says "unknown".
func supportPlaceholder(updateMechanism string) docSupport {
	return docSupport{
		Contact:                 PlaceholderContact,
		VulnerabilityDisclosure: PlaceholderContact,
		UpdateMechanism:         updateMechanism,
	}
}

const placeholderNote = "Everything about privacy here — data categories, purposes, retention, what each stream reveals — is a suggestion, and the maker's and support contacts are placeholders (unknown@invalid.invalid); how long it gets security updates is unknown because the source does not say. Check and edit all of it before confirming."
