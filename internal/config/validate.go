package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/tlscert"
)

// SettingError is a problem with one setting's value. Its message starts
// with where the value came from, as the user wrote it, for example
// `CANDOR_MQTT_ADDR: "1883x" is not host:port` or
// `candor.json:4: batch_max_rows: must be between 1 and 100000 (got 0)`.
type SettingError struct {
	// Setting is the flag name without dashes, such as "mqtt-addr".
	Setting string
	// Source is the flag ("--mqtt-addr"), environment variable
	// ("CANDOR_MQTT_ADDR"), file position and key
	// ("candor.json:4: mqtt_addr") or "--mqtt-addr (default)".
	Source string
	Err    error
}

func (e *SettingError) Error() string { return e.Source + ": " + e.Err.Error() }

func (e *SettingError) Unwrap() error { return e.Err }

// validate checks each value and the rules between settings. src maps a
// setting's name to the label of its source, for error messages.
func (c *Config) validate(src map[string]string) error {
	var errs []error
	fail := func(name string, err error) {
		errs = append(errs, &SettingError{Setting: name, Source: src[name], Err: err})
	}
	for i := range settings {
		s := &settings[i]
		if s.check == nil {
			continue
		}
		if err := s.check(value(s.field(c))); err != nil {
			fail(s.name, err)
		}
	}

	// A certificate without its key (or the reverse) is a half-finished
	// edit; guessing which one was meant would hide it.
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		fail("tls-cert", errors.New("a certificate needs its key: set --tls-key (CANDOR_TLS_KEY) too"))
	case c.TLSKey != "" && c.TLSCert == "":
		fail("tls-key", errors.New("a key needs its certificate: set --tls-cert (CANDOR_TLS_CERT) too"))
	}
	if c.TLSSelfSigned && c.TLSCert != "" {
		fail("tls-self-signed", fmt.Errorf("cannot be combined with a certificate file (set by %s); choose one", src["tls-cert"]))
	}
	if c.MQTTTLSAddr != "" && c.TLSCert == "" && !c.TLSSelfSigned {
		fail("mqtt-tls-addr", errors.New("the TLS listener needs a certificate: set --tls-cert and --tls-key, or --tls-self-signed"))
	}
	if c.TLSNames != "" && !c.TLSSelfSigned {
		fail("tls-names", errors.New("names are added only to the certificate --tls-self-signed makes; a certificate from --tls-cert carries its own"))
	}
	if c.NATS != "" && c.Store == "" {
		fail("nats", errors.New("several hub nodes must share one database: give --store postgres://… too (the embedded SQLite file belongs to one node)"))
	}
	if c.MQTTAddr == "" && c.MQTTTLSAddr == "" && c.WSAddr == "" {
		fail("mqtt-addr", errors.New("no MQTT listener is left, so no device could connect: give an address here, or turn on --mqtt-tls-addr (with a certificate) or --ws-addr"))
	}

	// Two listeners on one address would fail at start with a bare
	// "address already in use"; say which settings collide instead.
	seen := map[string]string{}
	for _, l := range []struct{ name, addr string }{
		{"mqtt-addr", c.MQTTAddr}, {"mqtt-tls-addr", c.MQTTTLSAddr},
		{"ws-addr", c.WSAddr}, {"http-addr", c.HTTPAddr},
	} {
		_, port, err := net.SplitHostPort(l.addr)
		if err != nil || port == "0" {
			continue // empty (off), already reported, or an ephemeral port
		}
		if other, ok := seen[l.addr]; ok {
			fail(l.name, fmt.Errorf("%q is already the address of %s", l.addr, src[other]))
			continue
		}
		seen[l.addr] = l.name
	}
	return errors.Join(errs...)
}

// value dereferences a field pointer from setting.field.
func value(p any) any {
	switch p := p.(type) {
	case *string:
		return *p
	case *bool:
		return *p
	case *int:
		return *p
	case *time.Duration:
		return *p
	}
	return nil
}

func nonEmpty(v any) error {
	if s, _ := v.(string); s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// address accepts host:port with a numeric port; the host may be empty
// (all interfaces) and the port 0 (any free port, for tests). Optional
// addresses may be empty to turn their listener off.
func address(required bool) func(any) error {
	return func(v any) error {
		s, _ := v.(string)
		if s == "" {
			if required {
				return errors.New("must not be empty; give host:port, such as 127.0.0.1:1883")
			}
			return nil
		}
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			if _, nerr := strconv.ParseUint(s, 10, 16); nerr == nil {
				return fmt.Errorf("%q is not host:port; for all interfaces write \":%s\", for this machine only \"127.0.0.1:%s\"", s, s, s)
			}
			return fmt.Errorf("%q is not host:port", s)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || (len(port) > 1 && port[0] == '0') {
			return fmt.Errorf("%q is not host:port: port %q is not a number from 0 to 65535", s, port)
		}
		return nil
	}
}

// hostList accepts comma-separated host names and IP addresses, as
// --tls-names takes them.
func hostList(v any) error {
	s, _ := v.(string)
	for n := range strings.SplitSeq(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" || net.ParseIP(n) != nil {
			continue
		}
		if err := tlscert.CheckName(strings.TrimSuffix(n, ".")); err != nil {
			return fmt.Errorf("%q is not a host name or IP address (names are letters, digits, hyphens and dots; no wildcards)", n)
		}
	}
	return nil
}

func oneOf(allowed ...string) func(any) error {
	return func(v any) error {
		s, _ := v.(string)
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
	}
}

func intRange(lo, hi int) func(any) error {
	return func(v any) error {
		n, _ := v.(int)
		if n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d (got %d)", lo, hi, n)
		}
		return nil
	}
}

func durationRange(lo, hi time.Duration) func(any) error {
	return func(v any) error {
		d, _ := v.(time.Duration)
		if d < lo || d > hi {
			return fmt.Errorf("must be between %v and %v (got %v)", lo, hi, d)
		}
		return nil
	}
}

// severityActions checks a list such as
// "info=notify,warning=rate_limit,critical=quarantine".
func severityActions(v any) error {
	s, _ := v.(string)
	for item := range strings.SplitSeq(s, ",") {
		sev, act, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("%q is not severity=action, such as critical=quarantine", item)
		}
		if err := oneOf("info", "warning", "critical")(sev); err != nil {
			return fmt.Errorf("severity %w", err)
		}
		if err := oneOf("notify", "rate_limit", "quarantine", "revoke")(act); err != nil {
			return fmt.Errorf("action %w", err)
		}
	}
	return nil
}

// webhookURL accepts https URLs, and http to a loopback address for local
// receivers.
func webhookURL(v any) error {
	s, _ := v.(string)
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL, such as https://alerts.example.org/candor", s)
	}
	if u.Scheme == "https" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && (u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%q must use https (http only to this machine)", s)
}

// AckWindow reads an --ack value: 0 for "commit", the window for
// "durable-within=<duration>".
func AckWindow(mode string) (time.Duration, error) {
	if mode == "" || mode == "commit" {
		return 0, nil
	}
	v, ok := strings.CutPrefix(mode, "durable-within=")
	if !ok {
		return 0, fmt.Errorf("%q is not commit or durable-within=<duration>", mode)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", mode, err)
	}
	if d < time.Millisecond || d > 10*time.Second {
		return 0, fmt.Errorf("%q: the window must be between 1ms and 10s", mode)
	}
	return d, nil
}

func ackMode(v any) error {
	s, _ := v.(string)
	_, err := AckWindow(s)
	return err
}
