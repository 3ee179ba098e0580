package advisories

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/readability"
)

func load(t testing.TB, name string) *Advisory {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Parse(name, b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return a
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file      string
		format    Format
		id        string
		vulns     int
		severity  string
		computed  bool
		cvssVer   string
		wantScore float64
	}{
		{"osv-thermostat.json", FormatOSV, "CANDOR-DEMO-2026-0001", 1, "high", true, "3.1", 7.1},
		{"osv-ecosystem.json", FormatOSV, "CANDOR-DEMO-2026-0002", 1, "high", true, "4.0", 7.1},
		{"csaf-thermostat.json", FormatCSAF, "CANDOR-DEMO-SA-2026-07", 1, "high", true, "3.1", 8.8},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			a := load(t, tc.file)
			if a.Format != tc.format || a.ID != tc.id || len(a.Vulns) != tc.vulns {
				t.Fatalf("got %s %q with %d flaws, want %s %q with %d", a.Format, a.ID, len(a.Vulns), tc.format, tc.id, tc.vulns)
			}
			s := a.Vulns[0].Severity
			if s.Level != tc.severity || s.Computed != tc.computed || s.Version != tc.cvssVer || s.Score != tc.wantScore {
				t.Errorf("severity = %+v, want %s %.1f (CVSS %s, computed %v)", s, tc.severity, tc.wantScore, tc.cvssVer, tc.computed)
			}
			if a.Modified.IsZero() {
				t.Error("modified time not read")
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := fixture("osv-thermostat.json")
	tests := []struct {
		name     string
		doc      []byte
		kind     error
		wantPath string // a problem must be at this JSON path
	}{
		{"not JSON", []byte(`{"id": `), ErrInvalid, "$"},
		{"not an object", []byte(`[1, 2]`), ErrInvalid, "$"},
		{"neither format", []byte(`{"title": "hello"}`), ErrInvalid, "$"},
		{"OSV range type misspelt", fixture("osv-bad-range.json"), ErrInvalid, "$.affected[0].ranges[0].type"},
		{"OSV without modified", bytes.Replace(good, []byte(`"modified": "2026-11-20T10:00:00Z",`), nil, 1), ErrInvalid, "$"},
		{"OSV bad timestamp", bytes.Replace(good, []byte(`"2026-11-20T10:00:00Z"`), []byte(`"last Tuesday"`), 1), ErrInvalid, "$.modified"},
		{"OSV event with two versions", bytes.Replace(good, []byte(`{"introduced": "1.0.0"}`), []byte(`{"introduced": "1.0.0", "fixed": "1.1.0"}`), 1), ErrInvalid, "$.affected[0].ranges[0].events[0]"},
		{"OSV broken CVSS vector", bytes.Replace(good, []byte(`AV:A/AC:L`), []byte(`AV:Q/AC:L`), 1), ErrInvalid, "$.severity[0].score"},
		{"CSAF without publisher", fixture("csaf-no-publisher.json"), ErrInvalid, "$.document"},
		{"CSAF status names an unknown product", bytes.Replace(fixture("csaf-thermostat.json"), []byte(`"fixed": ["T1-1.4.2"]`), []byte(`"fixed": ["T9"]`), 1), ErrInvalid, "$.vulnerabilities[0].product_status.fixed"},
		{"too large", append(append([]byte(`{"id": "X-1", "modified": "2026-01-01T00:00:00Z", "details": "`), bytes.Repeat([]byte("a"), MaxDocumentBytes)...), `"}`...), ErrTooLarge, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse("doc.json", tc.doc)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", a)
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want kind %v", err, tc.kind)
			}
			if tc.wantPath == "" {
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %T, want *ValidationError", err)
			}
			var paths []string
			for _, p := range ve.Problems {
				paths = append(paths, p.Path)
				if p.Path == tc.wantPath {
					return
				}
			}
			t.Errorf("problems at %v, want one at %s (error: %v)", paths, tc.wantPath, err)
		})
	}
}

func TestOSVRanges(t *testing.T) {
	semver := load(t, "osv-thermostat.json")
	eco := load(t, "osv-ecosystem.json")
	thermostat := Product{PURL: "pkg:generic/candor-demo/thermostat-t1", Model: "T1"}
	meter := Product{Model: "m2"}
	tests := []struct {
		name     string
		adv      *Advisory
		product  Product
		firmware string
		want     Verdict // 0: no finding
	}{
		{"before introduced", semver, thermostat, "0.9.0", 0},
		{"at introduced", semver, thermostat, "1.0.0", VerdictAffected},
		{"inside", semver, thermostat, "1.4.1", VerdictAffected},
		{"pre-release of the fix is still affected", semver, thermostat, "1.4.2-rc.1", VerdictAffected},
		{"at fixed", semver, thermostat, "1.4.2", 0},
		{"after fixed", semver, thermostat, "v2.0.0", 0},
		{"version not SemVer", semver, thermostat, "beta", VerdictPossibly},
		{"no version reported", semver, thermostat, "", VerdictPossibly},
		{"other product", semver, Product{PURL: "pkg:generic/candor-demo/meter"}, "1.2.0", 0},
		{"PURL with a version still names the product", semver, Product{PURL: normPURL("pkg:generic/candor-demo/thermostat-t1@1.2.0")}, "1.2.0", VerdictAffected},
		{"ecosystem: introduced 0", eco, meter, "0.1", VerdictAffected},
		{"ecosystem: at last_affected", eco, meter, "2.9", VerdictAffected},
		{"ecosystem: numeric order, not text", eco, meter, "2.10", 0},
		{"ecosystem: second range", eco, meter, "3.2", VerdictAffected},
		{"ecosystem: at limit", eco, meter, "3.4", 0},
		{"ecosystem: listed version", eco, meter, "3.10-beta", VerdictAffected},
		{"ecosystem: model names compare without case", eco, Product{Model: "M2"}, "1.0", VerdictAffected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := NewIndex([]*Advisory{tc.adv}).Match(Device{ID: "d1", Product: tc.product, Firmware: tc.firmware})
			var got Verdict
			if len(fs) > 0 {
				got = fs[0].Verdict
			}
			if got != tc.want {
				t.Errorf("verdict for %q = %v, want %v", tc.firmware, got, tc.want)
			}
		})
	}
}

func TestCSAFProductStatus(t *testing.T) {
	a := load(t, "csaf-thermostat.json")
	t1 := Product{Maker: "Candor demo devices", Model: "T1"}
	tests := []struct {
		name       string
		product    Product
		firmware   string
		want       Verdict
		wantAction string // a remediation kind the finding must carry
		noAction   string // and one it must not
	}{
		{"known_affected version", t1, "1.3.0", VerdictAffected, "vendor_fix", "workaround"},
		{"fixed version", t1, "1.4.2", 0, "", ""},
		{"VEX known_not_affected never alarms", t1, "2.0.0", 0, "", ""},
		{"in the vers range", t1, "1.1", VerdictAffected, "vendor_fix", ""},
		{"below the vers range", t1, "0.5", 0, "", ""},
		{"a version the document does not name", t1, "1.5.0", 0, "", ""},
		{"no version reported", t1, "", VerdictPossibly, "vendor_fix", ""},
		{"other maker's model of the same name", Product{Maker: "Someone else", Model: "T1"}, "1.3.0", 0, "", ""},
		{"CPE match, all versions", Product{CPE: "othermaker:plug_p9"}, "7", VerdictAffected, "workaround", "vendor_fix"},
	}
	ix := NewIndex([]*Advisory{a})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := ix.Match(Device{ID: "d1", Product: tc.product, Firmware: tc.firmware})
			var got Verdict
			if len(fs) > 0 {
				got = fs[0].Verdict
			}
			if got != tc.want {
				t.Fatalf("verdict = %v, want %v", got, tc.want)
			}
			if got == 0 {
				return
			}
			kinds := map[string]bool{}
			for _, act := range fs[0].Actions {
				kinds[act.Kind] = true
			}
			if tc.wantAction != "" && !kinds[tc.wantAction] {
				t.Errorf("actions %v lack %s", kinds, tc.wantAction)
			}
			if tc.noAction != "" && kinds[tc.noAction] {
				t.Errorf("actions %v include %s, meant for another product", kinds, tc.noAction)
			}
		})
	}
}

func TestWithdrawnConcernsNobody(t *testing.T) {
	b, err := os.ReadFile("testdata/osv-thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`"published"`), []byte(`"withdrawn": "2026-11-22T00:00:00Z", "published"`), 1)
	a, err := Parse("w.json", b)
	if err != nil {
		t.Fatal(err)
	}
	if fs := NewIndex([]*Advisory{a}).Match(Device{ID: "d", Product: Product{PURL: "pkg:generic/candor-demo/thermostat-t1"}, Firmware: "1.1.0"}); len(fs) != 0 {
		t.Errorf("a withdrawn advisory raised %d findings", len(fs))
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		vector string
		level  string
		score  float64
		can    string
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "critical", 9.8, "Someone on the internet could see what it knows, change what it does or stop it from working. They would not need a password."},
		{"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", "low", 1.6, "Someone who can touch the device could see what it knows. It only works if someone is tricked into a step, such as opening a link."},
		{"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H", "medium", 5.5, "Someone who can run software on the device could stop it from working."},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "critical", 9.3, "Someone on the internet could see what it knows, change what it does or stop it from working. They would not need a password."},
	}
	for _, tc := range tests {
		t.Run(tc.vector, func(t *testing.T) {
			s, err := FromVector(tc.vector)
			if err != nil {
				t.Fatal(err)
			}
			if s.Level != tc.level || s.Score != tc.score || !s.Computed {
				t.Errorf("= %s %.1f (computed %v), want %s %.1f", s.Level, s.Score, s.Computed, tc.level, tc.score)
			}
			if got := s.AttackerCan(); got != tc.can {
				t.Errorf("AttackerCan = %q, want %q", got, tc.can)
			}
			for _, text := range []string{s.AttackerCan(), s.Words()} {
				if e := readability.Ease(text); e < 60 {
					t.Errorf("%q scores %.0f on Flesch reading ease, want at least 60", text, e)
				}
			}
		})
	}
	for _, bad := range []string{"", "CVSS:3.1/AV:N", "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:4.0/AV:N"} {
		if _, err := FromVector(bad); err == nil {
			t.Errorf("FromVector(%q) accepted it", bad)
		}
	}
}

func TestVers(t *testing.T) {
	tests := []struct {
		vers, version string
		in, ok        bool
	}{
		{"vers:generic/>=1.0|<1.4", "1.2", true, true},
		{"vers:generic/>=1.0|<1.4", "1.4", false, true},
		{"vers:generic/<=2.0", "1.9.9", true, true},
		{"vers:generic/>3.0", "3.0.1", true, true},
		{"vers:generic/1.5|>=2.0|<2.1", "1.5", true, true},
		{"vers:generic/1.5|>=2.0|<2.1", "1.6", false, true},
		{"vers:generic/!=1.5|>=1.0", "1.5", false, true},
		{"vers:semver/>=1.0.0|<2.0.0", "1.9.0", true, true},
		{"vers:semver/>=1.0.0|<2.0.0", "1.9", false, false},
		{"vers:generic/*", "anything", true, true},
	}
	for _, tc := range tests {
		v, ok := ParseVers(tc.vers)
		if !ok {
			t.Errorf("ParseVers(%q) failed", tc.vers)
			continue
		}
		if in, ok := v.Contains(tc.version); in != tc.in || ok != tc.ok {
			t.Errorf("%s contains %s = %v, %v; want %v, %v", tc.vers, tc.version, in, ok, tc.in, tc.ok)
		}
	}
	for _, bad := range []string{"all versions before 1.4", "vers:generic/", "vers:generic/>="} {
		if _, ok := ParseVers(bad); ok {
			t.Errorf("ParseVers(%q) accepted free text", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"osv-thermostat.json", "osv-ecosystem.json", "csaf-thermostat.json", "osv-bad-range.json", "csaf-no-publisher.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"A-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"x","name":"y"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1..2-"}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse("fuzz.json", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of no kind: %v", err)
			}
			if strings.Contains(err.Error(), "\x00") {
				t.Fatalf("error carries raw bytes: %q", err)
			}
			return
		}
		// Whatever parsed must match without panicking, with or without
		// a version.
		ix := NewIndex([]*Advisory{a})
		for _, v := range a.Vulns {
			for _, r := range v.Rules {
				ix.Match(Device{ID: "d", Product: r.Product, Firmware: "1.2.3"})
				ix.Match(Device{ID: "d", Product: r.Product})
			}
		}
	})
}
