package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/sim"
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
	// The owner takes the affected device off the hub: the finding about
	// it closes.
	id := f["subject"].(string)
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/devices/"+id+"/revoke", "", nil); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("revoke %s: %d %v", id, code, out)
	}
	found, _ = th.auditFindings()
	for _, g := range found["open-advisories"] {
		if g["subject"] == id {
			t.Fatalf("still open once the device is revoked: %v", g)
		}
	}
}

// The quarantine check on a real hub: a device flooding over real MQTT is
// held by the abuse monitor, the audit finds it with the alarm's
// severity, its numbers and a link to the device's page, and once its
// owner releases it the finding closes.
func TestAuditQuarantineOverMQTT(t *testing.T) {
	th := startHub(t, func(c *configT) { c.MonitorWindow = time.Second })
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "meter", "type": "smart-meter"})
	if code != http.StatusCreated {
		t.Fatalf("add device: %d %v", code, out)
	}
	dev := sim.Device{ID: out["device"].(map[string]any)["id"].(string), Secret: out["secret"].(string), Kind: "smart-meter"}
	if found, _ := th.auditFindings(); len(found["quarantined-device"]) != 0 {
		t.Fatalf("quarantine finding before any attack: %v", found["quarantined-device"])
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := sim.Attack(ctx, sim.AttackConfig{Name: "flood", Broker: th.MQTTAddr(), Devices: []sim.Device{dev}, Rate: 20}); err != nil {
			t.Error(err)
		}
	}()
	var f map[string]any
	waitFor(t, "the audit finding of the quarantined device", 30*time.Second, func() bool {
		found, _ := th.auditFindings()
		if len(found["quarantined-device"]) == 0 {
			return false
		}
		f = found["quarantined-device"][0]
		return true
	})
	stop()
	<-done
	holds, err := th.st.Quarantines(context.Background())
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds: %v %v", holds, err)
	}
	want := map[string]string{"critical": "critical", "warning": "high", "info": "medium"}[holds[0].Severity]
	if holds[0].RateLimited {
		t.Fatalf("a flood only slowed down: %+v", holds[0])
	}
	if f["subject"] != dev.ID || f["severity"] != want || f["fix_url"] != "/devices/"+dev.ID || f["household"] == nil ||
		!strings.Contains(f["evidence"].(string), holds[0].Kind) || f["why"] == "" || f["fix"] == "" {
		t.Fatalf("finding %v for hold %+v", f, holds[0])
	}
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+dev.ID+"/release", alex,
		map[string]string{"reason": "I reset it to factory settings"})
	if code != 200 {
		t.Fatalf("release: %d %v", code, out)
	}
	if found, _ := th.auditFindings(); len(found["quarantined-device"]) != 0 {
		t.Fatalf("still open after the release: %v", found["quarantined-device"])
	}
}

// The admin's second factor on a real hub: without one the audit has a
// finding and conformance row 5.1-3 is partly met; once the admin turns
// on login codes over the API both change, and logging in needs a code.
func TestAuditAdminSecondFactor(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	found, checks := th.auditFindings()
	if checks["admin-second-factor"]["available"] != true || len(found["admin-second-factor"]) != 1 {
		t.Fatalf("second-factor check: %v, findings %v", checks["admin-second-factor"], found["admin-second-factor"])
	}
	f := found["admin-second-factor"][0]
	// The login listens on loopback only: medium (high on the network).
	if f["severity"] != "medium" || f["fix_url"] != "/security" || !strings.Contains(f["evidence"].(string), "alex") {
		t.Fatalf("finding: %v", f)
	}
	rows, _ := th.conformanceRows()
	if rows["5.1-3"]["status"] != "partly-met" || !strings.Contains(rows["5.1-3"]["evidence"].(string), "0 of 1 admin") {
		t.Fatalf("5.1-3 without a second factor: %v", rows["5.1-3"])
	}

	code, en, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/me/second-factor", alex, map[string]string{"password": goodPassword})
	if code != http.StatusCreated || en["secret"] == nil || len(en["recovery_codes"].([]any)) != 10 {
		t.Fatalf("enrol: %d %v", code, en)
	}
	secret := en["secret"].(string)
	totpCode := func() string {
		c, err := totp.GenerateCodeCustom(secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/me/second-factor/confirm", alex, map[string]string{"code": totpCode()}); code != 200 || out["on"] != true {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if len(th.logged("", identity.ActionSecondFactorOn)) != 1 {
		t.Fatal("turning on the second factor is not in the transparency log")
	}
	found, _ = th.auditFindings()
	if len(found["admin-second-factor"]) != 0 {
		t.Fatalf("still open once enrolled: %v", found["admin-second-factor"])
	}
	rows, _ = th.conformanceRows()
	if rows["5.1-3"]["status"] != "met" || !strings.Contains(rows["5.1-5"]["evidence"].(string), "1 of 1 admin") {
		t.Fatalf("5.1-3 and 5.1-5 with a second factor: %v %v", rows["5.1-3"], rows["5.1-5"])
	}

	// The password alone now gets a challenge; with a recovery code, in
	// one request, a token.
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/tokens", "", map[string]string{"username": "alex", "password": goodPassword, "name": "cli"})
	if code != http.StatusUnauthorized || out["type"] != "urn:candor:problem:second-factor-required" || out["challenge"] == nil {
		t.Fatalf("token with the password only: %d %v", code, out)
	}
	rc := en["recovery_codes"].([]any)[0].(string)
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/tokens", "", map[string]string{"challenge": out["challenge"].(string), "code": rc, "name": "cli"})
	if code != http.StatusCreated || out["token"] == nil {
		t.Fatalf("token with the challenge and a recovery code: %d %v", code, out)
	}
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/tokens", "", map[string]string{"username": "alex", "password": goodPassword, "code": rc, "name": "cli"})
	if code != http.StatusUnauthorized || out["type"] != "urn:candor:problem:unauthenticated" {
		t.Fatalf("recovery code used twice: %d %v", code, out)
	}
}

// The fix the plain-listener finding asks for, on a real hub: with TLS on
// for every listener that faces the LAN, there is no plain-listener
// finding, the certificate covers the LAN names devices use (checked the
// way a device would, by naming them as the server while the connection
// goes over loopback only), and conformance row 5.5-1 is met.
func TestAuditTLSOnTheLAN(t *testing.T) {
	const lanName, lanIP = "hub.lan", "192.168.77.20"
	th := startHub(t, func(c *configT) {
		c.HTTPAddr = "0.0.0.0:0"
		c.MQTTAddr = ""
		c.MQTTTLSAddr = "0.0.0.0:0"
		c.TLSSelfSigned = true
		c.TLSNames = lanName + "," + lanIP
	})
	found, checks := th.auditFindings()
	for _, name := range []string{"plain-listener", "certificate-coverage", "certificate-expiry"} {
		if len(found[name]) != 0 {
			t.Errorf("%s with TLS on: %v", name, found[name])
		}
	}
	if checks["certificate-coverage"]["available"] != true {
		t.Fatalf("certificate check did not run: %v", checks["certificate-coverage"])
	}
	rows, _ := th.conformanceRows()
	if rows["5.5-1"]["status"] != "met" {
		t.Errorf("5.5-1 with TLS on the LAN: %v", rows["5.5-1"])
	}
	ca, _ := fetchCA(t, th)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, port, _ := net.SplitHostPort(th.MQTTTLSAddr())
	for _, name := range []string{lanName, lanIP} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort("127.0.0.1", port),
			&tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Errorf("TLS verifying as %s: %v", name, err)
			continue
		}
		_ = conn.Close()
	}
}

// The support check on a real hub reads the manifest in force: a version
// whose security support has ended opens a finding about each device of
// that type, and a version that extends support closes it.
func TestAuditSupportEndedFromManifest(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, _ := th.addDevice("Band", "wearable")
	doc, err := os.ReadFile("../manifest/templates/wearable.json")
	if err != nil {
		t.Fatal(err)
	}
	put := func(until string) {
		t.Helper()
		d := strings.Replace(string(doc), `"securityUpdatesUntil": "2028-12-31"`, `"securityUpdatesUntil": "`+until+`"`, 1)
		if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/manifests", "", d); code != http.StatusCreated {
			t.Fatalf("manifest with support until %s: %d %v", until, code, out)
		}
	}
	put("2020-12-31")
	found, _ := th.auditFindings()
	if len(found["support-ended"]) != 1 {
		t.Fatalf("support-ended findings: %v", found["support-ended"])
	}
	f := found["support-ended"][0]
	if f["subject"] != id || f["severity"] != "high" || f["fix_url"] != "/devices/"+id || !strings.Contains(f["evidence"].(string), "2020-12-31") || f["fix"] == "" {
		t.Fatalf("finding: %v", f)
	}
	put("2035-12-31")
	if found, _ := th.auditFindings(); len(found["support-ended"]) != 0 {
		t.Fatalf("still open once support is extended: %v", found["support-ended"])
	}
}
