package hub

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/identity"
)

// enrol turns on login codes for the holder of tok over the API and
// returns the app's secret and the recovery codes.
func (th *testHub) enrol(tok, password string) (string, []string) {
	th.t.Helper()
	code, en, _ := call(th.t, http.DefaultClient, "POST", th.URL()+"/api/v1/me/second-factor", tok, map[string]string{"password": password})
	if code != http.StatusCreated {
		th.t.Fatalf("enrol: %d %v", code, en)
	}
	secret := en["secret"].(string)
	c, err := totp.GenerateCodeCustom(secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		th.t.Fatal(err)
	}
	if code, out, _ := call(th.t, http.DefaultClient, "POST", th.URL()+"/api/v1/me/second-factor/confirm", tok, map[string]string{"code": c}); code != 200 || out["on"] != true {
		th.t.Fatalf("confirm: %d %v", code, out)
	}
	var rc []string
	for _, c := range en["recovery_codes"].([]any) {
		rc = append(rc, c.(string))
	}
	return secret, rc
}

// resets returns the reset entries of the transparency log about account.
func (th *testHub) resets(account string) []auditlog.Event {
	th.t.Helper()
	var out []auditlog.Event
	for _, e := range th.logged("", identity.ActionSecondFactorReset) {
		if e.Subject.Account == account {
			out = append(out, e)
		}
	}
	return out
}

// Someone who lost both their phone and their spare codes gets back in:
// the admin removes the codes of a person of the admin's household (never
// their own, never another household's), the operator anyone's through
// the control socket. The log says who did it, and the person is told at
// their next login, once.
func TestSecondFactorReset(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	const kimPassword = "orchard-lantern-quietly-27"
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", alex,
		map[string]string{"username": "kim", "password": kimPassword, "role": "member"}); code != http.StatusCreated {
		t.Fatalf("add kim: %d %v", code, out)
	}
	kim := th.token("kim", kimPassword)
	kimID := th.accountID(kim)
	alexID := th.accountID(alex)
	th.enrol(kim, kimPassword)
	kimURL := th.URL() + "/api/v1/accounts/by-username/kim/second-factor"

	// Another household's owner and a plain member see nothing.
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/households", "",
		map[string]any{"name": "Next door", "owner": map[string]string{"username": "sam", "password": goodPassword}}); code != http.StatusCreated {
		t.Fatalf("create household: %d %v", code, out)
	}
	sam := th.token("sam", goodPassword)
	for _, c := range []struct {
		who, tok, url string
	}{{"sam", sam, kimURL}, {"sam", sam, kimURL + "/reset"}, {"kim", kim, th.URL() + "/api/v1/accounts/by-username/alex/second-factor/reset"}} {
		method := "GET"
		if strings.HasSuffix(c.url, "/reset") {
			method = "POST"
		}
		if code, out, _ := call(t, http.DefaultClient, method, c.url, c.tok, nil); code != http.StatusNotFound {
			t.Errorf("%s %s %s: %d %v, want 404", c.who, method, c.url, code, out)
		}
	}
	// The admin sees Kim's codes, and removes them.
	if code, out, _ := call(t, http.DefaultClient, "GET", kimURL, alex, nil); code != 200 || out["second_factor"].(map[string]any)["on"] != true {
		t.Fatalf("admin reads kim's status: %d %v", code, out)
	}
	code, out, _ := call(t, http.DefaultClient, "POST", kimURL+"/reset", alex, nil)
	if code != 200 || out["second_factor"].(map[string]any)["on"] != false {
		t.Fatalf("admin resets kim: %d %v", code, out)
	}
	if ev := th.resets(kimID); len(ev) != 1 || ev[0].Actor.Kind != auditlog.ActorPerson || ev[0].Actor.ID != alexID || ev[0].Detail["by"] != "admin" {
		t.Fatalf("log entries of the reset: %+v", ev)
	}
	if code, out, _ := call(t, http.DefaultClient, "POST", kimURL+"/reset", alex, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("reset again: %d %v", code, out)
	}
	// Kim logs in with the password alone and is told, once.
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": "kim", "password": kimPassword})
	if code != 200 || out["second_factor_reset"] == nil || !strings.Contains(out["notice"].(string), "turned off by the admin") {
		t.Fatalf("kim's next login: %d %v", code, out)
	}
	if code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": "kim", "password": kimPassword}); code != 200 || out["notice"] != nil {
		t.Fatalf("kim's login after that: %d %v", code, out)
	}

	// The admin cannot remove their own codes this way: that takes the
	// control socket.
	_, rc := th.enrol(alex, goodPassword)
	alexURL := th.URL() + "/api/v1/accounts/by-username/alex/second-factor"
	if code, out, _ := call(t, http.DefaultClient, "POST", alexURL+"/reset", alex, nil); code != http.StatusForbidden ||
		!strings.HasSuffix(out["type"].(string), "own-second-factor") || !strings.Contains(out["detail"].(string), "candor account second-factor reset alex") {
		t.Fatalf("admin resets own: %d %v", code, out)
	}
	if code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/accounts/by-username/alex/second-factor", "", nil); code != 200 ||
		out["second_factor"].(map[string]any)["on"] != true || out["second_factor"].(map[string]any)["recovery_codes_left"] != float64(len(rc)) {
		t.Fatalf("operator reads alex's status: %d %v", code, out)
	}
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/accounts/by-username/alex/second-factor/reset", "", nil); code != 200 {
		t.Fatalf("operator resets alex: %d %v", code, out)
	}
	if ev := th.resets(alexID); len(ev) != 1 || ev[0].Actor.Kind != auditlog.ActorOperator || ev[0].Detail["by"] != "operator" {
		t.Fatalf("log entries of the operator's reset: %+v", ev)
	}
	code, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/tokens", "", map[string]string{"username": "alex", "password": goodPassword, "name": "cli"})
	if code != http.StatusCreated || !strings.Contains(out["notice"].(string), "turned off by the operator") {
		t.Fatalf("alex's next login: %d %v", code, out)
	}
	if code, _, _ := call(t, th.local, "GET", "http://candor/api/v1/accounts/by-username/nobody/second-factor", "", nil); code != http.StatusNotFound {
		t.Fatalf("unknown username: %d", code)
	}
}

// With --require-second-factor-for-admin, an admin without login codes
// can do nothing over the API but add them; the audit finding and row
// 5.1-3 say the hub requires them, and once added everything opens.
func TestRequireSecondFactorForAdmin(t *testing.T) {
	t.Parallel()
	th := startHub(t, func(c *config.Config) { c.RequireSecondFactorForAdmin = true })
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices", alex, nil)
	if code != http.StatusForbidden || !strings.HasSuffix(out["type"].(string), "second-factor-enrolment-required") {
		t.Fatalf("devices before enrolling: %d %v", code, out)
	}
	if code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/me", alex, nil); code != 200 {
		t.Fatalf("me before enrolling: %d %v", code, out)
	}
	// The operator is no admin person: the control socket still works.
	if code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil); code != 200 {
		t.Fatalf("operator: %d %v", code, out)
	}
	found, _ := th.auditFindings()
	if f := found["admin-second-factor"]; len(f) != 1 || f[0]["severity"] != "low" || !strings.Contains(f[0]["evidence"].(string), "--require-second-factor-for-admin") {
		t.Fatalf("finding with the setting: %v", f)
	}
	rows, _ := th.conformanceRows()
	if rows["5.1-3"]["status"] != "met" || !strings.Contains(rows["5.1-3"]["evidence"].(string), "requires one for the admin") {
		t.Fatalf("5.1-3 with the setting: %v", rows["5.1-3"])
	}
	th.enrol(alex, goodPassword)
	if code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/devices", alex, nil); code != 200 {
		t.Fatalf("devices once enrolled: %d %v", code, out)
	}
	if found, _ := th.auditFindings(); len(found["admin-second-factor"]) != 0 {
		t.Fatalf("finding once enrolled: %v", found["admin-second-factor"])
	}
	rows, _ = th.conformanceRows()
	if rows["5.1-3"]["status"] != "met" || !strings.Contains(rows["5.1-3"]["evidence"].(string), "Every admin account (1)") ||
		!strings.Contains(rows["5.1-3"]["evidence"].(string), "requires one for the admin") {
		t.Fatalf("5.1-3 once enrolled: %v", rows["5.1-3"])
	}
}
