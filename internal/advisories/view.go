package advisories

import (
	"context"
	"strings"
)

// View is a finding in the words the pages, the API and the command line
// show. The same fields serve all three, so they cannot disagree.
type View struct {
	Device     string   `json:"device"`
	DeviceName string   `json:"deviceName"`
	DeviceType string   `json:"deviceType"`
	Firmware   string   `json:"firmware,omitempty"`
	Advisory   string   `json:"advisory"`
	Format     Format   `json:"format"`
	Flaw       string   `json:"flaw"` // CVE or the advisory's id
	Aliases    []string `json:"aliases,omitempty"`
	Title      string   `json:"title,omitempty"`
	// Status is affected, or possibly_affected when the device's version
	// is unknown or cannot be compared.
	Status string `json:"status"`
	// AttackerCan says what the flaw lets an attacker do, in plain words.
	AttackerCan string `json:"attackerCan"`
	// AdvisorySays is the advisory's own one-line description.
	AdvisorySays string `json:"advisorySays,omitempty"`
	Severity     string `json:"severity"` // critical … none, or unknown
	// Score is the CVSS base score; ScoreSource says whether the hub
	// worked it out from the vector ("computed") or took it as the
	// advisory states it ("stated"), or that there is none ("none").
	Score         float64 `json:"score,omitempty"`
	CVSSVersion   string  `json:"cvssVersion,omitempty"`
	CVSSVector    string  `json:"cvssVector,omitempty"`
	ScoreSource   string  `json:"scoreSource"`
	SeverityWords string  `json:"severityWords"`
	// Action says what to do, in plain words; ActionURL points to more.
	Action    string `json:"action"`
	ActionURL string `json:"actionUrl,omitempty"`
	// UpdateReady is true when a signed update that fixes it is ready;
	// UpdateInstalling when it is offered to the device or installing.
	UpdateReady      bool `json:"updateReady"`
	UpdateInstalling bool `json:"updateInstalling"`
	// CanRestrict is true when the owner may put the device on hold until
	// the flaw is fixed (no update is ready and the hub can hold devices);
	// Restricted is true while it is on hold for this advisory.
	CanRestrict bool `json:"canRestrict"`
	Restricted  bool `json:"restricted"`
}

// Views renders findings.
func (s *Service) Views(ctx context.Context, fs []Finding) []View {
	out := make([]View, 0, len(fs))
	for _, f := range fs {
		out = append(out, s.view(ctx, f))
	}
	return out
}

func (s *Service) view(ctx context.Context, f Finding) View {
	sev := f.Vuln.Severity
	v := View{
		Device: f.Device.ID, DeviceName: f.Device.Name, DeviceType: f.Device.Type, Firmware: f.Device.Firmware,
		Advisory: f.Advisory.ID, Format: f.Advisory.Format, Flaw: f.Vuln.ID, Aliases: f.Advisory.Aliases, Title: f.Advisory.Title,
		Status: f.Verdict.String(), AdvisorySays: f.Vuln.Impact,
		Severity: sev.Level, Score: sev.Score, CVSSVersion: sev.Version, CVSSVector: sev.Vector, SeverityWords: sev.Words(),
		ScoreSource: "none",
	}
	switch {
	case sev.Computed:
		v.ScoreSource = "computed"
	case sev.Score > 0 || sev.Stated:
		v.ScoreSource = "stated"
	}
	v.AttackerCan = sev.AttackerCan()
	if v.AttackerCan == "" {
		v.AttackerCan = cmpOr(f.Vuln.Impact, "The advisory does not say what an attacker could do.")
	}
	if s.opts.Holder != nil {
		adv, held := s.opts.Holder.RestrictedFor(f.Device.ID)
		v.Restricted = held && adv == f.Advisory.ID
	}
	if s.opts.Fixes != nil {
		if ver, ok := s.opts.Fixes.FixReady(ctx, f.Device.ID, f.Advisory.ID); ok {
			v.UpdateReady = true
			v.Action = "An update that fixes it is ready: version " + ver + ". Install it from the device page."
			if fi, ok := s.opts.Fixes.(FixProgress); ok && fi.FixInstalling(ctx, f.Device.ID, f.Advisory.ID) {
				v.UpdateInstalling = true
				v.Action = "An update that fixes it is on its way: version " + ver + ". The device page shows how it goes."
			}
			return v
		}
	}
	v.Action, v.ActionURL = actionWords(f.Actions)
	if f.Verdict == VerdictPossibly {
		v.Action = "The hub does not know which version this device runs, so it may not be affected. " + v.Action
	}
	if s.opts.Holder != nil && !v.Restricted {
		if _, held := s.opts.Holder.RestrictedFor(f.Device.ID); !held {
			v.CanRestrict = true
			v.Action += " " + restrictOffer
		}
	}
	return v
}

// actionWords turns remediations into one plain instruction, the most
// useful first: a fix, then a workaround, then what the maker says when
// there is neither.
func actionWords(acts []Action) (string, string) {
	order := []struct{ kind, lead string }{
		{"vendor_fix", "The maker has a fix. "},
		{"workaround", "Until it is fixed: "},
		{"mitigation", "Until it is fixed: "},
		{"no_fix_planned", "The maker does not plan a fix. "},
		{"none_available", "There is no fix yet. "},
	}
	var parts []string
	url := ""
	for _, o := range order {
		for _, a := range acts {
			if a.Kind != o.kind {
				continue
			}
			parts = append(parts, o.lead+sentenceOf(a.Details))
			if url == "" {
				url = a.URL
			}
			break
		}
	}
	for _, a := range acts {
		if a.Kind == "reference" && url == "" {
			url = a.URL
		}
	}
	if len(parts) == 0 {
		return "The advisory names no fix yet. Ask the maker, and think about taking the device off the network.", url
	}
	return strings.Join(parts, " "), url
}

func sentenceOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}
