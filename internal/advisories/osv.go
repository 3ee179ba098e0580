package advisories

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// osvDoc is the part of an OSV 1.x document matching reads.
type osvDoc struct {
	ID               string         `json:"id"`
	Modified         time.Time      `json:"modified"`
	Withdrawn        *time.Time     `json:"withdrawn"`
	Aliases          []string       `json:"aliases"`
	Summary          string         `json:"summary"`
	Details          string         `json:"details"`
	Severity         []osvSeverity  `json:"severity"`
	Affected         []osvAffected  `json:"affected"`
	References       []osvReference `json:"references"`
	DatabaseSpecific map[string]any `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type osvAffected struct {
	Package *struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		PURL      string `json:"purl"`
	} `json:"package"`
	Severity []osvSeverity `json:"severity"`
	Ranges   []struct {
		Type   string              `json:"type"`
		Events []map[string]string `json:"events"`
	} `json:"ranges"`
	Versions []string `json:"versions"`
}

// readOSV reads a document that passed the OSV schema. It returns problems
// the schema cannot express (a CVSS vector that does not parse).
func readOSV(data []byte) (*Advisory, []Problem) {
	var d osvDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, []Problem{{Path: "$", Message: err.Error()}}
	}
	a := &Advisory{ID: d.ID, Format: FormatOSV, Title: firstLine(d.Summary, d.Details), Aliases: d.Aliases, Modified: d.Modified.UTC()}
	if d.Withdrawn != nil {
		// A withdrawn entry is kept (it replaces the earlier one) but
		// concerns nobody any more.
		a.Withdrawn = true
	}
	var ps []Problem
	v := Vuln{ID: d.ID, Impact: firstLine(d.Summary, d.Details)}
	v.Severity, ps = osvSeverityOf(d.Severity, "$.severity", ps)
	if v.Severity.Level == "" {
		if s, ok := d.DatabaseSpecific["severity"].(string); ok {
			v.Severity = statedLevel(s)
		}
	}
	fixes := map[string]bool{}
	for i, af := range d.Affected {
		var sev Severity
		sev, ps = osvSeverityOf(af.Severity, fmt.Sprintf("$.affected[%d].severity", i), ps)
		v.Severity = worst(v.Severity, sev)
		if af.Package == nil {
			continue
		}
		prod := Product{PURL: normPURL(af.Package.PURL)}
		if prod.PURL == "" {
			prod.Model = af.Package.Name
		}
		rs := Ranges{Versions: af.Versions}
		for _, r := range af.Ranges {
			rg := Range{Kind: RangeKind(r.Type)}
			for _, e := range r.Events {
				ev := Event{Introduced: e["introduced"], Fixed: e["fixed"], LastAffected: e["last_affected"], Limit: e["limit"]}
				if ev.Fixed != "" {
					fixes[ev.Fixed] = true
				}
				rg.Events = append(rg.Events, ev)
			}
			rs.Ranges = append(rs.Ranges, rg)
		}
		var set VersionSet = rs
		if len(rs.Ranges) == 0 && len(rs.Versions) == 0 {
			set = nil // no versions named: every version
		}
		v.Rules = append(v.Rules, Rule{Product: prod, Status: StatusAffected, Versions: set})
	}
	if v.Severity.Level == "" {
		v.Severity = Severity{Level: "unknown"}
	}
	for f := range fixes {
		v.Actions = append(v.Actions, Action{Kind: "vendor_fix", Details: "Version " + f + " fixes this flaw. Install it, or a later one, when your device offers it."})
	}
	for _, r := range d.References {
		if r.Type == "ADVISORY" || r.Type == "FIX" {
			v.Actions = append(v.Actions, Action{Kind: "reference", Details: "Read more from the source of this advisory.", URL: r.URL})
			break
		}
	}
	a.Vulns = []Vuln{v}
	return a, ps
}

func osvSeverityOf(list []osvSeverity, path string, ps []Problem) (Severity, []Problem) {
	var out Severity
	for i, s := range list {
		switch s.Type {
		case "CVSS_V3", "CVSS_V4":
			sev, err := FromVector(s.Score)
			if err != nil {
				ps = append(ps, Problem{Path: fmt.Sprintf("%s[%d].score", path, i), Message: err.Error()})
				continue
			}
			out = worst(out, sev)
		}
	}
	return out, ps
}

// statedLevel takes a severity word a document states without a score
// (OSV database_specific.severity: LOW, MODERATE, HIGH, CRITICAL).
func statedLevel(s string) Severity {
	switch strings.ToLower(s) {
	case "critical":
		return Severity{Level: "critical", Stated: true}
	case "high", "important":
		return Severity{Level: "high", Stated: true}
	case "moderate", "medium":
		return Severity{Level: "medium", Stated: true}
	case "low":
		return Severity{Level: "low", Stated: true}
	}
	return Severity{}
}

// firstLine is the first non-empty line of the first non-empty text.
func firstLine(texts ...string) string {
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return truncate(l, 300)
			}
		}
	}
	return ""
}

// normPURL reduces a package URL to what names a product: type, namespace
// and name, without version, qualifiers or subpath (package-url spec).
// Type and namespace compare case-insensitively for the types device
// makers use; the name is kept as given.
func normPURL(p string) string {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(strings.ToLower(p), "pkg:") {
		return ""
	}
	p = p[len("pkg:"):]
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if i := strings.LastIndex(p, "@"); i >= 0 {
		p = p[:i]
	}
	p = strings.Trim(p, "/")
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return ""
	}
	return "pkg:" + strings.ToLower(p[:i]) + p[i:]
}

// purlVersion is the version a package URL carries, if any.
func purlVersion(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if i := strings.LastIndex(p, "@"); i >= 0 && i > strings.LastIndex(p, "/") {
		return p[i+1:]
	}
	return ""
}
