package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The test binary doubles as the candor binary: run with CANDOR_TEST_MAIN=1
// it executes main, so the CLI is tested as a user runs it, exit codes and
// all, without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("CANDOR_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	if os.Getenv("CANDOR_TEST_STACKS") == "1" {
		reportStacks() // stacks_test.go
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Tests that call t.Parallel run two at a time (GOMAXPROCS on CI's
// 2-core machine) after the sequential ones: each runs its own hub
// process in a directory of its own on ports the kernel picks, and most
// of its time is spent waiting for the processes it starts. The demo
// tests (default ports), the several-nodes and leader tests (NATS), the
// PostgreSQL crash test and the stack-size test stay sequential.
func candor(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CANDOR_TEST_MAIN=1")
	return cmd
}

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := candor(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestExplainManifestFile(t *testing.T) {
	t.Parallel()
	out, stderr, code := run(t, "", "explain", "--file", "../../internal/manifest/templates/wearable.json")
	if code != 0 || !strings.Contains(out, "Heart rate") || !strings.Contains(out, "In detail") {
		t.Errorf("explain --file: exit %d %q %s", code, out, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"title": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, "", "explain", "--file", bad)
	if code != 1 || !strings.Contains(stderr, "bad.json") {
		t.Errorf("explain of an invalid manifest: exit %d %q", code, stderr)
	}
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"serve", "--mqtt-addr", "nonsense"}, 1, "--mqtt-addr"},
		{[]string{"serve", "--batch-max-rows", "0"}, 1, "--batch-max-rows"},
		{[]string{"serve", "--mqtt-addr", ""}, 1, "--mqtt-addr: no MQTT listener is left"},
		{[]string{"device", "add", "X", "--data", "/nonexistent-candor"}, 1, "--type is required"},
		{[]string{"device", "add", "X", "--type", "thermostat", "--data", "/nonexistent-candor"}, 1, "no hub is running"},
		{[]string{"device", "frobnicate"}, 1, "unknown device command"},
		{[]string{"simulate", "--kind", "thermostat"}, 1, "--id"},
	}
	for _, tc := range tests {
		_, stderr, code := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("candor %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, tc.code, tc.want)
		}
		if tc.code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("candor %v: error is not one line: %q", tc.args, stderr)
		}
	}
	for _, sub := range []string{"serve", "device add", "device list", "device rotate", "device revoke", "readings", "simulate"} {
		_, stderr, code := run(t, "", append(strings.Fields(sub), "--help")...)
		if code != 0 || !strings.Contains(stderr, "Usage") {
			t.Errorf("candor %s --help: exit %d, %q", sub, code, stderr)
		}
	}
}

// TestServeAndManage runs the documented workflow: start the hub, add a
// device from the CLI, publish as the device, read it back, revoke it, and
// stop the hub with SIGTERM.
func TestServeAndManage(t *testing.T) {
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
	var mqttAddr, token string
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { srv.Process.Kill() })
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "MQTT:"); ok {
			mqttAddr = strings.TrimSpace(a)
		}
		if strings.HasPrefix(line, "setup-") {
			token = line
		}
		if strings.HasPrefix(line, "The token works once") {
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)
	if mqttAddr == "" || token == "" {
		t.Fatalf("banner lacks MQTT address or setup token (mqtt=%q)", mqttAddr)
	}

	out, stderr, code := run(t, "", "device", "add", "Kitchen", "--type", "thermostat", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("device add: %d %s", code, stderr)
	}
	var added struct {
		Device struct{ ID string } `json:"device"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("device add --json: %v: %s", err, out)
	}
	id := added.Device.ID

	// A chosen default secret from stdin is refused with the reason.
	_, stderr, code = run(t, "xc3511\n", "device", "add", "Cam", "--type", "motion-camera", "--secret-stdin", "--data", dir)
	if code != 1 || !strings.Contains(stderr, "default") {
		t.Errorf("default secret via stdin: exit %d %q", code, stderr)
	}

	conn, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, UsernameFlag: true, Username: id, PasswordFlag: true, Password: []byte(added.Secret), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("connect as new device: %v", err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1, Payload: []byte(`{"celsius":19.5}`)}); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, "", "readings", id, "--data", dir)
	if code != 0 || !strings.Contains(out, `{"celsius":19.5}`) || !strings.Contains(out, "temperature") {
		t.Errorf("readings: exit %d out %q err %q", code, out, stderr)
	}
	out, stderr, code = run(t, "", "explain", id, "--data", dir)
	if code != 0 || !strings.Contains(out, "privacy and security label") || !strings.Contains(out, "Security updates") {
		t.Errorf("explain: exit %d %q %s", code, out, stderr)
	}
	out, _, code = run(t, "", "device", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "connected") {
		t.Errorf("device list: exit %d %q", code, out)
	}
	if _, stderr, code = run(t, "", "device", "revoke", id, "--data", dir); code != 0 {
		t.Fatalf("revoke: %d %s", code, stderr)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("revoked device still connected")
	}

	checkLogVerify(t, dir)

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "candor.db")); err != nil {
		t.Errorf("no database in the data directory: %v", err)
	}
}

// checkLogVerify exports the running hub's transparency log, verifies it
// offline, then edits, deletes and reorders one entry and expects
// 'candor log verify' to fail naming the first bad index. The workflow
// before it logged: credential create, readings read, credential revoke.
func checkLogVerify(t *testing.T, dir string) {
	t.Helper()
	export, stderr, code := run(t, "", "log", "export", "--data", dir)
	if code != 0 {
		t.Fatalf("log export: %d %s", code, stderr)
	}
	key, _, code := run(t, "", "log", "key", "--data", dir)
	if code != 0 {
		t.Fatal("log key")
	}
	cpText, _, code := run(t, "", "log", "checkpoint", "--data", dir)
	if code != 0 {
		t.Fatal("log checkpoint")
	}
	tmp := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyArg := strings.TrimSpace(key)
	saved := write("checkpoint.txt", cpText)
	out, stderr, code := run(t, "", "log", "verify", "--key", keyArg, "--export", write("ok.jsonl", export), "--checkpoint", saved)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify of an intact export: exit %d %q %s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimRight(export, "\n"), "\n")
	// lines[0] is the header, lines[len-1] the end; entries in between.
	if len(lines) < 5 {
		t.Fatalf("export too short to tamper with: %d lines", len(lines))
	}
	k := 2 // the line of entry index 1
	edited := append([]string(nil), lines...)
	edited[k] = strings.Replace(edited[k], `"action":"`, `"action":"x`, 1)
	deleted := append(append([]string(nil), lines[:k]...), lines[k+1:]...)
	swapped := append([]string(nil), lines...)
	swapped[k], swapped[k+1] = swapped[k+1], swapped[k]
	for name, ls := range map[string][]string{"edited": edited, "deleted": deleted, "reordered": swapped} {
		_, stderr, code := run(t, "", "log", "verify", "--key", keyArg, "--export", write(name+".jsonl", strings.Join(ls, "\n")+"\n"))
		if code == 0 {
			t.Errorf("%s export verified", name)
			continue
		}
		if !strings.Contains(stderr, "NOT verified") || !(strings.Contains(stderr, "entry 1") || strings.Contains(stderr, "index 1")) {
			t.Errorf("%s export: the error does not name index 1: %s", name, stderr)
		}
	}
}
