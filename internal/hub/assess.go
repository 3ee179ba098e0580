package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/tlscert"
)

// reportKeyName is the key that signs each version of the privacy impact
// assessments and the conformance report, in the data directory's assess/.
const reportKeyName = "report-signing-key"

// openAssess builds the assessments (security audit, privacy impact
// assessments, conformance report) the API and the pages serve.
func (h *Hub) openAssess(context.Context) error {
	cfg := h.cfg
	listeners := []assess.Listener{
		{Name: "MQTT", Flag: "--mqtt-addr", Addr: cfg.MQTTAddr},
		{Name: "MQTT over TLS", Flag: "--mqtt-tls-addr", Addr: cfg.MQTTTLSAddr, TLS: true},
		{Name: "MQTT over WebSocket", Flag: "--ws-addr", Addr: cfg.WSAddr, TLS: h.tls != nil},
		{Name: "HTTP", Flag: "--http-addr", Addr: cfg.HTTPAddr, TLS: h.tls != nil},
	}
	key, err := signkey.LoadOrCreate(filepath.Join(cfg.DataDir, "assess"), reportKeyName)
	if err != nil {
		return fmt.Errorf("report signing key: %w", err)
	}
	ac := assess.Config{
		Consent:        h.consent,
		Key:            key,
		Live:           liveTests{h},
		Support:        supportPeriods{h},
		Store:          h.st,
		Manifests:      h.cat,
		Log:            h.rec,
		Presence:       h.br,
		Logger:         h.log.With("component", "assess"),
		DataDir:        cfg.DataDir,
		Listeners:      listeners,
		RotationPeriod: cfg.CredentialRotation,
		LogSize:        h.alog.Size,
		Client:         h.probeClient(),
	}
	if leaf := h.leafCertificate(); leaf != nil {
		ac.Certificate = leaf
		ac.Hosts = h.deviceHosts()
	}
	if h.advisories != nil {
		ac.Advisories = openAdvisories{h}
	}
	ac.Quarantine = quarantined{h}
	ac.SecondFA = h.id
	ac.AdminSecondFactorRequired = h.cfg.RequireSecondFactorForAdmin
	ac.MonitorKeep = h.cfg.MonitorKeep
	ac.Feeds, ac.Updates = staleFeeds{h}, expiredMetadata{h}
	h.assess = assess.New(ac)
	return nil
}

// startAudits runs the security audit now and then on a schedule; the
// metrics probe needs the HTTP listener, so it starts after it.
func (h *Hub) startAudits(context.Context) error {
	h.assess.SetMetricsURL(h.ownURL("/metrics"))
	h.audits.run(h.onLeader(func(ctx context.Context) { h.assess.Loop(ctx, h.cfg.AuditInterval) }))
	return nil
}

// ownURL is a path on the hub's own HTTP listener, reached over loopback
// when it listens on every interface.
func (h *Hub) ownURL(path string) string {
	host, port, err := net.SplitHostPort(h.HTTPAddr())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if h.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + path
}

// probeClient fetches from the hub's own listener without credentials.
// It checks whether an endpoint asks for a login, not who serves it, so
// it does not verify the certificate (the hub dials itself).
func (h *Hub) probeClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
			Proxy:           nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// leafCertificate is the certificate the hub serves, or nil without TLS.
func (h *Hub) leafCertificate() *x509.Certificate {
	if h.tls == nil || len(h.tls.Certificates) == 0 {
		return nil
	}
	c := h.tls.Certificates[0]
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// deviceHosts are the names and addresses devices may use to reach the
// hub: this machine's, the operator's --tls-names and the listen hosts,
// as the hub's own certificate authority would cover them.
func (h *Hub) deviceHosts() tlscert.Hosts {
	extra := h.cfg.TLSNameList()
	for _, a := range []string{h.cfg.MQTTAddr, h.cfg.MQTTTLSAddr, h.cfg.WSAddr, h.cfg.HTTPAddr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() || ip == nil && tlscert.CheckName(host) == nil {
			extra = append(extra, host)
		}
	}
	hosts, err := tlscert.LocalHosts(extra...)
	if err != nil {
		h.log.Warn("names devices use, for the audit", "err", err)
		name, _ := os.Hostname()
		_ = hosts.Add(name)
	}
	return hosts
}

// liveTests are the conformance report's tests against the hub's own
// listeners, over loopback.
type liveTests struct{ h *Hub }

// knownDefaults are pairs from the shipped list of default credentials
// (credential.IsKnownDefault confirms each is on it before it is tried):
// the first of Mirai's list and the commonest platform default.
var knownDefaults = [][2]string{{"root", "xc3511"}, {"admin", "admin"}}

// DefaultCredentials tries known default credentials on the hub's own
// MQTT listener (plain, else TLS) and on its HTTP login, and reports
// whether each was refused.
func (lt liveTests) DefaultCredentials(ctx context.Context) []assess.LiveResult {
	var out []assess.LiveResult
	for _, pair := range knownDefaults {
		user, pass := pair[0], pair[1]
		if !credential.IsKnownDefault(user, pass) {
			continue
		}
		if addr, useTLS := lt.mqttAddr(); addr != "" {
			code, err := mqttConnect(ctx, addr, useTLS, user, pass)
			r := assess.LiveResult{Name: "MQTT login with a known default credential is refused"}
			switch {
			case err != nil:
				r.Detail = fmt.Sprintf("%s/%s on MQTT %s: no answer (%v)", user, strings.Repeat("*", len(pass)), addr, err)
			case code == 0:
				r.Detail = fmt.Sprintf("%s/%s on MQTT %s was accepted", user, strings.Repeat("*", len(pass)), addr)
			default:
				r.Passed, r.Detail = true, fmt.Sprintf("%s/%s on MQTT %s refused with CONNACK code %d", user, strings.Repeat("*", len(pass)), addr, code)
			}
			out = append(out, r)
		}
		status, err := lt.httpLogin(ctx, user, pass)
		r := assess.LiveResult{Name: "HTTP login with a known default credential is refused"}
		switch {
		case err != nil:
			r.Detail = fmt.Sprintf("%s/%s on %s: no answer (%v)", user, strings.Repeat("*", len(pass)), lt.h.ownURL("/api/v1/login"), err)
		case status == http.StatusOK:
			r.Detail = fmt.Sprintf("%s/%s on %s was accepted", user, strings.Repeat("*", len(pass)), lt.h.ownURL("/api/v1/login"))
		default:
			r.Passed, r.Detail = true, fmt.Sprintf("%s/%s on HTTP login refused with status %d", user, strings.Repeat("*", len(pass)), status)
		}
		out = append(out, r)
	}
	return out
}

// mqttAddr is the hub's own MQTT listener reached over loopback.
func (lt liveTests) mqttAddr() (string, bool) {
	addr, useTLS := lt.h.br.Addr("tcp"), false
	if addr == "" {
		addr, useTLS = lt.h.br.Addr("tls"), true
	}
	if addr == "" {
		return "", false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), useTLS
}

// mqttConnect sends an MQTT 3.1.1 CONNECT with the credentials and
// returns the CONNACK return code (0 is accepted). It is written out by
// hand so the test depends on no client library's idea of the protocol.
func mqttConnect(ctx context.Context, addr string, useTLS bool, user, pass string) (byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if useTLS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}) //nolint:gosec // the hub dials itself to test logins, not identity
		if err := tc.HandshakeContext(ctx); err != nil {
			return 0, err
		}
		conn = tc
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 4, 0xC2, 0, 30) // level 3.1.1; username, password, clean session; keep-alive 30 s
	body = append(body, str(user)...)   // client id: the username, inside its own namespace
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	pkt := append([]byte{0x10}, remainingLength(len(body))...)
	if _, err := conn.Write(append(pkt, body...)); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return 0, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 {
		return 0, fmt.Errorf("answer is not a CONNACK (0x%02x)", ack[0])
	}
	return ack[3], nil
}

func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// httpLogin posts the credentials to the hub's own login endpoint.
func (lt liveTests) httpLogin(ctx context.Context, user, pass string) (int, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lt.h.ownURL("/api/v1/login"), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := lt.h.probeClient().Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// supportPeriods reads a device's end of security support from the
// manifest in force of its type (candor:support.securityUpdatesUntil).
type supportPeriods struct{ h *Hub }

func (s supportPeriods) SupportEnded(_ context.Context, d store.Device) (time.Time, bool, bool, error) {
	m := s.h.manifestInForce(d.Type)
	if m == nil || m.Support.SecurityUpdatesUntil.IsZero() {
		return time.Time{}, false, false, nil
	}
	until := m.Support.SecurityUpdatesUntil
	return until, time.Now().After(until), true, nil
}

// openAdvisories lists the advisories matched to a device (package
// advisories), each once.
type openAdvisories struct{ h *Hub }

func (o openAdvisories) OpenAdvisories(ctx context.Context, d store.Device) ([]string, error) {
	fs, err := o.h.advisories.DeviceFindings(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, f := range fs {
		if f.Advisory != nil && !slices.Contains(ids, f.Advisory.ID) {
			ids = append(ids, f.Advisory.ID)
		}
	}
	return ids, nil
}

// quarantined tells the audit which devices the abuse monitor holds back,
// from the holds it keeps in the store (they survive restarts).
type quarantined struct{ h *Hub }

func (q quarantined) Quarantined(ctx context.Context) ([]assess.Quarantine, error) {
	holds, err := q.h.st.Quarantines(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]assess.Quarantine, 0, len(holds))
	for _, hd := range holds {
		aq := assess.Quarantine{DeviceID: hd.DeviceID, Reason: hd.Kind, Stream: hd.Stream, Severity: hd.Severity,
			Observed: hd.Observed, Limit: hd.Limit, RateLimited: hd.RateLimited, Since: hd.Since, Advisory: hd.Advisory}
		if hd.Kind == string(monitor.KindAdvisory) {
			// A hold until fixed: the advisory, not a stream (older
			// holds keep it in Stream only).
			aq.Stream = ""
			if aq.Advisory == "" {
				aq.Advisory = hd.Stream
			}
		}
		out = append(out, aq)
	}
	return out, nil
}
