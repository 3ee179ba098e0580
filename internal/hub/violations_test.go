package hub

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// One device sending ever new undeclared field names (which could carry
// values) leaves a bounded list: at most 32 named rows and one row that
// counts the rest, names clipped, every refusal counted.
func TestViolationsFromOneDeviceAreBounded(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Meter", "smart-meter")
	const sent, flushAt = 60, 10
	for i := range sent {
		if i == flushAt {
			// The counts go to the store every few seconds: one such
			// write in the middle must not change what is listed (it
			// did: the names not yet written were listed beyond the 32
			// as well, 43 rows).
			th.in.FlushCounters()
		}
		body := fmt.Sprintf(`{"watts": 5, "x%02d_%s": 1}`, i, strings.Repeat("wifipassword", 10))
		req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/power", strings.NewReader(body))
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("reading %d with an undeclared field: %d, want 422", i, resp.StatusCode)
		}
	}
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+id+"/violations", "", nil)
	if code != 200 {
		t.Fatalf("violations: %d %v", code, out)
	}
	rows := out["violations"].([]any)
	if len(rows) != 33 || out["left_off"].(float64) != 0 {
		t.Fatalf("%d rows listed, %v left off; want 32 named rows and one for the rest", len(rows), out["left_off"])
	}
	var counted float64
	overflow := false
	for _, r := range rows {
		v := r.(map[string]any)
		counted += v["count"].(float64)
		if f, _ := v["field"].(string); len(f) > 64 {
			t.Errorf("a field name of %d bytes is kept", len(f))
		}
		if v["reason"] == "other_names" {
			overflow = true
			if v["count"].(float64) != sent-32 {
				t.Errorf("the overflow row counts %v, want %d", v["count"], sent-32)
			}
		}
	}
	if !overflow || counted != sent {
		t.Errorf("overflow row %v, %v refusals counted; want it and %d", overflow, counted, sent)
	}
	// Once written, the store holds the same rows and counts.
	th.in.FlushCounters()
	_, again, _ := call(t, th.local, "GET", "http://candor/api/v1/devices/"+id+"/violations", "", nil)
	if n := len(again["violations"].([]any)); n != len(rows) {
		t.Errorf("%d rows listed once written, %d before", n, len(rows))
	}
}
