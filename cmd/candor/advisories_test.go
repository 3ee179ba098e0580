package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdvisoriesImportAndList runs the real binary: a hub, then
// "advisories import" of a directory with one broken file (nothing is
// imported, the error names the file and the JSON path), then of good
// files, then "advisories list".
func TestAdvisoriesImportAndList(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv := candor("serve", "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { srv.Process.Kill() })
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "The token works once") {
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)

	docs := t.TempDir()
	copyFixture := func(name string) {
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "advisories", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docs, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFixture("osv-thermostat.json")
	copyFixture("osv-bad-range.json")
	_, stderr, code := run(t, "", "advisories", "import", docs, "--data", dir)
	if code != 1 || !strings.Contains(stderr, "osv-bad-range.json") || !strings.Contains(stderr, "$.affected[0].ranges[0].type") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("import with a broken file: exit %d %q", code, stderr)
	}
	out, _, code := run(t, "", "advisories", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "0 held") {
		t.Fatalf("after a refused import: exit %d %q", code, out)
	}
	if err := os.Remove(filepath.Join(docs, "osv-bad-range.json")); err != nil {
		t.Fatal(err)
	}
	copyFixture("csaf-thermostat.json")
	out, stderr, code = run(t, "", "advisories", "import", docs, "--data", dir)
	if code != 0 || !strings.Contains(out, "CANDOR-DEMO-2026-0001") || !strings.Contains(out, "CANDOR-DEMO-SA-2026-07") {
		t.Fatalf("import: exit %d %q %q", code, out, stderr)
	}
	if _, stderr, code = run(t, "", "device", "add", "Hall", "--type", "thermostat", "--data", dir); code != 0 {
		t.Fatalf("device add: %s", stderr)
	}
	// The thermostat has reported no version yet: both advisories name its
	// type, so it is listed as possibly affected.
	out, _, code = run(t, "", "advisories", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "possibly_affected") || !strings.Contains(out, "What to do:") {
		t.Errorf("list: exit %d\n%s", code, out)
	}

	// Feeds: plain http is refused; an https feed is kept, and a refresh
	// of one nobody answers says so and fails.
	if _, stderr, code := run(t, "", "advisories", "feeds", "add", "http://127.0.0.1:1/provider-metadata.json", "--kind", "csaf", "--data", dir); code != 1 || !strings.Contains(stderr, "https") {
		t.Errorf("feeds add http: exit %d %q", code, stderr)
	}
	feed := "https://127.0.0.1:1/.well-known/csaf/provider-metadata.json"
	if out, stderr, code := run(t, "", "advisories", "feeds", "add", feed, "--kind", "csaf", "--data", dir); code != 0 || !strings.Contains(out, "added") {
		t.Fatalf("feeds add: exit %d %q %q", code, out, stderr)
	}
	if out, stderr, code := run(t, "", "advisories", "feeds", "refresh", feed, "--data", dir); code != 1 || !strings.Contains(stderr, "provider metadata") {
		t.Errorf("feeds refresh of an unreachable feed: exit %d %q %q", code, out, stderr)
	}
	if out, _, code := run(t, "", "advisories", "feeds", "--data", dir); code != 0 || !strings.Contains(out, feed) || !strings.Contains(out, "could not read") {
		t.Errorf("feeds list: exit %d\n%s", code, out)
	}
	if _, stderr, code := run(t, "", "advisories", "feeds", "remove", feed, "--data", dir); code != 0 {
		t.Errorf("feeds remove: %s", stderr)
	}
}
