package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// A deletion whose range ends before it starts is refused before anything
// is deleted, with a message naming both parameters.
func TestDeleteReadingsRefusesBackwardRange(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Door", "type": "door-sensor"})
	if code != 201 {
		t.Fatal(code, out)
	}
	id := out["device"].(map[string]any)["id"].(string)
	c, _, err := v5(t, th.MQTTAddr(), id, id, out["secret"].(string), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/battery", QoS: 1,
			Payload: fmt.Appendf(nil, `{"percent": %d}`, 90-i)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	q := url.Values{"since": {now.Add(time.Hour).Format(time.RFC3339)}, "until": {now.Add(-time.Hour).Format(time.RFC3339)}}
	code, out, _ = call(t, http.DefaultClient, "DELETE", th.URL()+"/api/v1/devices/"+id+"/readings?"+q.Encode(), alex, nil)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("backward range: %d %v, want 422", code, out)
	}
	detail, _ := out["detail"].(string)
	if !strings.Contains(detail, "since") || !strings.Contains(detail, "until") {
		t.Errorf("detail %q does not name since and until", detail)
	}
	if rs := th.readings(id, ""); len(rs) != 3 {
		t.Fatalf("after a refused deletion %d readings are left, want all 3", len(rs))
	}
	if strings.Contains(th.logs.String(), "request failed") {
		t.Errorf("the refusal was logged as a failure:\n%s", th.logs.String())
	}
}
