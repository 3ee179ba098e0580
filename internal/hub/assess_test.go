package hub

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/config"
)

// auditFindings runs the audit as the operator and returns the open
// findings by check and the checks' statuses by name.
func (th *testHub) auditFindings() (map[string][]map[string]any, map[string]map[string]any) {
	th.t.Helper()
	code, rep, _ := call(th.t, th.local, "POST", "http://candor/api/v1/audit/run", "", nil)
	if code != http.StatusOK {
		th.t.Fatalf("run audit: %d %v", code, rep)
	}
	found := map[string][]map[string]any{}
	fs, _ := rep["findings"].([]any)
	for _, f := range fs {
		m := f.(map[string]any)
		if m["closed_at"] == nil {
			found[m["check"].(string)] = append(found[m["check"].(string)], m)
		}
	}
	checks := map[string]map[string]any{}
	cs, _ := rep["checks"].([]any)
	for _, c := range cs {
		m := c.(map[string]any)
		checks[m["name"].(string)] = m
	}
	return found, checks
}

// The audit of a real hub: a plain listener moved onto every interface
// is found, and /metrics is probed for real on the hub's own listener
// (over loopback: no traffic leaves the machine) and found to ask for a
// login.
func TestAuditPlainListenerOnTheNetwork(t *testing.T) {
	th := startHub(t)
	found, _ := th.auditFindings()
	if len(found["plain-listener"]) != 0 {
		t.Fatalf("loopback listeners flagged: %v", found["plain-listener"])
	}
	th.close()

	lan := startHubIn(t, shortTempDir(t), func(c *config.Config) { c.HTTPAddr = "0.0.0.0:0" })
	defer lan.close()
	found, checks := lan.auditFindings()
	pl := found["plain-listener"]
	if len(pl) != 1 || pl[0]["subject"] != "HTTP" || pl[0]["severity"] != "high" {
		t.Fatalf("plain listener findings: %v", pl)
	}
	if checks["open-metrics"]["available"] != true {
		t.Fatalf("metrics check did not run: %v", checks["open-metrics"])
	}
	if len(found["open-metrics"]) != 0 {
		t.Fatalf("metrics that ask for the admin's token flagged: %v", found["open-metrics"])
	}
	// The monitor's holds are in the store, so the quarantine check runs.
	if checks["quarantined-device"]["available"] != true || len(found["quarantined-device"]) != 0 {
		t.Fatalf("quarantine check: %v, findings %v", checks["quarantined-device"], found["quarantined-device"])
	}
}

// conformanceRows fetches the conformance report as the operator.
func (th *testHub) conformanceRows() (map[string]map[string]any, []any) {
	th.t.Helper()
	code, rep, _ := call(th.t, th.local, "GET", "http://candor/api/v1/conformance", "", nil)
	if code != http.StatusOK {
		th.t.Fatalf("conformance: %d %v", code, rep)
	}
	body := rep["body"].(map[string]any)
	rows := map[string]map[string]any{}
	for _, r := range body["rows"].([]any) {
		m := r.(map[string]any)
		rows[m["clause"].(string)] = m
	}
	live, _ := body["live_tests"].([]any)
	return rows, live
}

// The conformance report of a real hub: known default credentials are
// tried on its own MQTT and HTTP listeners and refused, and the plain
// listener moved onto every interface turns the row about secure
// communication.
func TestConformanceLive(t *testing.T) {
	th := startHub(t)
	rows, live := th.conformanceRows()
	if len(live) < 2 {
		t.Fatalf("live tests: %v", live)
	}
	for _, l := range live {
		if m := l.(map[string]any); m["passed"] != true {
			t.Errorf("live test failed: %v", m)
		}
	}
	if rows["5.1-1"]["status"] != "met" {
		t.Errorf("5.1-1: %v", rows["5.1-1"])
	}
	if rows["5.5-1"]["status"] == "not-met" {
		t.Errorf("5.5-1 on loopback: %v", rows["5.5-1"])
	}
	th.close()

	lan := startHubIn(t, shortTempDir(t), func(c *config.Config) { c.HTTPAddr = "0.0.0.0:0" })
	defer lan.close()
	rows, _ = lan.conformanceRows()
	if r := rows["5.5-1"]; r["status"] != "not-met" || !strings.Contains(r["evidence"].(string), "0.0.0.0") {
		t.Errorf("5.5-1 with HTTP on every interface: %v", r)
	}
	found, _ := lan.auditFindings()
	if len(found["plain-listener"]) != 1 {
		t.Errorf("plain listener findings: %v", found["plain-listener"])
	}
}

// With the advisories part on this hub, the audit's advisory check runs:
// the demo thermostat, once it reports its affected firmware, is found
// with the demo advisory, and support periods come from the manifests.
func TestAuditSeesDemoAdvisory(t *testing.T) {
	th := startHub(t, func(c *config.Config) { c.Demo = true; c.DemoSpeed = 20 })
	var found map[string][]map[string]any
	var checks map[string]map[string]any
	waitFor(t, "the audit finding of the demo advisory", 20*time.Second, func() bool {
		found, checks = th.auditFindings()
		return len(found["open-advisories"]) > 0
	})
	f := found["open-advisories"][0]
	if !strings.Contains(f["evidence"].(string), "CANDOR-DEMO-2026-0001") || f["severity"] != "high" || f["household"] == nil {
		t.Errorf("advisory finding: %v", f)
	}
	for _, name := range []string{"open-advisories", "support-ended"} {
		if checks[name]["available"] != true {
			t.Errorf("%s not available: %v", name, checks[name])
		}
	}
	if len(found["support-ended"]) != 0 {
		t.Errorf("demo devices past support: %v", found["support-ended"])
	}
}
