package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/updates/repo"
)

// The audit's checks of advisory feeds and update metadata say "not
// available" until the hub has a feed or a repository; then a feed not
// refreshed for a week and a repository whose timestamp ran out are
// findings.
func TestAuditFeedsAndUpdateMetadata(t *testing.T) {
	// Not parallel: the hub must verify the update metadata within the
	// two seconds its timestamp lives (a time window).
	th := startHub(t)
	_, checks := th.auditFindings()
	for _, name := range []string{"stale-advisory-feeds", "expired-update-metadata"} {
		if checks[name]["available"] != false {
			t.Errorf("%s with nothing to check: %v, want not available", name, checks[name])
		}
	}

	// A feed the hub could never read, added eight days ago.
	feed := "https://127.0.0.1:1/.well-known/csaf/provider-metadata.json"
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/advisories/feeds", "", map[string]string{"url": feed, "kind": "csaf"}); code != http.StatusCreated {
		t.Fatalf("add feed: %d %v", code, out)
	}
	if err := th.st.PutAdvisoryFeed(context.Background(), store.AdvisoryFeed{URL: feed, Kind: "csaf", Origin: "operator",
		AddedAt: time.Now().Add(-8 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// A repository whose timestamp lives two seconds.
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r.Expiry.Timestamp = 2 * time.Second
	custom, err := updates.Release{DeviceType: "thermostat", Version: "1.2.0", Notes: "Fixes a flaw.", Security: true}.Custom()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add("thermostat/fw-1.2.0.bin", []byte("firmware 1.2.0"), custom); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(r.PublicDir())))
	t.Cleanup(srv.Close)
	root, err := r.Root()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../manifest/templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["candor:updates"] = map[string]any{"metadataUrl": srv.URL, "targetPrefix": "thermostat/", "trustedRootSha256": repo.RootSHA256(root)}
	doc, _ = json.Marshal(m)
	if code, out, _ := call(t, th.local, "POST", "http://candor/api/v1/manifests", "", string(doc)); code != http.StatusCreated {
		t.Fatalf("manifest: %d %v", code, out)
	}
	th.addDevice("hall", "thermostat")
	th.checkUpdates(context.Background(), "")

	var found map[string][]map[string]any
	waitFor(t, "both findings", 15*time.Second, func() bool {
		found, checks = th.auditFindings()
		return len(found["stale-advisory-feeds"]) == 1 && len(found["expired-update-metadata"]) > 0
	})
	for _, name := range []string{"stale-advisory-feeds", "expired-update-metadata"} {
		if checks[name]["available"] != true {
			t.Errorf("%s: %v, want available", name, checks[name])
		}
	}
	if ev := found["stale-advisory-feeds"][0]["evidence"].(string); !strings.Contains(ev, feed) || !strings.Contains(ev, "never refreshed") {
		t.Errorf("feed evidence %q", ev)
	}
	if ev := found["expired-update-metadata"][0]["evidence"].(string); !strings.Contains(ev, "timestamp") || !strings.Contains(ev, srv.URL) {
		t.Errorf("metadata evidence %q", ev)
	}
}
