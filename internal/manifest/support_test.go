package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestSupportState(t *testing.T) {
	until := time.Date(2030, 6, 30, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		until time.Time
		now   time.Time
		want  SupportState
	}{
		{"no date is unknown", time.Time{}, until, SupportUnknown},
		{"a year before", until, until.AddDate(-1, 0, 0), SupportActive},
		{"91 days before the end", until, time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC).Add(-91 * 24 * time.Hour), SupportActive},
		{"90 days before the end", until, time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC).Add(-90 * 24 * time.Hour), SupportEnding},
		{"during the last day", until, until.Add(23 * time.Hour), SupportEnding},
		{"the day after", until, until.AddDate(0, 0, 1), SupportEnded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Support{SecurityUpdatesUntil: tc.until}).State(tc.now); got != tc.want {
				t.Errorf("State = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIdentifiersAndUnknownSupport(t *testing.T) {
	b, err := templateFS.ReadFile("templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), `"securityUpdatesUntil": "2031-12-31",`, "", 1)
	m, err := Parse("thermostat.json", []byte(doc))
	if err != nil {
		t.Fatalf("a manifest without a support date is refused: %v", err)
	}
	if m.Identifiers.PURL == "" || m.Identifiers.Model == "" {
		t.Errorf("identifiers = %+v, want the template's model and purl", m.Identifiers)
	}
	l := Explain(m, time.Now())
	if l.Short.Support != SupportUnknown || l.Short.UpdatesUntil != "" {
		t.Errorf("label support = %q until %q, want unknown and no date", l.Short.Support, l.Short.UpdatesUntil)
	}
	bad := strings.Replace(string(b), `"purl": "pkg:generic/candor-demo/thermostat-t1"`, `"purl": "thermostat"`, 1)
	if _, err := Parse("bad.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), "candor:identifiers.purl") {
		t.Errorf("a bad purl: err = %v, want one naming candor:identifiers.purl", err)
	}
}

func TestLabelSaysSupportEndsSoon(t *testing.T) {
	b, err := templateFS.ReadFile("templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("thermostat.json", b)
	if err != nil {
		t.Fatal(err)
	}
	l := Explain(m, time.Date(2031, 11, 1, 0, 0, 0, 0, time.UTC))
	flat := strings.Join(strings.Fields(l.Text()), " ")
	if l.Short.Support != SupportEnding || !strings.Contains(flat, "Security updates: end soon, on 31 December 2031.") {
		t.Errorf("support %q; the label does not say it ends soon:\n%s", l.Short.Support, flat)
	}
	noDate := *m
	noDate.Support.SecurityUpdatesUntil = time.Time{}
	flat = strings.Join(strings.Fields(Explain(&noDate, time.Now()).Text()), " ")
	if !strings.Contains(flat, "Security updates: unknown.") {
		t.Errorf("the label of a type without a date does not say unknown:\n%s", flat)
	}
}
