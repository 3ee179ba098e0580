package hub

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/onboarding"
)

// movable says whether a demo hub may move addr to a free port: only the
// built-in default, and only when nobody chose it, because a user who
// named an address wants that one or a clear error.
func movable(cfg config.Config, addr, def string, chosen bool) bool {
	return cfg.Demo && !chosen && addr != "" && addr == def
}

// listenDemo listens on addr. If addr is movable and its port is taken
// (commonly by another MQTT broker on 1883), it listens on a free port of
// the same host instead and reports the move in h.moved for the banner.
func (h *Hub) listenDemo(what, addr string, canMove bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !canMove || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	host, port, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, err
	}
	h.moved = append(h.moved, fmt.Sprintf("port %s was taken by another program, so %s moved to %s", port, what, ln.Addr()))
	h.log.Warn("demo: default port taken, using a free one", "listener", what, "port", port, "addr", ln.Addr().String())
	return ln, nil
}

// mqttListenAddr is the plain MQTT address to give the broker ("" for
// off, which needs another MQTT listener). For a demo hub whose default
// port is taken it is a free port instead: the broker opens its own
// listeners, so the free port is found by listening on it here and
// handing over the address; another program could take the port in
// between, and then the start fails with the usual clear error.
func (h *Hub) mqttListenAddr() (string, error) {
	cfg := h.cfg
	if cfg.MQTTAddr == "" && cfg.MQTTTLSAddr == "" && cfg.WSAddr == "" {
		return "", errors.New("no MQTT listener: set --mqtt-addr, or --mqtt-tls-addr (with a certificate) or --ws-addr")
	}
	if !movable(cfg, cfg.MQTTAddr, config.Default().MQTTAddr, cfg.MQTTAddrSet) {
		return cfg.MQTTAddr, nil
	}
	ln, err := h.listenDemo("MQTT", cfg.MQTTAddr, true)
	if err != nil {
		return "", addrHint(fmt.Errorf("listen for MQTT on %s: %w", cfg.MQTTAddr, err), "--mqtt-addr")
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("hand MQTT address %s to the broker: %w", addr, err)
	}
	return addr, nil
}

// listenHTTP opens the web and API listener, moving a demo hub's default
// address when its port is taken.
func (h *Hub) listenHTTP() (net.Listener, error) {
	cfg := h.cfg
	ln, err := h.listenDemo("the web UI and API", cfg.HTTPAddr, movable(cfg, cfg.HTTPAddr, config.Default().HTTPAddr, cfg.HTTPAddrSet))
	if err != nil {
		return nil, addrHint(fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err), "--http-addr")
	}
	return ln, nil
}

func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

// demoBanner says where a demo listener moved and how to publish as a
// device of one's own, with the port actually in use.
func (h *Hub) demoBanner(out io.Writer) {
	for _, m := range h.moved {
		fmt.Fprintf(out, "\nNote: %s.\n", m)
	}
	addr, useTLS := h.deviceMQTT()
	if addr == "" {
		return
	}
	stream, payload := "temperature", []byte(`{"celsius": 21.5}`)
	if e, err := h.cat.Current("thermostat"); err == nil && len(e.Manifest.Streams) > 0 {
		stream, payload = e.Manifest.Streams[0].Name, e.Manifest.Streams[0].SamplePayload()
	}
	fmt.Fprintf(out, "\nAdd a device of your own; this prints its id, its secret and the line that publishes a test reading as it:\n")
	fmt.Fprintf(out, "    go run ./cmd/candor device add Kitchen --type thermostat --data %s\n", h.cfg.DataDir)
	fmt.Fprintf(out, "That line looks like this, with this hub's MQTT port:\n    %s\n",
		onboarding.MosquittoPub(addr, useTLS, h.caFile(), "DEVICE_ID", "SECRET", stream, payload))
}
