package hub

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/testsupport/porttest"
)

// defaultAddrs is a test hub on the built-in default addresses, as
// `candor serve` without address flags starts it.
func defaultAddrs(c *configT) {
	def := config.Default()
	c.MQTTAddr, c.HTTPAddr = def.MQTTAddr, def.HTTPAddr
	c.MQTTAddrSet, c.HTTPAddrSet = false, false
}

// startWithBanner starts a hub and returns it with the banner it printed.
func startWithBanner(t *testing.T, mod ...func(*configT)) (*testHub, string, error) {
	t.Helper()
	dir := shortTempDir(t)
	cfg := testConfig(t, dir)
	for _, m := range mod {
		m(&cfg)
	}
	var banner bytes.Buffer
	logs := &lockedWriter{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := Start(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), &banner)
	if err != nil {
		return nil, "", err
	}
	th := &testHub{Hub: h, t: t, dir: dir, logs: logs}
	sock := filepath.Join(dir, SocketName)
	th.local = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	t.Cleanup(th.close)
	return th, banner.String(), nil
}

// The first run of `candor serve --demo` on a machine whose MQTT port
// (and web port) another program holds: the demo moves to free ports,
// says so, and prints the lines to use with the real port.
func TestDemoMovesOffTakenDefaultPorts(t *testing.T) {
	def := config.Default()
	porttest.Hold(t, def.MQTTAddr)
	porttest.Hold(t, def.HTTPAddr)
	th, banner, err := startWithBanner(t, defaultAddrs, func(c *configT) { c.Demo, c.DemoSpeed = true, 1000 })
	if err != nil {
		t.Fatalf("demo start with its default ports taken: %v", err)
	}
	host, port, _ := net.SplitHostPort(th.MQTTAddr())
	if host != "127.0.0.1" || port == "1883" || port == "0" {
		t.Fatalf("demo MQTT on %s, want a free port on 127.0.0.1", th.MQTTAddr())
	}
	if _, hport, _ := net.SplitHostPort(th.HTTPAddr()); hport == "8080" || hport == "0" {
		t.Fatalf("demo web UI on %s, want a free port", th.HTTPAddr())
	}
	for _, want := range []string{
		"MQTT:        " + th.MQTTAddr() + "\n",
		"Web UI:      " + th.URL() + "/",
		"port 1883 was taken by another program, so MQTT moved to " + th.MQTTAddr(),
		"port 8080 was taken by another program, so the web UI and API moved to " + th.HTTPAddr(),
		"mosquitto_pub -h 127.0.0.1 -p " + port + " -V mqttv5",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	// The demo's own devices found the moved port too.
	waitFor(t, "a demo device connected", 20*time.Second, func() bool {
		code, out, _ := call(t, th.local, "GET", "http://candor/api/v1/devices", "", nil)
		list, _ := out["devices"].([]any)
		for _, d := range list {
			if m, _ := d.(map[string]any); code == 200 && m["connected"] == true {
				return true
			}
		}
		return false
	})
}

// Outside demo mode, and for an address the user chose, a taken port is
// the clear error it always was.
func TestTakenPortIsAnErrorUnlessDemoDefault(t *testing.T) {
	def := config.Default()
	porttest.Hold(t, def.MQTTAddr)
	porttest.Hold(t, def.HTTPAddr)
	tests := []struct {
		name string
		mod  func(*configT)
		flag string
	}{
		{"MQTT, not a demo", func(c *configT) { defaultAddrs(c); c.HTTPAddr = "127.0.0.1:0" }, "--mqtt-addr"},
		{"HTTP, not a demo", func(c *configT) { defaultAddrs(c); c.MQTTAddr = "127.0.0.1:0" }, "--http-addr"},
		{"MQTT chosen, demo", func(c *configT) {
			defaultAddrs(c)
			c.HTTPAddr, c.MQTTAddrSet, c.Demo = "127.0.0.1:0", true, true
		}, "--mqtt-addr"},
		{"HTTP chosen, demo", func(c *configT) {
			defaultAddrs(c)
			c.MQTTAddr, c.HTTPAddrSet, c.Demo = "127.0.0.1:0", true, true
		}, "--http-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := startWithBanner(t, tt.mod)
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("error = %v, want address in use naming %s", err, tt.flag)
			}
		})
	}
}
