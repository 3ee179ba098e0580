package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// A manifest that names its maker's feeds adds them to the hub's feeds at
// the next refresh, marked as the manifest's; a refresh that cannot reach
// the maker keeps its error on the feed, and the API lists it.
func TestManifestNamesAdvisoryFeeds(t *testing.T) {
	th := startHub(t)
	doc, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	csaf := "https://127.0.0.1:1/.well-known/csaf/provider-metadata.json"
	m["candor:advisories"] = map[string]any{"csafProviderMetadata": csaf, "osvFeed": "https://127.0.0.1:1/osv/all.zip"}
	doc, _ = json.Marshal(m)
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/manifests", "", string(doc)); code != http.StatusCreated {
		t.Fatalf("manifest with candor:advisories: %d %v", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	th.refreshFeeds(ctx)
	code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/advisories/feeds", "", nil)
	fs, _ := out["feeds"].([]any)
	if code != http.StatusOK || len(fs) != 2 {
		t.Fatalf("feeds: %d %v", code, out)
	}
	for _, x := range fs {
		f := x.(map[string]any)
		if f["origin"] != "manifest:thermostat" || f["lastAttempt"] == nil || f["lastError"] == "" || f["lastSuccess"] != nil || f["stale"] != false {
			t.Errorf("feed %v, want the manifest's, tried, failed, not yet stale", f)
		}
	}
	// A second refresh adds nothing and logs no second addition.
	th.refreshFeeds(ctx)
	if n := len(th.logged("", "advisory.feed.add")); n != 2 {
		t.Errorf("%d advisory.feed.add entries, want 2", n)
	}
}
