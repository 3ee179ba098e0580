package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/updates/repo"
)

// A maker's repository made with the CLI is one the hub's client accepts.
func TestUpdatesRepoCommands(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "repo")
	fw := filepath.Join(t.TempDir(), "fw-1.2.0.bin")
	if err := os.WriteFile(fw, []byte("firmware"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "", "updates", "repo", "init", dir)
	if code != 0 || !strings.Contains(out, "trustedRootSha256") {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := run(t, "", "updates", "repo", "add", dir, "--type", "thermostat", "--version", "1.2", fw); code == 0 || !strings.Contains(errOut, "version") {
		t.Fatalf("add with a short version: exit %d, %s", code, errOut)
	}
	for _, args := range [][]string{
		{"add", dir, "--type", "thermostat", "--version", "1.2.0", "--security", "--fixes", "CVE-2026-0001", "--notes", "Fixes a flaw.", fw},
		{"publish", dir},
		{"rotate-root", dir},
		{"timestamp", dir},
	} {
		if out, errOut, code := run(t, "", append([]string{"updates", "repo"}, args...)...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "public"))))
	defer srv.Close()
	root, err := os.ReadFile(filepath.Join(dir, "public", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := updates.NewClient(updates.Source{MetadataURL: srv.URL, TargetPrefix: "thermostat/", RootSHA256: repo.RootSHA256(root)}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cat.RootVersion != 2 || len(cat.Targets) != 1 || cat.Targets[0].Path != "thermostat/fw-1.2.0.bin" || !cat.Targets[0].Release.Security {
		t.Fatalf("catalog: root %d, targets %+v", cat.RootVersion, cat.Targets)
	}
}
