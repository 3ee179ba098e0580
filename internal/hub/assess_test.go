package hub

import (
	"net/http"
	"testing"

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
	if checks["quarantined-device"]["available"] != false || checks["quarantined-device"]["note"] != "not available on this hub" {
		t.Fatalf("quarantine check without monitoring: %v", checks["quarantined-device"])
	}
}
