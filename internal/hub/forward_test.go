package hub

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/signkey"
)

// TestForwardingFollowsConsent sets up the energy supplier a smart meter's
// manifest names, turns its consent on, and checks that readings arrive
// there signed and logged; then turns it off and checks the very next
// reading does not.
func TestForwardingFollowsConsent(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	tok := th.setup("alice")
	id, secret := th.personDevice(tok, "Meter", "smart-meter")
	const supplier = "Your energy supplier"

	keyResp, err := http.Get(th.URL() + "/api/v1/forward/key")
	if err != nil {
		t.Fatal(err)
	}
	pemKey, _ := io.ReadAll(keyResp.Body)
	keyResp.Body.Close()
	pub, err := signkey.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatalf("forward key: %v", err)
	}

	var mu sync.Mutex
	var got []float64
	bad := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := forward.Verify(pub, r.Header.Get("Candor-Timestamp"), r.Header.Get("Candor-Signature"), body, time.Now(), time.Minute); err != nil {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var in struct {
			Readings []struct {
				DeviceID string          `json:"device_id"`
				Payload  json.RawMessage `json:"payload"`
			} `json:"readings"`
		}
		_ = json.Unmarshal(body, &in)
		for _, rd := range in.Readings {
			var p struct {
				KWh float64 `json:"kwh_total"`
			}
			_ = json.Unmarshal(rd.Payload, &p)
			got = append(got, p.KWh)
		}
	}))
	defer rcv.Close()
	received := func() []float64 { mu.Lock(); defer mu.Unlock(); return append([]float64(nil), got...) }

	recURL := th.URL() + "/api/v1/recipients/" + url.PathEscape(supplier)
	if code, out, _ := call(t, http.DefaultClient, "PUT", recURL, tok, map[string]string{"url": "http://supplier.example/in"}); code != http.StatusUnprocessableEntity {
		t.Errorf("plain http to another machine: %d %v; want 422", code, out)
	}
	if code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/recipients/Nobody", tok, map[string]string{"url": rcv.URL}); code != http.StatusNotFound {
		t.Errorf("a recipient no manifest names: %d %v; want 404", code, out)
	}
	if code, out, _ := call(t, http.DefaultClient, "PUT", recURL, tok, map[string]string{"url": rcv.URL}); code != 200 {
		t.Fatalf("set endpoint: %d %v", code, out)
	}

	// External recipients start off (privacy by default): nothing leaves.
	th.post(id, secret, "energy", `{"kwh_total":1}`)
	setConsent := func(on bool) {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/consent/energy", tok,
			map[string]any{"purpose": "candor:Billing", "recipient": supplier, "on": on, "confirm": true})
		if code != 200 {
			t.Fatalf("consent for the supplier (%v): %d %v", on, code, out)
		}
	}
	setConsent(true)
	th.post(id, secret, "energy", `{"kwh_total":2}`)
	waitFor(t, "the supplier received the reading", 10*time.Second, func() bool { return len(received()) == 1 })
	setConsent(false)
	th.post(id, secret, "energy", `{"kwh_total":3}`) // the very next reading
	// Barrier: consent on again and one more reading. Deliveries to one
	// endpoint keep their order, so once reading 4 has arrived, reading 3
	// would have arrived before it (or with it) had it been forwarded.
	setConsent(true)
	th.post(id, secret, "energy", `{"kwh_total":4}`)
	waitFor(t, "the supplier received the reading sent after consent was given again", 10*time.Second, func() bool {
		r := received()
		return len(r) > 0 && r[len(r)-1] == 4
	})
	if r := received(); len(r) != 2 || r[0] != 2 || r[1] != 4 {
		t.Fatalf("the supplier received %v; want only the readings sent while consent was on (2 and 4)", r)
	}
	mu.Lock()
	if bad != 0 {
		t.Errorf("%d requests failed the signature check", bad)
	}
	mu.Unlock()

	// The hub counts a delivery once the recipient's answer is back, a
	// moment after the recipient saw it (CI once read 1 of 2).
	var out map[string]any
	waitFor(t, "both deliveries counted", 10*time.Second, func() bool {
		var code int
		code, out, _ = call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/recipients", tok, nil)
		if code != 200 {
			t.Fatalf("list recipients: %d %v", code, out)
		}
		l, _ := out["recipients"].([]any)
		if len(l) != 1 {
			return true // the assertions below say what is wrong
		}
		d, _ := l[0].(map[string]any)["delivery"].(map[string]any)
		n, _ := d["delivered"].(float64)
		return n >= 2
	})
	list := out["recipients"].([]any)
	if len(list) != 1 {
		t.Fatalf("recipients %v", list)
	}
	rj := list[0].(map[string]any)
	if rj["name"] != supplier || rj["url"] != rcv.URL || rj["delivery"].(map[string]any)["delivered"].(float64) != 2 {
		t.Errorf("recipient %v", rj)
	}
	// The delivery is in the transparency log, for the household to see.
	code, out, _ := call(t, http.DefaultClient, "GET", th.URL()+"/api/v1/log/entries", tok, nil)
	if code != 200 {
		t.Fatalf("log entries: %d %v", code, out)
	}
	seen := map[string]bool{}
	for _, e := range out["entries"].([]any) {
		ev := e.(map[string]any)["event"].(map[string]any)
		seen[ev["action"].(string)] = true
	}
	if !seen["readings.forward"] || !seen["recipient.change"] {
		t.Errorf("household's log has %v; want readings.forward and recipient.change", seen)
	}
}
