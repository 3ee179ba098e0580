package assess

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"
)

// PIAMarkdown renders a PIA version as Markdown.
func PIAMarkdown(v *Version, p *PIA) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Privacy impact assessment: %s\n\n", p.HouseholdName)
	fmt.Fprintf(&b, "Version %d, made by the hub on %s. Signed by the hub; its digest is %s.\n\n", v.Version, v.CreatedAt.Format(time.DateOnly), v.Digest)
	b.WriteString("## What changed since the last version\n\n")
	for _, c := range v.Changes {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	b.WriteString("\n## 1. What is done with your data\n\n")
	fmt.Fprintf(&b, "Where it is kept: %s\n\n", p.Processing.StoredAt)
	for _, e := range p.Processing.Encryption {
		fmt.Fprintf(&b, "- %s\n", e.Text)
	}
	for _, d := range p.Processing.Devices {
		fmt.Fprintf(&b, "\n### %s (%s, label version %d)\n\n", d.Name, d.Type, d.ManifestVersion)
		for _, st := range d.Streams {
			fmt.Fprintf(&b, "- **%s**: %s\n", st.Title, streamSummary(st))
		}
	}
	b.WriteString("\n## 2. Is it needed?\n\n")
	for _, n := range p.Necessity {
		fmt.Fprintf(&b, "- %s\n", n.Text)
	}
	b.WriteString("\n## 3. Risks to you\n\n")
	if len(p.Risks) == 0 {
		b.WriteString("No risks found from what is on now.\n")
	}
	for _, r := range p.Risks {
		fmt.Fprintf(&b, "- (%s) %s\n", r.Level, r.Text)
		if r.Label != "" {
			fmt.Fprintf(&b, "  Its label says it shows %s.\n", r.Label)
		}
		for _, part := range r.Parts {
			fmt.Fprintf(&b, "  - %s\n", part)
		}
	}
	b.WriteString("\n## 4. What protects you now\n\n")
	for _, m := range p.Measures {
		fmt.Fprintf(&b, "- **%s.** %s\n", m.Title, m.Evidence)
	}
	b.WriteString("\n## 5. What risk is left\n\n")
	if len(p.Residual) == 0 {
		b.WriteString("None beyond the risks above.\n")
	}
	for _, r := range p.Residual {
		fmt.Fprintf(&b, "- (%s) %s\n", r.Level, r.Text)
	}
	return b.Bytes()
}

// streamSummary says in one line what a stream carries and where it goes.
func streamSummary(st PIAStream) string {
	var parts []string
	if len(st.Categories) == 0 {
		parts = append(parts, "Not personal.")
	} else {
		var cs []string
		for _, c := range st.Categories {
			if !slices.Contains(cs, c.Words) {
				cs = append(cs, c.Words)
			}
		}
		parts = append(parts, "It says something about "+joinAnd(cs)+".")
	}
	var uses []string
	consented := false
	for _, p := range st.Purposes {
		if p.On {
			uses = append(uses, p.Words)
			consented = consented || p.LegalBasis == "dpv:Consent"
		}
	}
	if len(uses) > 0 {
		parts = append(parts, "Used "+joinAnd(uses)+".")
		if consented {
			parts = append(parts, "Some of this rests on your consent.")
		} else {
			parts = append(parts, "The device needs this to work.")
		}
	} else {
		parts = append(parts, "Not used now.")
	}
	for _, r := range st.Recipients {
		if r.On {
			parts = append(parts, "Sent to "+r.Name+".")
		}
	}
	if st.KeptOnHub && st.RetentionWords != "" {
		parts = append(parts, "Kept for "+st.RetentionWords+".")
	} else if !st.KeptOnHub {
		parts = append(parts, "Not kept on the hub.")
	}
	return strings.Join(parts, " ")
}

var piaHTML = template.Must(template.New("pia").Funcs(template.FuncMap{"summary": streamSummary}).Parse(`
<section aria-labelledby="pia-changes">
<h2 id="pia-changes">What changed since the last version</h2>
<ul>{{range .V.Changes}}<li>{{.}}</li>{{end}}</ul>
</section>
<section aria-labelledby="pia-processing">
<h2 id="pia-processing">1. What is done with your data</h2>
<p>Where it is kept: {{.P.Processing.StoredAt}}</p>
<ul>{{range .P.Processing.Encryption}}<li>{{.Text}}</li>{{end}}</ul>
{{range .P.Processing.Devices}}
<h3>{{.Name}} ({{.Type}}, label version {{.ManifestVersion}})</h3>
<ul>{{range .Streams}}<li><strong>{{.Title}}</strong>: {{summary .}}</li>{{end}}</ul>
{{end}}
</section>
<section aria-labelledby="pia-necessity">
<h2 id="pia-necessity">2. Is it needed?</h2>
<ul>{{range .P.Necessity}}<li>{{.Text}}</li>{{end}}</ul>
</section>
<section aria-labelledby="pia-risks">
<h2 id="pia-risks">3. Risks to you</h2>
{{if not .P.Risks}}<p>No risks found from what is on now.</p>{{end}}
<ul>{{range .P.Risks}}<li><span class="risk risk-{{.Level}}">{{.Level}}:</span> {{.Text}}{{with .Label}} Its label says it shows {{.}}.{{end}}{{with .Parts}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}</li>{{end}}</ul>
</section>
<section aria-labelledby="pia-measures">
<h2 id="pia-measures">4. What protects you now</h2>
<dl class="settings">{{range .P.Measures}}<div><dt>{{.Title}}</dt><dd>{{.Evidence}}</dd></div>{{end}}</dl>
</section>
<section aria-labelledby="pia-residual">
<h2 id="pia-residual">5. What risk is left</h2>
{{if not .P.Residual}}<p>None beyond the risks above.</p>{{end}}
<ul>{{range .P.Residual}}<li><span class="risk risk-{{.Level}}">{{.Level}}:</span> {{.Text}}</li>{{end}}</ul>
</section>`))

// PIAHTMLBody renders the sections of a PIA version for a page that
// gives the heading around them.
func PIAHTMLBody(v *Version, p *PIA) template.HTML {
	var b bytes.Buffer
	if err := piaHTML.Execute(&b, struct {
		V *Version
		P *PIA
	}{v, p}); err != nil {
		return template.HTML(template.HTMLEscapeString("The assessment could not be shown: " + err.Error()))
	}
	return template.HTML(b.String()) //nolint:gosec // made by html/template above
}

var htmlDoc = template.Must(template.New("doc").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><main><h1>{{.Title}}</h1><p>{{.Intro}}</p>{{.Body}}</main></body></html>
`))

// HTMLDocument wraps a rendered body as a standalone HTML page.
func HTMLDocument(title, intro string, body template.HTML) []byte {
	var b bytes.Buffer
	_ = htmlDoc.Execute(&b, struct {
		Title, Intro string
		Body         template.HTML
	}{title, intro, body})
	return b.Bytes()
}

// PIAIntro is the sentence under a PIA's heading.
func PIAIntro(v *Version) string {
	return fmt.Sprintf("Version %d, made by the hub on %s and signed by it.", v.Version, v.CreatedAt.Format(time.DateOnly))
}

// DPV namespaces used in JSON-LD.
const (
	dpvNS   = "https://w3id.org/dpv#"
	pdNS    = "https://w3id.org/dpv/pd#"
	riskNS  = "https://w3id.org/dpv/risk#"
	candNS  = "https://w3id.org/candor#"
	dctNS   = "http://purl.org/dc/terms/"
	xsdNS   = "http://www.w3.org/2001/XMLSchema#"
	levelHi = "risk:HighSeverity"
)

var severityTerm = map[string]string{"high": levelHi, "medium": "risk:MediumSeverity", "low": "risk:LowSeverity"}

// PIAJSONLD renders a PIA version as JSON-LD with DPV terms: a dpv:DPIA
// about the household's processes, their personal data, purposes, legal
// bases, recipients and storage, its risks and measures.
func PIAJSONLD(v *Version, p *PIA) ([]byte, error) {
	id := fmt.Sprintf("urn:candor:pia:%s:%d", p.Household, v.Version)
	var processes []map[string]any
	for _, d := range p.Processing.Devices {
		for _, st := range d.Streams {
			proc := map[string]any{
				"@id":                 fmt.Sprintf("urn:candor:process:%s:%s", d.ID, st.Name),
				"@type":               "dpv:Process",
				"dct:title":           st.Title + " of " + d.Name,
				"dpv:hasPersonalData": termIDs(st.Categories),
				"dpv:hasStorageCondition": map[string]any{"@type": "dpv:StorageDuration",
					"dpv:hasDuration": map[string]any{"@value": st.Retention, "@type": "xsd:duration"}},
				"dpv:hasStorageLocation": map[string]any{"@type": "dpv:StorageLocation", "dct:description": p.Processing.StoredAt},
			}
			var purposes, bases []map[string]any
			for _, pu := range st.Purposes {
				purposes = append(purposes, map[string]any{"@id": pu.ID, "dct:description": pu.Words, "candor:on": pu.On, "candor:essential": pu.Essential})
				bases = append(bases, map[string]any{"@id": pu.LegalBasis})
			}
			proc["dpv:hasPurpose"] = purposes
			proc["dpv:hasLegalBasis"] = bases
			var recips []map[string]any
			for _, rc := range st.Recipients {
				recips = append(recips, map[string]any{"@type": rc.Role, "dct:title": rc.Name,
					"dpv:hasPurpose": map[string]any{"@id": rc.Purpose.ID}, "candor:on": rc.On, "candor:identifiable": rc.Identifiable,
					"candor:terms": rc.Terms, "candor:contact": rc.Contact})
			}
			if recips != nil {
				proc["dpv:hasRecipient"] = recips
			}
			if st.MachineLearning || st.AutomatedDecisions {
				proc["dpv:hasProcessing"] = []map[string]any{{"@id": "dpv:AutomatedDecisionMaking"}}
			}
			processes = append(processes, proc)
		}
	}
	var risks []map[string]any
	for _, r := range p.Risks {
		risks = append(risks, map[string]any{"@id": "urn:candor:risk:" + r.ID, "@type": "dpv:Risk",
			"dct:description": r.Text, "dpv:hasSeverity": map[string]any{"@id": severityTerm[r.Level]}})
	}
	var measures []map[string]any
	for _, m := range p.Measures {
		measures = append(measures, map[string]any{"@id": "urn:candor:measure:" + m.ID, "@type": "dpv:TechnicalOrganisationalMeasure",
			"dct:title": m.Title, "dct:description": m.Evidence})
	}
	var residual []map[string]any
	for _, r := range p.Residual {
		residual = append(residual, map[string]any{"@type": "dpv:Risk", "dct:description": r.Text,
			"dpv:hasSeverity": map[string]any{"@id": severityTerm[r.Level]}, "candor:residualOf": "urn:candor:risk:" + r.ID})
	}
	doc := map[string]any{
		"@context":                              map[string]any{"dpv": dpvNS, "pd": pdNS, "risk": riskNS, "candor": candNS, "dct": dctNS, "xsd": xsdNS},
		"@id":                                   id,
		"@type":                                 "dpv:DPIA",
		"dct:title":                             "Privacy impact assessment: " + p.HouseholdName,
		"dct:created":                           map[string]any{"@value": v.CreatedAt.Format(time.RFC3339), "@type": "xsd:dateTime"},
		"dct:hasVersion":                        v.Version,
		"candor:digest":                         v.Digest,
		"candor:changes":                        v.Changes,
		"dpv:hasProcess":                        processes,
		"dpv:hasRisk":                           risks,
		"dpv:hasTechnicalOrganisationalMeasure": measures,
		"candor:residualRisk":                   residual,
	}
	return json.MarshalIndent(doc, "", "  ")
}

func termIDs(ts []Term) []map[string]any {
	out := []map[string]any{}
	for _, t := range ts {
		out = append(out, map[string]any{"@id": t.ID})
	}
	return out
}
