package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServeIn runs `candor serve` on loopback ports in dir until the
// test ends.
func startServeIn(t *testing.T, dir string) {
	t.Helper()
	srv := candor("serve", "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
		}
	})
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { _ = srv.Process.Kill() })
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "The token works once") {
			break
		}
	}
	deadline.Stop()
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
}

// The assessment commands as a user runs them: the audit's exit status
// follows --fail-on, a suppression hides a finding, and a saved PIA and
// conformance report verify offline with the hub's key.
func TestAssessCommands(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	startServeIn(t, dir)
	if _, stderr, code := run(t, "correct-horse-battery-staple-42\n", "device", "add", "Hall", "--type", "thermostat", "--secret-stdin", "--data", dir); code != 0 {
		t.Fatalf("device add: %d %s", code, stderr)
	}

	// A chosen secret is a low finding: it fails --fail-on low, not high.
	out, stderr, code := run(t, "", "audit", "--fail-on", "low", "--data", dir)
	if code != 1 || !strings.Contains(out, "A device uses a secret a person chose") || !strings.Contains(stderr, "at low or above") {
		t.Fatalf("audit --fail-on low: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, stderr, code := run(t, "", "audit", "--fail-on", "high", "--data", dir); code != 0 {
		t.Fatalf("audit --fail-on high: exit %d %s", code, stderr)
	}
	var id string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Id:"); ok && strings.HasPrefix(strings.TrimSpace(v), "chosen-secret:") {
			id = strings.TrimSpace(v)
		}
	}
	if id == "" {
		t.Fatalf("no finding id in:\n%s", out)
	}
	if _, stderr, code := run(t, "", "audit", "suppress", id, "--reason", "the maker's app sets it", "--for", "24h", "--data", dir); code != 0 {
		t.Fatalf("suppress: %d %s", code, stderr)
	}
	out, _, _ = run(t, "", "audit", "--fail-on", "info", "--data", dir)
	if !strings.Contains(out, "suppressed until") {
		t.Fatalf("suppressed finding not shown as such:\n%s", out)
	}

	pia, stderr, code := run(t, "", "pia", "--format", "json", "--data", dir)
	if code != 0 {
		t.Fatalf("pia: %d %s", code, stderr)
	}
	md, _, code := run(t, "", "pia", "--data", dir)
	if code != 0 || !strings.Contains(md, "# Privacy impact assessment") || !strings.Contains(md, "Hall") {
		t.Fatalf("pia markdown: %d %s", code, md)
	}
	conf, stderr, code := run(t, "", "conformance", "--format", "json", "--data", dir)
	if code != 0 {
		t.Fatalf("conformance: %d %s", code, stderr)
	}
	text, _, code := run(t, "", "conformance", "--data", dir)
	if code != 0 || !strings.Contains(text, "live PASS") || !strings.Contains(text, "5.1-1") {
		t.Fatalf("conformance text: %d %s", code, text)
	}
	key := filepath.Join(dir, "assess", "report-signing-key.pub.pem")
	for name, doc := range map[string]string{"pia": pia, "conformance": conf} {
		f := filepath.Join(t.TempDir(), name+".json")
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := run(t, "", name, "verify", f, "--key", key)
		if code != 0 || !strings.Contains(out, "Good signature: "+name) {
			t.Fatalf("%s verify: %d %s %s", name, code, out, stderr)
		}
		tampered := strings.Replace(doc, `"document":"ey`, `"document":"eX`, 1)
		if err := os.WriteFile(f, []byte(tampered), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, code := run(t, "", name, "verify", f, "--key", key); code != 1 {
			t.Fatalf("%s verify of a changed document: exit %d", name, code)
		}
	}
}
