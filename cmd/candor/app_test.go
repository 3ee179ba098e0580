package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// startServe runs `candor serve` on ephemeral ports and returns its data
// directory and MQTT address.
func startServe(t *testing.T) (dir, mqttAddr string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
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
		_ = srv.Wait()
	})
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { srv.Process.Kill() })
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "MQTT:"); ok {
			mqttAddr = strings.TrimSpace(a)
		}
		if strings.HasPrefix(line, "The token works once") {
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)
	if mqttAddr == "" {
		t.Fatal("banner lacks the MQTT address")
	}
	return dir, mqttAddr
}

// TestAppCommands adds an app with the CLI, allows it one stream, and
// checks that it receives that stream's readings over MQTT and, once
// denied again, that the next one does not arrive.
func TestAppCommands(t *testing.T) {
	t.Parallel()
	dir, mqttAddr := startServe(t)
	out, stderr, code := run(t, "", "device", "add", "Kitchen", "--type", "thermostat", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("device add: %d %s", code, stderr)
	}
	var dev struct {
		Device struct{ ID string } `json:"device"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &dev); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code = run(t, "", "app", "add", "Home Assistant", "--data", dir); code != 1 || !strings.Contains(stderr, "--purpose") {
		t.Errorf("app add without a purpose: exit %d %q", code, stderr)
	}
	out, stderr, code = run(t, "", "app", "add", "Home Assistant", "--purpose", "candor:HomeAutomation", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("app add: %d %s", code, stderr)
	}
	var app struct {
		App    struct{ ID string } `json:"app"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatal(err)
	}
	if out, _, code = run(t, "", "app", "list", "--data", dir); code != 0 || !strings.Contains(out, app.App.ID) || !strings.Contains(out, "nothing") {
		t.Errorf("app list before allowing: exit %d %q", code, out)
	}
	if _, stderr, code = run(t, "", "app", "allow", app.App.ID, dev.Device.ID, "temperature", "--data", dir); code != 0 {
		t.Fatalf("app allow: %d %s", code, stderr)
	}

	got := make(chan string, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := connect(t, ctx, mqttAddr, app.App.ID, app.Secret, func(pr paho.PublishReceived) {
		got <- pr.Packet.Topic + " " + string(pr.Packet.Payload)
	})
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/+/+", QoS: 1}}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	pub := connect(t, ctx, mqttAddr, dev.Device.ID, dev.Secret, nil)
	send := func(stream, payload string) {
		t.Helper()
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "candor/" + dev.Device.ID + "/" + stream, QoS: 1, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-ctx.Done():
			t.Fatal("the app received nothing")
			return ""
		}
	}
	send("temperature", `{"celsius":19.5}`)
	if g, want := next(), "candor/"+dev.Device.ID+"/temperature "+`{"celsius":19.5}`; g != want {
		t.Errorf("app received %q, want %q", g, want)
	}
	if _, stderr, code = run(t, "", "app", "deny", app.App.ID, dev.Device.ID, "temperature", "--data", dir); code != 0 {
		t.Fatalf("app deny: %d %s", code, stderr)
	}
	// The thermostat's manifest declares no command: nothing can be allowed.
	if _, stderr, code = run(t, "", "app", "allow", app.App.ID, dev.Device.ID, "setpoint", "--command", "--data", dir); code != 1 || !strings.Contains(stderr, "command") {
		t.Errorf("allow an undeclared command: exit %d %q", code, stderr)
	}
	if _, stderr, code = run(t, "", "app", "allow", app.App.ID, dev.Device.ID, "heating", "--data", dir); code != 0 {
		t.Fatalf("app allow heating: %d %s", code, stderr)
	}
	send("temperature", `{"celsius":20}`)
	send("heating", `{"on":true}`) // the barrier: it must arrive, and first
	if g, want := next(), "candor/"+dev.Device.ID+"/heating "+`{"on":true}`; g != want {
		t.Errorf("after deny the app received %q, want only the barrier %q", g, want)
	}
}

func connect(t *testing.T, ctx context.Context, addr, user, pass string, onPub func(paho.PublishReceived)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: conn}
	if onPub != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onPub(pr); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: user, UsernameFlag: true, Username: user, PasswordFlag: true,
		Password: []byte(pass), KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return c
}
