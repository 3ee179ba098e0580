package hub

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/signkey"
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
		Store:          h.st,
		Manifests:      h.cat,
		Log:            h.alog,
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
	h.assess = assess.New(ac)
	return nil
}

// startAudits runs the security audit now and then on a schedule; the
// metrics probe needs the HTTP listener, so it starts after it.
func (h *Hub) startAudits(context.Context) error {
	h.assess.SetMetricsURL(h.ownURL("/metrics"))
	h.audits.run(func(ctx context.Context) { h.assess.Loop(ctx, h.cfg.AuditInterval) })
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
