package hub

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestUnlinkIsHonest reproduces unlinking on a real hub: with one
// household it says nothing can be kept anonymously (instead of keeping
// one person's hourly means); with enough households a user-held device
// is skipped with its reason while the others are unlinked.
func TestUnlinkIsHonest(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	mine, mySecret := th.personDevice(alex, "Watch", "wearable")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]any{"name": "Meter", "type": "smart-meter", "shared": true})
	if code != 201 {
		t.Fatalf("add shared meter: %d %v", code, out)
	}
	shared := out["device"].(map[string]any)["id"].(string)
	sharedSecret := out["secret"].(string)
	for i := range 12 {
		th.post(mine, mySecret, "heart_rate", fmt.Sprintf(`{"bpm": %d}`, 70+i))
		th.post(shared, sharedSecret, "power", fmt.Sprintf(`{"watts": %d}`, 100+i))
	}
	unlink := func() (int, map[string]any) {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/me/unlink", alex, map[string]any{"devices": []string{mine, shared}})
		return code, out
	}
	if code, out := unlink(); code != http.StatusConflict || !strings.Contains(fmt.Sprint(out["detail"]), "nothing can be kept anonymously") {
		t.Fatalf("unlink on a one-household hub: %d %v; want 409 saying nothing can be kept anonymously", code, out)
	}
	if n := len(th.readings(mine, "")); n != 12 {
		t.Fatalf("a refused unlink left %d of 12 readings", n)
	}

	for i := range 4 {
		if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/households", alex,
			map[string]any{"name": fmt.Sprintf("Flat %d", i+2), "owner": map[string]string{"username": fmt.Sprintf("owner%d", i), "password": "violet-canyon-drifting-41"}}); code != 201 {
			t.Fatalf("household %d: %d %v", i, code, out)
		}
	}
	if code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/keys/me", alex, map[string]any{"mode": "user-held", "generate_identity": true}); code != 200 {
		t.Fatalf("user-held: %d %v", code, out)
	}
	code, out = unlink()
	if code != 200 {
		t.Fatalf("unlink with a user-held device: %d %v; want the others unlinked", code, out)
	}
	skipped := list(out["skipped"])
	if len(skipped) != 1 || skipped[0].(map[string]any)["device_id"] != mine || !strings.Contains(fmt.Sprint(skipped[0]), "own key") {
		t.Errorf("skipped %v; want the watch, with its reason", skipped)
	}
	if out["readings_unlinked"].(float64) != 12 || out["aggregate_cells_kept"].(float64) != 0 {
		t.Errorf("report %v; want the meter's 12 readings unlinked and no cell of one household kept", out)
	}
}
