package web

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// The pages' own words are held to the same plain-English bar as the
// labels they show (Flesch Reading Ease of at least 60).

func TestGlossaryIsPlainEnglish(t *testing.T) {
	t.Parallel()
	var all []string
	seen := map[string]bool{}
	for _, e := range glossary {
		if seen[e.ID] {
			t.Errorf("glossary id %q twice", e.ID)
		}
		seen[e.ID] = true
		if e.Term == "" || len(e.Text) == 0 {
			t.Errorf("glossary entry %q is empty", e.ID)
		}
		text := strings.Join(e.Text, "\n\n")
		if s := readability.Score(text); s.Ease < 45 {
			t.Errorf("glossary entry %q scores %.1f; write it more simply:\n%s", e.ID, s.Ease, text)
		}
		all = append(all, text)
	}
	if s := readability.Score(strings.Join(all, "\n\n")); s.Ease < readability.PlainEnglish {
		t.Errorf("the glossary scores %.1f, want at least %.0f", s.Ease, readability.PlainEnglish)
	}
	if _, err := termLink("no-such-term", "x"); err == nil {
		t.Error("a link to a missing glossary entry is not an error")
	}
}

func TestPagesArePlainEnglish(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	acc := h.setup("alex")
	d, _ := h.addDevice(acc.HouseholdID, "Hall", "smart-meter")
	if err := h.submit(d.ID, "power", `{"watts": 350}`); err != nil {
		t.Fatal(err)
	}
	_ = h.submit(d.ID, "power", `{"watts": 350, "extra": 1}`)
	anon := h.browser()
	b := h.browser()
	b.login("alex", goodPassword)
	pages := map[string]page2{
		"login": anon.get("/login"),
		"learn": anon.get("/learn"),
	}
	for _, path := range []string{"/", "/add", "/add?type=smart-meter", "/devices/" + d.ID, "/devices/" + d.ID + "/rotate",
		"/devices/" + d.ID + "/revoke", "/devices/" + d.ID + "/credential", "/security", "/nope", "/my-data", "/log"} {
		pages[path] = b.get(path)
	}
	for name, p := range pages {
		text := visibleText(p.body)
		if s := readability.Score(text); s.Ease < readability.PlainEnglish {
			t.Errorf("page %s scores %.1f, want at least %.0f:\n%s", name, s.Ease, readability.PlainEnglish, text)
		}
	}
}

func TestChart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pts := []point{{t0, 20}, {t0.Add(time.Minute), 22.5}, {t0.Add(2 * time.Minute), 21}}
	c := newChart("dev_1-temperature-celsius", "Room temperature", "air temperature", "degree Celsius", pts)
	if c.ID != "chart-dev_1-temperature-celsius" {
		t.Errorf("id %q", c.ID)
	}
	want := "72.0,160.0 348.0,16.0 624.0,102.4"
	if c.Points != want {
		t.Errorf("points %q, want %q", c.Points, want)
	}
	if c.YMax != "22.5" || c.YMin != "20" || len(c.Dots) != 3 {
		t.Errorf("axis %s..%s, %d dots", c.YMin, c.YMax, len(c.Dots))
	}
	if !strings.Contains(c.Summary, "3 readings") || !strings.Contains(c.Summary, "Lowest 20 degree Celsius, highest 22.5 degree Celsius, latest 21 degree Celsius.") {
		t.Errorf("summary %q", c.Summary)
	}

	// One reading, and a flat line, still draw inside the plot.
	one := newChart("x", "S", "f", "", pts[:1])
	if one.Points != "348.0,88.0" || !strings.HasPrefix(one.Summary, "One reading") {
		t.Errorf("single point: %q %q", one.Points, one.Summary)
	}
	flat := newChart("x", "S", "f", "", []point{{t0, 5}, {t0.Add(time.Second), 5}})
	if flat.Points != "72.0,88.0 624.0,88.0" {
		t.Errorf("flat line: %q", flat.Points)
	}
	if got := svgID(`a"b <c>`); got != "chart-a-b--c-" {
		t.Errorf("svgID = %q", got)
	}
	for f, want := range map[float64]string{21.456: "21.46", 12345.6: "12346", -0.5: "-0.5", 3: "3"} {
		if got := number(f); got != want {
			t.Errorf("number(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestValueWordsAndReasons(t *testing.T) {
	t.Parallel()
	f := &manifest.Field{Name: "on", Type: "boolean"}
	for raw, want := range map[string]string{"true": "yes", "false": "no", "21.50": "21.50", `"idle"`: "idle", "null": "–", "": "–"} {
		if got := valueWords(json.RawMessage(raw), f); got != want {
			t.Errorf("valueWords(%s) = %q, want %q", raw, got, want)
		}
	}
	for _, r := range []string{manifest.ViolUndeclaredStream, manifest.ViolUndeclaredField, manifest.ViolMissingField,
		manifest.ViolWrongType, manifest.ViolOutOfRange, manifest.ViolNotAllowed, manifest.ViolTooLarge, manifest.ViolMalformed} {
		if w := reasonWords(r); strings.Contains(w, "_") {
			t.Errorf("reason %s has no plain words: %q", r, w)
		}
	}
}

// TestMissingExportNotes: the warnings that a list of exports lacks some
// hub nodes' exports count the nodes right, name them, and are plain.
func TestMissingExportNotes(t *testing.T) {
	t.Parallel()
	one := missingNotes(export.JobList{Unanswered: []string{"c"}, NotAsked: []string{"d"}})
	if len(one) != 2 || one[0].ID != "exports-unanswered" || one[1].ID != "exports-not-asked" ||
		!strings.HasPrefix(one[0].Text, "1 hub node did not answer in time.") || !strings.HasSuffix(one[0].Text, ": hub node c.") ||
		!strings.HasPrefix(one[1].Text, "1 hub node runs an older version") || !strings.Contains(one[1].Text, "until it is updated (hub node d).") {
		t.Errorf("one node each: %+v", one)
	}
	two := missingNotes(export.JobList{Unanswered: []string{"c", "e"}, NotAsked: []string{"d", "f"}})
	if len(two) != 2 || !strings.HasPrefix(two[0].Text, "2 hub nodes did not answer in time.") || !strings.HasSuffix(two[0].Text, ": hub nodes c and e.") ||
		!strings.HasPrefix(two[1].Text, "2 hub nodes run an older version") || !strings.Contains(two[1].Text, "until they are updated (hub nodes d and f).") {
		t.Errorf("two nodes each: %+v", two)
	}
	if got := missingNotes(export.JobList{Jobs: []export.JobStatus{{ID: "exp_1"}}}); got != nil {
		t.Errorf("a whole list: %+v", got)
	}
	for _, n := range append(one, two...) {
		if s := readability.Score(n.Text); s.Ease < readability.PlainEnglish {
			t.Errorf("%q scores %.1f, want at least %.0f", n.Text, s.Ease, readability.PlainEnglish)
		}
	}
}
