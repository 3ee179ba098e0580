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
	t.Parallel()
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

// Who may do what with feeds and holds: anyone signed in sees the feeds
// (a stale one makes "no flaws" mean less), only the admin changes them;
// a member cannot put a device on hold.
func TestFeedAndHoldAccess(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	admin := th.setup("alex")
	if code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/accounts", admin,
		map[string]string{"username": "kim", "password": "marble-otter-sunrise-19", "role": "member"}); code != http.StatusCreated {
		t.Fatalf("add member: %d %v", code, out)
	}
	kim := th.token("kim", "marble-otter-sunrise-19")
	feed := map[string]string{"url": "https://127.0.0.1:1/osv/all.zip", "kind": "osv"}
	for _, tc := range []struct {
		name, method, path, who string
		body                    any
		want                    int
	}{
		{"member lists feeds", "GET", "/api/v1/advisories/feeds", kim, nil, http.StatusOK},
		{"member adds a feed", "POST", "/api/v1/advisories/feeds", kim, feed, http.StatusForbidden},
		{"admin adds a feed", "POST", "/api/v1/advisories/feeds", admin, feed, http.StatusCreated},
		{"admin adds plain http", "POST", "/api/v1/advisories/feeds", admin, map[string]string{"url": "http://x.example/a.zip", "kind": "osv"}, http.StatusUnprocessableEntity},
		{"admin pins a CSAF key", "POST", "/api/v1/advisories/feeds", admin, map[string]any{"url": "https://127.0.0.1:1/.well-known/csaf/provider-metadata.json", "kind": "csaf",
			"fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567", "unsignedAllowed": true}, http.StatusCreated},
		{"admin pins a bad fingerprint", "POST", "/api/v1/advisories/feeds", admin, map[string]any{"url": "https://127.0.0.1:1/.well-known/csaf/provider-metadata.json", "kind": "csaf",
			"fingerprint": "not hex"}, http.StatusUnprocessableEntity},
		{"member refreshes", "POST", "/api/v1/advisories/feeds/refresh", kim, nil, http.StatusForbidden},
		{"member removes", "DELETE", "/api/v1/advisories/feeds?url=https://127.0.0.1:1/osv/all.zip", kim, nil, http.StatusForbidden},
		{"admin removes", "DELETE", "/api/v1/advisories/feeds?url=https://127.0.0.1:1/osv/all.zip", admin, nil, http.StatusNoContent},
		{"admin removes again", "DELETE", "/api/v1/advisories/feeds?url=https://127.0.0.1:1/osv/all.zip", admin, nil, http.StatusNotFound},
	} {
		if code, out, _ := call(t, http.DefaultClient, tc.method, th.URL()+tc.path, tc.who, tc.body); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.want)
		}
	}
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", admin, map[string]string{"name": "Hall", "type": "thermostat"})
	if code != http.StatusCreated {
		t.Fatalf("add device: %d %v", code, out)
	}
	dev := out["device"].(map[string]any)["id"].(string)
	if code, _, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices/"+dev+"/restrict", kim, map[string]string{"advisory": "X"}); code != http.StatusForbidden {
		t.Errorf("member restricts a device: %d, want 403", code)
	}
}
