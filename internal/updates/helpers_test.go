package updates

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/candor-iot/candor/internal/updates/repo"
)

// testRepo is a real TUF repository on disk, served over HTTP on loopback.
type testRepo struct {
	*repo.Repo
	url string
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(r.PublicDir())))
	t.Cleanup(srv.Close)
	return &testRepo{Repo: r, url: srv.URL}
}

// firmware is an image's bytes; they name the version so a mix-up shows.
func firmware(deviceType, version string) []byte {
	return []byte("firmware image " + deviceType + " " + version + "\n")
}

// add stages and publishes one firmware image; it returns the target path.
func (r *testRepo) add(t testing.TB, deviceType, version string, security bool, fixes ...string) string {
	t.Helper()
	name := deviceType + "/fw-" + version + ".bin"
	custom, err := json.Marshal(map[string]Release{"candor": {DeviceType: deviceType, Version: version, Fixes: fixes,
		Notes: "Fixes a flaw that let people on your network change the settings.", Security: security}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(name, firmware(deviceType, version), custom); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(); err != nil {
		t.Fatal(err)
	}
	return name
}

func (r *testRepo) source(t testing.TB, prefix string) Source {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(r.PublicDir(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return Source{MetadataURL: r.url, TargetPrefix: prefix, TrustedRoot: root}
}

func (r *testRepo) client(t testing.TB, prefix string) *Client {
	t.Helper()
	c, err := NewClient(r.source(t, prefix), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// editJSON rewrites a published metadata file without re-signing it, as
// an attacker who controls the server but not the keys can.
func editJSON(t testing.TB, file string, edit func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantRefused(t testing.TB, err error, want Reason) {
	t.Helper()
	re, ok := err.(*RefusedError)
	if !ok {
		t.Fatalf("error %v (%T), want a *RefusedError with reason %s", err, err, want)
	}
	if re.Reason != want {
		t.Fatalf("refused for %s (%v), want %s", re.Reason, re.Err, want)
	}
}
