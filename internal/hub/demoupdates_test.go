package hub

import (
	"io"
	"net/http"
	"testing"
)

// The demo's update repository is served on the hub's own listener under
// /demo-updates/, so its address is the hub's, not a port that changes at
// each start; without --demo the path is not found.
func TestDemoRepoOnHubListener(t *testing.T) {
	th := startHub(t, func(c *configT) { c.Demo = true; c.DemoSpeed = 20 })
	src := th.demoUpdates.Load()
	if src == nil || src.MetadataURL != th.URL()+"/demo-updates" {
		t.Fatalf("demo source %+v, want %s/demo-updates", src, th.URL())
	}
	resp, err := http.Get(th.URL() + "/demo-updates/1.root.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(b) == 0 {
		t.Fatalf("GET /demo-updates/1.root.json: %s, %d bytes", resp.Status, len(b))
	}

	plain := startHub(t)
	resp, err = http.Get(plain.URL() + "/demo-updates/1.root.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("without --demo: %s, want 404", resp.Status)
	}
}
