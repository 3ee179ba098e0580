package assess

import (
	"bytes"
	"fmt"
	"html/template"
	"time"
)

var statusWords = map[string]string{Met: "Met", PartlyMet: "Partly met", NotMet: "Not met", NotApplicable: "Not applicable"}

var conformanceHTML = template.Must(template.New("conformance").Funcs(template.FuncMap{
	"status": func(s string) string { return statusWords[s] },
}).Parse(`
<section aria-labelledby="conf-changes">
<h2 id="conf-changes">What changed since the last version</h2>
<ul>{{range .V.Changes}}<li>{{.}}</li>{{end}}</ul>
</section>
<section aria-labelledby="conf-summary">
<h2 id="conf-summary">Summary</h2>
<ul>
<li>Met: {{index .C.Summary "met"}}</li>
<li>Partly met: {{index .C.Summary "partly-met"}}</li>
<li>Not met: {{index .C.Summary "not-met"}}</li>
<li>Not applicable: {{index .C.Summary "not-applicable"}}</li>
</ul>
{{with .C.Notes}}<h3>What this report does not claim</h3>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .C.Live}}<h3>Tests run against this hub now</h3>
<ul>{{range .}}<li>{{if .Passed}}Passed{{else}}Failed{{end}}: {{.Name}}. {{.Detail}}</li>{{end}}</ul>{{end}}
</section>
{{range .Groups}}
<section aria-labelledby="{{.ID}}">
<h2 id="{{.ID}}">{{.Name}}</h2>
<div class="table-wrap">
<table>
<caption>{{.Name}}: each clause, its status and the evidence from this hub</caption>
<thead><tr><th scope="col">Clause</th><th scope="col">What it asks, in short</th><th scope="col">Status</th><th scope="col">Evidence now</th><th scope="col">What is missing</th></tr></thead>
<tbody>
{{range .Rows}}<tr><th scope="row">{{.Clause}}</th><td>{{.Title}}</td><td class="status status-{{.Status}}">{{status .Status}}</td><td>{{.Evidence}}</td><td>{{.Missing}}</td></tr>
{{end}}</tbody>
</table>
</div>
</section>
{{end}}`))

type confGroup struct {
	ID, Name string
	Rows     []Row
}

// ConformanceHTMLBody renders the report's sections for a page that
// gives the heading around them.
func ConformanceHTMLBody(v *Version, c *Conformance) template.HTML {
	groups := []confGroup{{ID: "conf-paper", Name: FrameworkPaper}, {ID: "conf-etsi", Name: FrameworkETSI}}
	for _, r := range c.Rows {
		if r.Framework == FrameworkPaper {
			groups[0].Rows = append(groups[0].Rows, r)
		} else {
			groups[1].Rows = append(groups[1].Rows, r)
		}
	}
	var b bytes.Buffer
	if err := conformanceHTML.Execute(&b, struct {
		V      *Version
		C      *Conformance
		Groups []confGroup
	}{v, c, groups}); err != nil {
		return template.HTML(template.HTMLEscapeString("The report could not be shown: " + err.Error()))
	}
	return template.HTML(b.String()) //nolint:gosec // made by html/template above
}

// ConformanceIntro is the sentence under the report's heading.
func ConformanceIntro(v *Version) string {
	return fmt.Sprintf("Version %d, made by the hub on %s from what it sees now, and signed by it. The clause titles are short summaries in our own words, not the text of the standards.",
		v.Version, v.CreatedAt.Format(time.DateOnly))
}
