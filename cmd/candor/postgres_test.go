package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// serveOn starts `candor serve` with its data in dir and its store at
// dbURL, and returns the process with its MQTT address once the banner
// is printed.
func serveOn(t *testing.T, dir, dbURL string) (*exec.Cmd, string) {
	t.Helper()
	srv := candor("serve", "--data", dir, "--store", dbURL, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	deadline := time.AfterFunc(30*time.Second, func() { _ = srv.Process.Kill() })
	defer deadline.Stop()
	var mqttAddr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "MQTT:"); ok {
			mqttAddr = strings.TrimSpace(a)
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if mqttAddr == "" {
		t.Fatal("serve printed no MQTT address")
	}
	return srv, mqttAddr
}

// TestKillOnPostgresLosesNoAcknowledgedReading kills the hub with
// SIGKILL while a device publishes at QoS 1 as fast as it is
// acknowledged, starts it again on the same database and data directory,
// and finds every acknowledged reading stored.
func TestKillOnPostgresLosesNoAcknowledgedReading(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	srv, mqttAddr := serveOn(t, dir, dbURL)
	out, stderr, code := run(t, "", "device", "add", "Kitchen", "--type", "thermostat", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("device add: %d %s", code, stderr)
	}
	var added struct {
		Device struct{ ID string } `json:"device"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("device add --json: %v", err)
	}
	id := added.Device.ID

	conn, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, UsernameFlag: true, Username: id,
		PasswordFlag: true, Password: []byte(added.Secret), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("connect: %v", err)
	}

	// Each reading carries its number in celsius (-20.00, -19.99, …), so
	// the stored ones can be matched to the acknowledged ones.
	const most = 7000
	value := func(i int) string { return fmt.Sprintf("%.2f", float64(i)/100-20) }
	var acked []string
	enough := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range most {
			resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
				Payload: []byte(`{"celsius":` + value(i) + `}`)})
			if err != nil || resp.ReasonCode >= 0x80 {
				return // the hub is gone
			}
			acked = append(acked, value(i))
			if len(acked) == 50 {
				close(enough)
			}
		}
	}()
	select {
	case <-enough:
	case <-done:
		t.Fatalf("publishing stopped after %d acknowledged readings, before the kill", len(acked))
	}
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	_ = srv.Wait()
	if len(acked) == most {
		t.Fatal("every reading was acknowledged before the kill; nothing was in flight")
	}

	serveOn(t, dir, dbURL)
	out, stderr, code = run(t, "", "readings", id, "--limit", "10000", "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("readings after restart: %d %s", code, stderr)
	}
	var stored []struct {
		Payload struct {
			Celsius float64 `json:"celsius"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(out), &stored); err != nil {
		t.Fatalf("readings --json: %v", err)
	}
	have := make(map[string]bool, len(stored))
	for _, r := range stored {
		have[fmt.Sprintf("%.2f", r.Payload.Celsius)] = true
	}
	var lost []string
	for _, v := range acked {
		if !have[v] {
			lost = append(lost, v)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged readings lost after SIGKILL (first: celsius %s)", len(lost), len(acked), lost[0])
	}
	t.Logf("%d readings acknowledged before SIGKILL, %d stored after restart", len(acked), len(stored))
}
