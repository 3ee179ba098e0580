package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/testsupport/porttest"
)

// The README's first command, `candor serve --demo`, on a machine where
// another program holds 1883 and 8080: it starts on free ports and says
// which. With the address given explicitly it stops with a clear error.
func TestServeDemoWithTakenDefaultPorts(t *testing.T) {
	porttest.Hold(t, "127.0.0.1:1883")
	porttest.Hold(t, "127.0.0.1:8080")
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)

	_, stderr, code := run(t, "", "serve", "--demo", "--data", dir, "--mqtt-addr", "127.0.0.1:1883", "--http-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "--mqtt-addr") {
		t.Errorf("serve --demo with a chosen, taken MQTT address: exit %d, %q", code, stderr)
	}

	srv := candor("serve", "--demo", "--data", dir, "--log-level", "warn")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	var mqtt, web, line string
	var notes []string
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { srv.Process.Kill() })
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(l, "MQTT:"); ok {
			mqtt = strings.TrimSpace(a)
		}
		if a, ok := strings.CutPrefix(l, "Web UI:"); ok {
			web = strings.TrimSpace(a)
		}
		if strings.HasPrefix(l, "Note: port") {
			notes = append(notes, l)
		}
		if strings.HasPrefix(l, "mosquitto_pub ") {
			line = l
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve --demo exited with %v after SIGTERM", err)
	}

	_, port, err := net.SplitHostPort(mqtt)
	if err != nil || port == "1883" {
		t.Fatalf("banner's MQTT address %q, want a free port", mqtt)
	}
	if strings.Contains(web, ":8080/") {
		t.Errorf("banner's web UI %q is on the taken port", web)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "port 1883 was taken") || !strings.Contains(notes[0], mqtt) || !strings.Contains(notes[1], "port 8080 was taken") {
		t.Errorf("banner notes %q", notes)
	}
	if !strings.Contains(line, " -p "+port+" ") {
		t.Errorf("banner's mosquitto_pub line %q does not use port %s", line, port)
	}
}

// The README's promise for `candor serve --demo`: the demo thermostat is
// affected by the demo advisory, and the demo's own signed update
// repository fixes it: "advisories list" first names the thermostat with
// its fix on its way, then no longer names it.
func TestServeDemoShowsAdvisoryAndSignedFix(t *testing.T) {
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv := candor("serve", "--demo", "--demo-speed", "10", "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn")
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
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "mosquitto_pub ") {
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)

	poll := func(what string, cond func(out string) bool) {
		t.Helper()
		end := time.Now().Add(30 * time.Second)
		for {
			out, _, code := run(t, "", "advisories", "list", "--data", dir)
			if code == 0 && cond(out) {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s; last list:\n%s", what, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	poll("the thermostat's advisory with its fix on its way", func(out string) bool {
		return strings.Contains(out, "CANDOR-DEMO-2026-0001") && strings.Contains(out, "Demo thermostat") && strings.Contains(out, "on its way: version 1.4.2")
	})
	poll("the advisory closed by the fix", func(out string) bool {
		return !strings.Contains(out, "Demo thermostat")
	})
}
