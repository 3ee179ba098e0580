package advisories

import (
	"fmt"
	"os"
	"testing"
)

// benchFleet makes n advisories over 500 device types (OSV SEMVER ranges,
// CSAF-like exact versions and VEX statements mixed) and m devices over
// 250 of those types, at versions on both sides of the fixes.
func benchFleet(n, m int) ([]*Advisory, []Device) {
	advs := make([]*Advisory, n)
	for i := range advs {
		p := Product{PURL: fmt.Sprintf("pkg:generic/maker%d/model%d", i%50, i%500)}
		var r Rule
		switch i % 3 {
		case 0:
			r = Rule{Product: p, Status: StatusAffected, Versions: Ranges{Ranges: []Range{{Kind: RangeSemver,
				Events: []Event{{Introduced: "1.0.0"}, {Fixed: fmt.Sprintf("1.%d.0", i%20)}}}}}}
		case 1:
			r = Rule{Product: p, Status: StatusAffected, Versions: Exact(fmt.Sprintf("1.%d.0", i%20))}
		default:
			r = Rule{Product: p, Status: StatusNotAffected, Versions: Exact(fmt.Sprintf("1.%d.0", i%7))}
		}
		sev, _ := FromVector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
		advs[i] = &Advisory{ID: fmt.Sprintf("BENCH-%05d", i), Format: FormatOSV,
			Vulns: []Vuln{{ID: fmt.Sprintf("CVE-2026-%05d", i), Severity: sev, Rules: []Rule{r}}}}
	}
	devs := make([]Device, m)
	for i := range devs {
		devs[i] = Device{ID: fmt.Sprintf("dev_%04d", i), Product: Product{PURL: fmt.Sprintf("pkg:generic/maker%d/model%d", i%50, i%250)},
			Firmware: fmt.Sprintf("1.%d.0", i%25)}
	}
	return advs, devs
}

// BenchmarkMatch measures matching 10,000 advisories against 1,000
// devices, index building included (the hub rebuilds it after an import).
func BenchmarkMatch(b *testing.B) {
	advs, devs := benchFleet(10_000, 1_000)
	var findings int
	b.ReportAllocs()
	for b.Loop() {
		findings = len(NewIndex(advs).MatchAll(devs))
	}
	b.ReportMetric(float64(findings), "findings")
}

// BenchmarkParseCSAF measures validating and reading one CSAF document
// against the official schema.
func BenchmarkParseCSAF(b *testing.B) {
	doc, err := os.ReadFile("testdata/csaf-thermostat.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("csaf.json", doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseOSV is the same for one OSV document.
func BenchmarkParseOSV(b *testing.B) {
	doc, err := os.ReadFile("testdata/osv-thermostat.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("osv.json", doc); err != nil {
			b.Fatal(err)
		}
	}
}
