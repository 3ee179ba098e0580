package advisories

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// makerSite is a maker's advisory site on a real TLS server: a CSAF
// provider-metadata.json with a ROLIE feed and a directory distribution,
// and an OSV zip. Tests change its files while it runs.
type makerSite struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
}

func newMakerSite(t *testing.T) *makerSite {
	t.Helper()
	m := &makerSite{files: map[string][]byte{}, hits: map[string]int{}}
	m.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		b, ok := m.files[r.URL.Path]
		m.hits[r.URL.Path]++
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *makerSite) put(path string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = b
}

func (m *makerSite) url(path string) string { return m.srv.URL + path }

// publishCSAF writes provider metadata naming a ROLIE feed (with hash
// links) for rolieDocs and a directory (index.txt) for dirDocs.
func (m *makerSite) publishCSAF(t *testing.T, rolieDocs, dirDocs map[string][]byte) {
	t.Helper()
	pmd := map[string]any{
		"canonical_url":              m.url("/.well-known/csaf/provider-metadata.json"),
		"last_updated":               "2026-12-01T00:00:00Z",
		"list_on_CSAF_aggregators":   true,
		"metadata_version":           "2.0",
		"mirror_on_CSAF_aggregators": true,
		"publisher":                  map[string]any{"category": "vendor", "name": "Example Thermostats", "namespace": "https://maker.example"},
		"role":                       "csaf_trusted_provider",
		"distributions": []any{
			map[string]any{"rolie": map[string]any{"feeds": []any{
				map[string]any{"summary": "WHITE advisories", "tlp_label": "WHITE", "url": m.url("/.well-known/csaf/white/feed-tlp-white.json")},
				// A feed for partners only: the hub has no credentials and must skip it.
				map[string]any{"summary": "AMBER advisories", "tlp_label": "AMBER", "url": m.url("/.well-known/csaf/amber/feed-tlp-amber.json")},
			}}},
			map[string]any{"directory_url": m.url("/.well-known/csaf/dir/")},
		},
	}
	m.put("/.well-known/csaf/provider-metadata.json", mustJSON(t, pmd))
	var entries []any
	for name, b := range rolieDocs {
		p := "/.well-known/csaf/white/2026/" + name
		m.put(p, b)
		sum := sha256.Sum256(b)
		m.put(p+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+name+"\n"))
		entries = append(entries, map[string]any{
			"id": name, "title": name, "published": "2026-12-01T00:00:00Z", "updated": "2026-12-01T00:00:00Z",
			"link":    []any{map[string]any{"rel": "self", "href": "2026/" + name}, map[string]any{"rel": "hash", "href": "2026/" + name + ".sha256"}},
			"format":  map[string]any{"schema": "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json", "version": "2.0"},
			"content": map[string]any{"type": "application/json", "src": "2026/" + name},
		})
	}
	m.put("/.well-known/csaf/white/feed-tlp-white.json", mustJSON(t, map[string]any{"feed": map[string]any{
		"id": "white", "title": "advisories", "updated": "2026-12-01T00:00:00Z", "entry": entries}}))
	var index strings.Builder
	for name, b := range dirDocs {
		m.put("/.well-known/csaf/dir/2026/"+name, b)
		index.WriteString("2026/" + name + "\n")
	}
	m.put("/.well-known/csaf/dir/index.txt", []byte(index.String()))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// feedHub is newHub with a feed store, a TLS client that trusts the
// maker's test server, and a clock the test moves.
func feedHub(t *testing.T, m *makerSite) (*Service, *recorder, *time.Time) {
	t.Helper()
	db, opts, rec := newHub(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	opts.Feeds, opts.HTTP = db, m.srv.Client()
	opts.Now = func() time.Time { return now }
	return New(opts), rec, &now
}

func TestFeedCSAF(t *testing.T) {
	m := newMakerSite(t)
	good := fixture(t, "csaf-thermostat.json").Data
	bad := fixture(t, "csaf-no-publisher.json").Data
	m.publishCSAF(t, map[string][]byte{"good.json": good}, map[string][]byte{"bad.json": bad})
	s, rec, _ := feedHub(t, m)
	ctx := t.Context()
	pmd := m.url("/.well-known/csaf/provider-metadata.json")
	if _, err := s.AddFeed(ctx, pmd, FeedCSAF, ""); err != nil {
		t.Fatal(err)
	}
	res, err := s.RefreshFeed(ctx, pmd)
	if err != nil {
		t.Fatal(err)
	}
	// The good document is imported, the bad one refused alone with its JSON path.
	if len(res.Imported) != 1 || res.Imported[0] != "CANDOR-DEMO-SA-2026-07" {
		t.Errorf("imported %v, want the good CSAF document", res.Imported)
	}
	if len(res.Refused) != 1 || !strings.Contains(res.Refused[0], "bad.json") || !strings.Contains(res.Refused[0], "$.document") {
		t.Errorf("refused %v, want bad.json with its JSON path", res.Refused)
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("count = %d, want 1 (nothing of the bad document)", n)
	}
	if f := res.Feed; f.LastSuccess.IsZero() || f.Documents != 2 || f.Stale || !strings.Contains(f.LastError, "1 of 2") {
		t.Errorf("feed = %+v, want refreshed with 2 documents and the refusal noted", f)
	}
	m.mu.Lock()
	amber := m.hits["/.well-known/csaf/amber/feed-tlp-amber.json"]
	m.mu.Unlock()
	if amber != 0 {
		t.Error("the hub fetched a TLP:AMBER feed it has no access to")
	}
	// A second refresh of unchanged documents logs nothing new.
	imports := func() int {
		n := 0
		for _, ev := range rec.evs {
			if ev.Action == ActionAdvisoryImport {
				n++
				if ev.Detail["feed"] != pmd {
					t.Errorf("import event %+v does not name the feed", ev.Detail)
				}
			}
		}
		return n
	}
	if _, err := s.RefreshFeed(ctx, pmd); err != nil || imports() != 1 {
		t.Errorf("second refresh: err %v, %d import events, want 1 (unchanged documents are not imported again)", err, imports())
	}
}

func TestFeedRefusals(t *testing.T) {
	m := newMakerSite(t)
	good := fixture(t, "csaf-thermostat.json").Data
	m.publishCSAF(t, map[string][]byte{"good.json": good}, nil)
	s, _, _ := feedHub(t, m)
	ctx := t.Context()
	pmd := m.url("/.well-known/csaf/provider-metadata.json")
	if _, err := s.AddFeed(ctx, pmd, FeedCSAF, ""); err != nil {
		t.Fatal(err)
	}

	// A document that does not match its SHA-256 file is refused.
	m.put("/.well-known/csaf/white/2026/good.json.sha256", []byte(strings.Repeat("0", 64)))
	res, err := s.RefreshFeed(ctx, pmd)
	if err != nil || len(res.Refused) != 1 || !strings.Contains(res.Refused[0], "SHA-256") {
		t.Errorf("hash mismatch: %+v, %v; want the document refused", res, err)
	}
	// An oversized document is refused without reading it all.
	big := append([]byte(`{"document":{"x":"`), bytes.Repeat([]byte("a"), MaxDocumentBytes)...)
	m.publishCSAF(t, map[string][]byte{"big.json": big}, nil)
	res, err = s.RefreshFeed(ctx, pmd)
	if err != nil || len(res.Refused) != 1 || !strings.Contains(res.Refused[0], "larger than") {
		t.Errorf("oversized: %+v, %v; want the document refused as too large", res, err)
	}
	if n, _ := s.Count(ctx); n != 0 {
		t.Errorf("count = %d after refused documents, want 0", n)
	}
	// Broken provider metadata fails the feed as a whole.
	m.put("/.well-known/csaf/provider-metadata.json", []byte(`{"canonical_url": 7}`))
	if _, err := s.RefreshFeed(ctx, pmd); !errors.Is(err, ErrFeed) {
		t.Errorf("broken metadata: err = %v, want ErrFeed", err)
	}

	table := []struct {
		name, url, kind string
	}{
		{"plain http", "http://maker.example/.well-known/csaf/provider-metadata.json", FeedCSAF},
		{"not provider metadata", m.url("/feed.json"), FeedCSAF},
		{"unknown kind", m.url("/x.json"), "rss"},
		{"user in URL", "https://u:p@maker.example/osv.zip", FeedOSV},
	}
	for _, tc := range table {
		if _, err := s.AddFeed(ctx, tc.url, tc.kind, ""); !errors.Is(err, ErrFeedURL) {
			t.Errorf("%s: AddFeed err = %v, want ErrFeedURL", tc.name, err)
		}
	}
}

func TestFeedRedirectToHTTPRefused(t *testing.T) {
	m := newMakerSite(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	s, _, _ := feedHub(t, m)
	m.srv.Config.Handler = http.RedirectHandler(plain.URL+"/all.zip", http.StatusFound)
	u := m.url("/osv/all.zip")
	if _, err := s.AddFeed(t.Context(), u, FeedOSV, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshFeed(t.Context(), u); err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("err = %v, want the redirect to http refused", err)
	}
}

func TestFeedOSVAndStale(t *testing.T) {
	m := newMakerSite(t)
	m.put("/osv/all.zip", zipOf(t, map[string][]byte{
		"CANDOR-DEMO-2026-0001.json": fixture(t, "osv-thermostat.json").Data,
		"BAD.json":                   fixture(t, "osv-bad-range.json").Data,
		"README.txt":                 []byte("not an advisory"),
	}))
	s, _, now := feedHub(t, m)
	ctx := t.Context()
	u := m.url("/osv/all.zip")
	if _, err := s.AddFeed(ctx, u, FeedOSV, "manifest:thermostat"); err != nil {
		t.Fatal(err)
	}
	res, err := s.RefreshFeed(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Imported) != 1 || len(res.Refused) != 1 || !strings.Contains(res.Refused[0], "BAD.json") {
		t.Errorf("result %+v, want one imported and BAD.json refused", res)
	}

	// Eight days later, with the maker's server gone, the feed is stale.
	*now = now.Add(8 * 24 * time.Hour)
	m.srv.Close()
	if _, err := s.RefreshFeed(ctx, u); err == nil {
		t.Error("refresh of a server that is gone succeeded")
	}
	stale, err := s.StaleFeeds(ctx)
	if err != nil || len(stale) != 1 || stale[0].URL != u || !strings.Contains(stale[0].Plain, "8 days") || stale[0].LastError == "" {
		t.Errorf("stale feeds = %+v, %v; want %s, last read 8 days ago, with the error", stale, err, u)
	}
	// A feed added and never read becomes stale seven days after it was added.
	never := "https://127.0.0.1:1/never/all.zip"
	if _, err := s.AddFeed(ctx, never, FeedOSV, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.StaleFeeds(ctx); len(st) != 1 {
		t.Errorf("a feed added just now is stale: %+v", st)
	}
	*now = now.Add(StaleAfter)
	if st, _ := s.StaleFeeds(ctx); len(st) != 2 || !strings.Contains(st[0].Plain+st[1].Plain, "never been read") {
		t.Errorf("stale = %+v, want both feeds, one never read", st)
	}
	if err := s.RemoveFeed(ctx, never); err != nil {
		t.Fatal(err)
	}
}

// FuzzFeedParsers feeds outside bytes to the parsers of a CSAF directory
// index and an OSV feed: they may refuse, never panic, and never let a
// document past the size limit or a path out of its directory.
func FuzzFeedParsers(f *testing.F) {
	f.Add([]byte("2026/a.json\n2026/b.json\n"))
	f.Add([]byte("../../etc/passwd.json\n"))
	f.Add([]byte("PK\x03\x04garbage"))
	f.Add([]byte("https://evil.example/x.json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		base, _ := url.Parse("https://maker.example/.well-known/csaf/dir/")
		if refs, err := parseIndex(base, data); err == nil {
			for _, r := range refs {
				if !strings.HasPrefix(r.url.String(), base.String()) {
					t.Fatalf("index line escaped its directory: %s", r.url)
				}
			}
		}
		if got, err := parseOSVFeed(base, data); err == nil {
			for _, d := range got.docs {
				if len(d.Data) > MaxDocumentBytes {
					t.Fatalf("document %s of %d bytes passed", d.Source, len(d.Data))
				}
			}
		}
	})
}
