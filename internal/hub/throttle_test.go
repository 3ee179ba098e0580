package hub

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Codes the broker refuses a CONNECT with.
const (
	connackBadCredentials = 0x86
	connackRateExceeded   = 0x9F
)

// Guessing a device's secret over MQTT is throttled after a few tries,
// while the real device, which connected before, still connects.
func TestDeviceSecretGuessingOverMQTTIsThrottled(t *testing.T) {
	th := startHub(t)
	id, secret := th.addDevice("Door", "door-sensor")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatalf("the real device's first connect: %v", err)
	}
	_ = c.Disconnect(&paho.Disconnect{})

	var codes []byte
	for i := range 8 {
		_, ack, err := v5(t, th.MQTTAddr(), id, id, fmt.Sprintf("guess-%d-of-the-secret", i), nil)
		if err == nil || ack == nil {
			t.Fatalf("guess %d: connected or no CONNACK (%v)", i, err)
		}
		codes = append(codes, ack.ReasonCode)
	}
	b, r := byte(connackBadCredentials), byte(connackRateExceeded)
	want := []byte{b, b, b, b, b, r, r, r}
	if string(codes) != string(want) {
		t.Errorf("CONNACK codes % x, want % x (five wrong guesses, then connection rate exceeded)", codes, want)
	}
	if _, err := v3(t, th.MQTTAddr(), id, id, "a-3.1.1-guess-at-it"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "unavailable") {
		t.Errorf("MQTT 3.1.1 guess while throttled: %v, want server unavailable", err)
	}
	if _, ack, err := v5(t, th.MQTTAddr(), id, id, secret, nil); err != nil {
		t.Fatalf("the real device while its id is throttled: %v (CONNACK %+v)", err, ack)
	}
	if n := metric(t, th, `candor_credential_checks_throttled_total{kind="device",reason="device"}`); n < 4 {
		t.Errorf("throttled device checks counted %v, want at least 4", n)
	}
}

// The same over HTTP ingest: 401 for the first wrong secrets, then 429
// with Retry-After; the real device still sends readings.
func TestDeviceSecretGuessingOverHTTPIsThrottled(t *testing.T) {
	th := startHub(t)
	id, secret := th.addDevice("Meter", "smart-meter")
	post := func(pass string) (int, http.Header, string) {
		req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/power", strings.NewReader(`{"watts": 412}`))
		req.SetBasicAuth(id, pass)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, body := post(secret); code != http.StatusCreated {
		t.Fatalf("the real device: %d %s", code, body)
	}
	var codes []int
	for i := range 7 {
		code, hdr, body := post(fmt.Sprintf("guess-%d-of-the-secret", i))
		codes = append(codes, code)
		if code == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("429 without a usable Retry-After: %q", hdr.Get("Retry-After"))
			}
			if hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"reason":"device"`) || !strings.Contains(body, "too many wrong secrets") {
				t.Errorf("429 body: %s %s", hdr.Get("Content-Type"), body)
			}
		}
	}
	want := []int{401, 401, 401, 401, 401, 429, 429}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", codes, want)
	}
	if code, _, body := post(secret); code != http.StatusCreated {
		t.Errorf("the real device while its id is throttled: %d %s", code, body)
	}
}

// Logins with names that do not exist cost a password check each, so one
// address gets only a burst of them (the exact count, which the refill
// during the test would blur, is checked in identity's tests).
func TestUnknownUsernamesAreThrottledPerAddress(t *testing.T) {
	th := startHub(t)
	th.setup("alex")
	const tries = 40
	var codes []int
	for i := range tries {
		code, out, hdr := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/login", "",
			map[string]string{"username": fmt.Sprintf("nobody%d", i), "password": "wrong-wrong-wrong-wrong"})
		codes = append(codes, code)
		if code == http.StatusTooManyRequests && (hdr.Get("Retry-After") == "" || out["reason"] != "address") {
			t.Errorf("429 with Retry-After %q and body %v", hdr.Get("Retry-After"), out)
		}
	}
	n401 := strings.Count(fmt.Sprint(codes), "401")
	if codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Errorf("answers %v: want 401s, then 429", codes)
	}
	if n := metric(t, th, `candor_credential_checks_throttled_total{kind="login",reason="address"}`); n != float64(tries-n401) {
		t.Errorf("metric counts %v throttled logins, want %d", n, tries-n401)
	}
}

// Someone guessing locks the username, but not the browser the owner
// logged in from before.
func TestOwnerWithKnownBrowserLogsInDuringLockout(t *testing.T) {
	th := startHub(t)
	th.setup("alex")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	code, _, hdr := call(t, browser, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": "alex", "password": goodPassword})
	if code != http.StatusOK {
		t.Fatalf("first login: %d", code)
	}
	var known string
	for _, c := range hdr.Values("Set-Cookie") {
		if strings.HasPrefix(c, "candor_browser=") {
			known = c
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="} {
		if !strings.Contains(known, attr) {
			t.Errorf("known-browser cookie lacks %s: %q", attr, known)
		}
	}
	if code, _, _ := call(t, browser, "POST", th.URL()+"/api/v1/logout", "", nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}

	var last int
	var out map[string]any
	for i := range 8 {
		last, out, _ = call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/login", "",
			map[string]string{"username": "alex", "password": fmt.Sprintf("attacker guess %d", i)})
	}
	if last != http.StatusTooManyRequests || out["reason"] != "account" {
		t.Fatalf("the attacker's last guess: %d %v, want 429 for the account", last, out)
	}
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": "alex", "password": goodPassword}); code != http.StatusTooManyRequests {
		t.Errorf("the right password from a browser never used before: %d, want 429", code)
	}
	if code, _, _ := call(t, browser, "POST", th.URL()+"/api/v1/login", "", map[string]string{"username": "alex", "password": goodPassword}); code != http.StatusOK {
		t.Errorf("the owner's known browser during the lockout: %d, want 200", code)
	}
}

// metric reads one sample from the hub's /metrics, 0 when absent.
func metric(t *testing.T, th *testHub, series string) float64 {
	t.Helper()
	resp, err := th.local.Get("http://candor/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}
