package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// serveWith runs `candor serve` with extra flags on ephemeral ports and
// returns its data directory, web address and setup token.
func serveWith(t *testing.T, flags ...string) (dir, base, setupToken string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	args := append([]string{"serve", "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn"}, flags...)
	srv := candor(args...)
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
		_ = srv.Wait()
	})
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { srv.Process.Kill() })
	next := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "Web UI:"); ok {
			base = strings.TrimSuffix(strings.TrimSpace(a), "/")
		}
		if next && line != "" {
			setupToken, next = line, false
		}
		if strings.HasSuffix(line, "one-time setup token:") {
			next = true
		}
		if strings.HasPrefix(line, "The token works once") {
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)
	if base == "" || setupToken == "" {
		t.Fatalf("banner lacks the web address or the setup token: %q %q", base, setupToken)
	}
	return dir, base, setupToken
}

func apiCall(t *testing.T, method, url, tok string, in any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// The operator gets an admin who lost their phone back in with `candor
// account second-factor reset`, on a hub that requires login codes for
// the admin: before the codes the admin's API answers only the
// enrolment; with them, status says so; after the reset, status says
// they are off and the admin must enrol again.
func TestAccountSecondFactorCommands(t *testing.T) {
	t.Parallel()
	dir, base, setup := serveWith(t, "--require-second-factor-for-admin")
	const pw = "copper-meadow-whistle-58"
	if code, out := apiCall(t, "POST", base+"/api/v1/setup", "", map[string]string{"setup_token": setup, "username": "alex", "password": pw}); code != 201 {
		t.Fatalf("setup: %d %v", code, out)
	}
	code, out := apiCall(t, "POST", base+"/api/v1/tokens", "", map[string]string{"username": "alex", "password": pw, "name": "test"})
	if code != 201 {
		t.Fatalf("token: %d %v", code, out)
	}
	tok := out["token"].(string)
	if code, out := apiCall(t, "GET", base+"/api/v1/devices", tok, nil); code != http.StatusForbidden {
		t.Fatalf("devices before enrolling: %d %v", code, out)
	}
	stdout, stderr, rc := run(t, "", "account", "second-factor", "status", "alex", "--data", dir)
	if rc != 0 || !strings.Contains(stdout, "alex: no login codes") {
		t.Fatalf("status before: %d %q %q", rc, stdout, stderr)
	}
	if _, stderr, rc := run(t, "", "account", "second-factor", "reset", "alex", "--data", dir); rc != 1 || !strings.Contains(stderr, "there are no login codes of alex to turn off") {
		t.Fatalf("reset with nothing to reset: %d %q", rc, stderr)
	}
	code, en := apiCall(t, "POST", base+"/api/v1/me/second-factor", tok, map[string]string{"password": pw})
	if code != 201 {
		t.Fatalf("enrol: %d %v", code, en)
	}
	c, err := totp.GenerateCodeCustom(en["secret"].(string), time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := apiCall(t, "POST", base+"/api/v1/me/second-factor/confirm", tok, map[string]string{"code": c}); code != 200 {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if code, out := apiCall(t, "GET", base+"/api/v1/devices", tok, nil); code != 200 {
		t.Fatalf("devices once enrolled: %d %v", code, out)
	}
	if stdout, stderr, rc := run(t, "", "account", "second-factor", "status", "alex", "--data", dir); rc != 0 || !strings.Contains(stdout, "login codes on since") ||
		!strings.Contains(stdout, "10 recovery code(s) left") {
		t.Fatalf("status once enrolled: %d %q %q", rc, stdout, stderr)
	}
	if stdout, stderr, rc := run(t, "", "account", "second-factor", "reset", "alex", "--data", dir); rc != 0 || !strings.Contains(stdout, "Login codes of alex removed") {
		t.Fatalf("reset: %d %q %q", rc, stdout, stderr)
	}
	if stdout, _, rc := run(t, "", "account", "second-factor", "status", "alex", "--data", dir, "--json"); rc != 0 || !strings.Contains(stdout, `"on": false`) {
		t.Fatalf("status --json after the reset: %d %q", rc, stdout)
	}
	// The admin is told at the next login, and must enrol again first.
	code, out = apiCall(t, "POST", base+"/api/v1/tokens", "", map[string]string{"username": "alex", "password": pw, "name": "again"})
	if code != 201 || !strings.Contains(out["notice"].(string), "turned off by the operator") {
		t.Fatalf("next login: %d %v", code, out)
	}
	if code, out := apiCall(t, "GET", base+"/api/v1/devices", out["token"].(string), nil); code != http.StatusForbidden {
		t.Fatalf("devices after the reset: %d %v", code, out)
	}
	if _, stderr, rc := run(t, "", "account", "second-factor", "status", "nobody", "--data", dir); rc != 1 || stderr == "" {
		t.Fatalf("unknown username: %d %q", rc, stderr)
	}
	if _, stderr, rc := run(t, "", "account", "nonsense"); rc != 1 || !strings.Contains(stderr, "second-factor status|reset") {
		t.Fatalf("unknown subcommand: %d %q", rc, stderr)
	}
}
