// Package manifest reads, validates, enforces and explains data manifests:
// per device type, a W3C Web of Things Thing Model (TD 1.1) whose
// properties and events are the device's data streams, extended with
// privacy terms from the W3C Data Privacy Vocabulary (DPV) and, where
// neither standard has a term, Candor's own terms under the candor: prefix
// (see docs/MANIFESTS.md).
//
// It serves clause 2A of the IoT Good Practice paper (meaningful
// transparency: what is tracked, why, how it is used, who receives it, how
// long it is kept, whom to address) and clause 4 (education): the hub
// refuses data a manifest does not declare, so the label cannot lie, and
// renders every manifest as a plain-language label.
package manifest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Context IRIs of a manifest's JSON-LD @context.
const (
	TDContext     = "https://www.w3.org/2022/wot/td/v1.1"
	DPVNamespace  = "https://w3id.org/dpv#"
	PDNamespace   = "https://w3id.org/dpv/pd#"
	CandorNS      = "https://w3id.org/candor#"
	TopicTemplate = "candor/{{DEVICE_ID}}/" // every stream's mqv:topic starts with this
)

// Manifest is a validated data manifest of one device type.
type Manifest struct {
	DeviceType     string
	Title          string
	Description    string
	ModelVersion   string // the Thing Model's version.model
	Maker          Party
	Support        Support
	CanStopStreams bool // the device stops generating a stream when told to
	Draft          bool // imported, not yet confirmed by its owner
	Streams        []*Stream
	Identifiers    Identifiers
	// Updates names the maker's signed update repository; nil when none is named.
	Updates *Updates
	// RevealsAcross is what this device type's data shows together with
	// other device types' data (candor:revealsAcross), by personal-data
	// category. Each rule names this device type first in DeviceTypes.
	RevealsAcross []InferenceRule
	// Advisories names the maker's advisory feeds; nil when none is named.
	Advisories *AdvisoryFeeds
	// Raw is the manifest document as given, kept so the exact text the
	// owner accepted can be served back.
	Raw json.RawMessage
}

// Party names an organisation and how to reach it.
type Party struct {
	Name    string `json:"name"`
	URL     string `json:"url,omitempty"`
	Contact string `json:"contact"`
}

// Support is the device type's security support promise.
type Support struct {
	Contact                 string    `json:"contact"`
	SecurityUpdatesUntil    time.Time `json:"-"`
	VulnerabilityDisclosure string    `json:"vulnerabilityDisclosure"`
	UpdateMechanism         string    `json:"updateMechanism"`
}

// Identifiers name a device type the way vulnerability advisories do
// (OSV affected packages, CSAF product trees).
type Identifiers struct {
	Model string `json:"model,omitempty"` // the maker's model name or number
	PURL  string `json:"purl,omitempty"`  // package URL without version, e.g. pkg:generic/acme/t1
	CPE   string `json:"cpe,omitempty"`   // CPE 2.3 name, e.g. cpe:2.3:h:acme:t1:*:*:*:*:*:*:*:*
}

// SupportState is where a device type stands in its security support.
type SupportState string

// Support states. SupportUnknown is the honest answer when the manifest
// gives no date: never a made-up one.
const (
	SupportUnknown SupportState = "unknown"
	SupportActive  SupportState = "supported"
	SupportEnding  SupportState = "ending" // within SupportWarning of the end
	SupportEnded   SupportState = "ended"
)

// SupportWarning is how long before the end of security updates the hub
// starts warning, so owners have time to plan a replacement.
const SupportWarning = 90 * 24 * time.Hour

// State says where support stands at now. The promise covers the whole of
// its last day (UTC).
func (s Support) State(now time.Time) SupportState {
	until := s.SecurityUpdatesUntil
	if until.IsZero() {
		return SupportUnknown
	}
	end := time.Date(until.Year(), until.Month(), until.Day()+1, 0, 0, 0, 0, time.UTC)
	switch {
	case !now.Before(end):
		return SupportEnded
	case end.Sub(now) <= SupportWarning:
		return SupportEnding
	}
	return SupportActive
}

// Stream is one declared data stream (a TD property or event).
type Stream struct {
	Name        string
	Affordance  string // "property" or "event"
	Title       string
	Description string
	Topic       string // mqv:topic with {{DEVICE_ID}}
	Fields      []*Field
	Required    []string

	PersonalData       []string // DPV pd: (or candor:) categories; empty means not personal
	Purposes           []Purpose
	Use                string
	AutomatedDecisions bool
	MachineLearning    bool
	Recipients         []Recipient
	Retention          Duration // longest the hub may keep it
	SamplingInterval   Duration
	Continuous         bool
	Reveals            string
	RevealsWith        []Combination
	MaxPerMinute       float64 // declared behaviour profile
	MaxPayloadBytes    int
}

// Personal reports whether the stream carries personal data.
func (s *Stream) Personal() bool { return len(s.PersonalData) > 0 }

// Field is one payload member of a stream.
type Field struct {
	Name        string
	Type        string // number, integer, boolean or string
	Unit        string
	Description string
	Min, Max    *float64
	Enum        []string
	MaxLength   int
}

// Purpose is why a stream is collected.
type Purpose struct {
	ID          string // dpv: or candor: term
	Essential   bool   // the device cannot work without it (consent starts on)
	Description string
}

// Recipient is someone outside the hub who receives a stream.
type Recipient struct {
	Name         string
	Role         string // dpv:DataProcessor, dpv:ThirdParty, …
	Purpose      string
	Terms        string
	Retention    Duration
	Contact      string
	Identifiable string // "linked", "de-identified" or "anonymous"
}

// Combination is what a stream reveals together with others.
type Combination struct {
	Streams []string
	Reveals string
}

// Stream returns the named stream, or nil.
func (m *Manifest) Stream(name string) *Stream {
	i := sort.Search(len(m.Streams), func(i int) bool { return m.Streams[i].Name >= name })
	if i < len(m.Streams) && m.Streams[i].Name == name {
		return m.Streams[i]
	}
	return nil
}

// Field returns the named field, or nil.
func (s *Stream) Field(name string) *Field {
	for _, f := range s.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// StreamNames lists the declared streams in order.
func (m *Manifest) StreamNames() []string {
	out := make([]string, len(m.Streams))
	for i, s := range m.Streams {
		out[i] = s.Name
	}
	return out
}

// SamplePayload returns a reading the manifest accepts on stream s, with
// every field at a plausible value; used in device instructions.
func (s *Stream) SamplePayload() []byte {
	obj := make(map[string]any, len(s.Fields))
	for _, f := range s.Fields {
		switch f.Type {
		case "boolean":
			obj[f.Name] = true
		case "string":
			if len(f.Enum) > 0 {
				obj[f.Name] = f.Enum[0]
			} else {
				obj[f.Name] = "text"
			}
		default:
			v := 1.0
			switch {
			case f.Min != nil && f.Max != nil:
				v = (*f.Min + *f.Max) / 2
			case f.Min != nil:
				v = *f.Min
			case f.Max != nil:
				v = *f.Max
			}
			if f.Type == "integer" {
				obj[f.Name] = int64(v)
			} else {
				obj[f.Name] = v
			}
		}
	}
	b, _ := json.Marshal(obj)
	return b
}

// Problem is one thing wrong with a manifest, located by a dotted path
// into the document ("events.temperature.candor:retention").
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found in one manifest. A manifest
// with any problem is never loaded, not even in part.
type ValidationError struct {
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manifest %s is invalid", e.File)
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
