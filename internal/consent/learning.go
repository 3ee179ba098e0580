package consent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

// Learning uses. A stream the manifest marks candor:machineLearning or
// candor:automatedDecisions has, besides its purposes, one use of that
// kind with recipient RecipientHub ("on this hub and in the device"),
// keyed like any other use by one of these reserved purpose terms. It is
// switched with Set, so the switch is a consent record of its own,
// logged, with a receipt, and in force for the next reading. Manifests
// may not declare these terms as purposes (the parser refuses them).
//
// A learning use never keeps a stream collected on its own: learning is a
// use of what is collected for the stream's purposes, never a reason to
// collect it. So turning it off leaves collection and storage as they
// are, and turning every purpose off stops the learning too.
//
// Default: on when the manifest the device was added under already marked
// the stream (the label said so when the device was added), off when a
// later version adds the mark: a newer manifest never widens what was
// agreed.
const (
	PurposeMachineLearning    = manifest.PurposeMachineLearning
	PurposeAutomatedDecisions = manifest.PurposeAutomatedDecisions
)

// IsLearningPurpose reports whether purpose is one of the reserved terms.
func IsLearningPurpose(purpose string) bool {
	return purpose == PurposeMachineLearning || purpose == PurposeAutomatedDecisions
}

// marked reports whether st carries the learning mark of purpose.
func marked(st *manifest.Stream, purpose string) bool {
	switch purpose {
	case PurposeMachineLearning:
		return st.MachineLearning
	case PurposeAutomatedDecisions:
		return st.AutomatedDecisions
	}
	return false
}

// learningPurpose is a reserved purpose in the shape Set records, with
// plain words for it.
func learningPurpose(purpose string) manifest.Purpose {
	if purpose == PurposeMachineLearning {
		return manifest.Purpose{ID: purpose, Description: "Learning from it, which changes how the device or your home behaves"}
	}
	return manifest.Purpose{ID: purpose, Description: "Deciding things from it automatically, without a person checking each time"}
}

// learningDefault is the state of a learning use nobody decided.
func (dt *deviceTable) learningDefault(st *manifest.Stream, purpose string) bool {
	if !marked(st, purpose) {
		return false
	}
	if dt.base == nil {
		return true
	}
	b := dt.base.Manifest.Stream(st.Name)
	return b != nil && marked(b, purpose)
}

// learningOn is whether the learning use is in force for the next
// reading: marked, switched on, and the stream collected.
func (dt *deviceTable) learningOn(st *manifest.Stream, purpose string, collect bool) bool {
	if !collect || !marked(st, purpose) {
		return false
	}
	on, _ := dt.useOn(st, purpose, RecipientHub)
	return on
}

// LearningUse is one learning use of one stream of one device, as the
// machine-learning register lists it.
type LearningUse struct {
	DeviceID   string `json:"device_id"`
	DeviceType string `json:"device_type"`
	Stream     string `json:"stream"`
	Title      string `json:"title"`
	// Purpose is PurposeMachineLearning or PurposeAutomatedDecisions: give
	// it to Set (recipient RecipientHub) to switch this use alone.
	Purpose string `json:"purpose"`
	// Kind says it in words: "learns" or "decides automatically".
	Kind string `json:"kind"`
	// From lists what each reading carries, in plain words: what it
	// learns or decides from.
	From []string `json:"from"`
	// Changes is the manifest's candor:use: what it changes in the device
	// or the home.
	Changes string `json:"changes"`
	// On is the switch; InForce is whether the next reading is used so
	// (on, and the stream collected).
	On      bool   `json:"on"`
	InForce bool   `json:"in_force"`
	Source  Source `json:"source"`
	Why     string `json:"why"`

	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	RecordID  string    `json:"record_id,omitempty"`
}

// Learning lists the learning uses of a device's streams, against the
// manifest in force, in stream order (learning before automated
// decisions).
func (s *Service) Learning(ctx context.Context, deviceID string) ([]LearningUse, error) {
	dt, err := s.table(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	var out []LearningUse
	for _, st := range dt.entry.Manifest.Streams {
		for _, purpose := range []string{PurposeMachineLearning, PurposeAutomatedDecisions} {
			if !marked(st, purpose) {
				continue
			}
			d := dt.lookup(st.Name)
			u := LearningUse{DeviceID: deviceID, DeviceType: dt.entry.Manifest.DeviceType, Stream: st.Name, Title: st.Title,
				Purpose: purpose, Kind: "learns", Changes: strings.TrimSpace(st.Use), From: fieldWords(st)}
			if purpose == PurposeAutomatedDecisions {
				u.Kind = "decides automatically"
				u.InForce = d.Decide
			} else {
				u.InForce = d.Learn
			}
			if u.Title == "" {
				u.Title = st.Name
			}
			var explicit bool
			u.On, explicit = dt.useOn(st, purpose, RecipientHub)
			if explicit {
				ed := dt.explicit[useKey{st.Name, purpose, RecipientHub}]
				u.Source, u.DecidedBy, u.DecidedAt, u.RecordID = SourceExplicit, ed.AccountID, ed.DecidedAt, ed.RecordID
				u.Why = fmt.Sprintf("Turned %s on %s.", onOff(u.On), dateWords(ed.DecidedAt))
			} else {
				u.Source = SourceDefault
				if u.On {
					u.Why = "On since the device was added: its label said so then. You can turn it off."
				} else {
					u.Why = "Off until you say yes: a newer manifest added it."
				}
			}
			if u.On && !d.Collect {
				u.Why += " Nothing is collected from this stream now, so nothing is used."
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// fieldWords lists what each reading of st carries, in plain words.
func fieldWords(st *manifest.Stream) []string {
	var out []string
	for _, f := range st.Fields {
		w := f.Description
		if w == "" {
			w = f.Name
		}
		if f.Unit != "" {
			w += " (" + f.Unit + ")"
		}
		out = append(out, w)
	}
	return out
}

// Control is the retained message that tells a device about one of its
// streams: {"collect": …}, and, for a stream its manifest marks, whether
// it may learn from it ("learn") and decide from it automatically
// ("decide"). Devices that know neither member ignore it.
func (d Decision) Control() []byte {
	b := fmt.Appendf(nil, `{"collect":%t`, d.Collect)
	if d.learns {
		b = fmt.Appendf(b, `,"learn":%t`, d.Learn)
	}
	if d.decides {
		b = fmt.Appendf(b, `,"decide":%t`, d.Decide)
	}
	return append(b, '}')
}
