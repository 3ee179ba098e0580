package hub

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/tlscert"
)

// CAName is the hub's certificate authority certificate inside the data
// directory (with --tls-self-signed): public, what devices verify with.
const CAName = "ca.pem"

// Files of the generated TLS material under the data directory's tls/,
// which only the hub's user can read.
const (
	caKeyName      = "ca-key.pem"
	serverCertName = "hub-cert.pem"
	serverKeyName  = "hub-key.pem"
)

// hstsHeader asks browsers to come back over HTTPS only. It covers every
// port of the host name, so it is kept to half a year and without
// includeSubDomains; browsers ignore it on a connection whose certificate
// they did not accept (RFC 6797, section 8.1), so a hub whose authority a
// browser does not trust yet is not locked out by it.
const hstsHeader = "max-age=15552000"

// tlsSetup returns the hub's server TLS config: the operator's
// certificate, or with --tls-self-signed one from the hub's own
// authority (also returned) that covers this machine's names and
// addresses, reissued when they changed or it nears expiry.
func tlsSetup(cfg config.Config, log *slog.Logger) (*tls.Config, *tlscert.CA, error) {
	switch {
	case cfg.TLSCert != "":
		c, err := tlscert.Load(cfg.TLSCert, cfg.TLSKey)
		return c, nil, err
	case !cfg.TLSSelfSigned:
		return nil, nil, nil
	}
	dir := filepath.Join(cfg.DataDir, "tls")
	hostname, _ := os.Hostname()
	ca, err := tlscert.LoadOrCreateCA(filepath.Join(cfg.DataDir, CAName), filepath.Join(dir, caKeyName), hostname)
	if err != nil {
		return nil, nil, fmt.Errorf("local certificate authority: %w", err)
	}
	extra := cfg.TLSNameList()
	for _, a := range []string{cfg.MQTTAddr, cfg.MQTTTLSAddr, cfg.WSAddr, cfg.HTTPAddr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			continue
		}
		// An address for all interfaces is covered by the interfaces'
		// own; a listen name no certificate can carry is left out.
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() || ip == nil && tlscert.CheckName(host) == nil {
			extra = append(extra, host)
		}
	}
	hosts, err := tlscert.LocalHosts(extra...)
	if err != nil {
		return nil, nil, fmt.Errorf("names for the TLS certificate: %w", err)
	}
	cert, reissued, err := ca.ServerCert(filepath.Join(dir, serverCertName), filepath.Join(dir, serverKeyName), hosts, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if reissued {
		ips := make([]string, len(hosts.IPs))
		for i, ip := range hosts.IPs {
			ips[i] = ip.String()
		}
		log.Info("TLS certificate issued by the hub's authority", "names", strings.Join(hosts.DNSNames, ","),
			"addresses", strings.Join(ips, ","), "expires", cert.Leaf.NotAfter.Format(time.DateOnly))
	}
	return tlscert.ServerConfig(cert), ca, nil
}

// caFile is the absolute path of the authority's certificate, for
// instructions run on this machine ("" without a local authority).
func (h *Hub) caFile() string {
	if h.ca == nil {
		return ""
	}
	p := filepath.Join(h.cfg.DataDir, CAName)
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// CAFingerprint is the SHA-256 fingerprint of the hub's certificate
// authority ("" without one).
func (h *Hub) CAFingerprint() string {
	if h.ca == nil {
		return ""
	}
	return h.ca.Fingerprint()
}

// MQTTTLSAddr is the bound MQTT over TLS address ("" when off).
func (h *Hub) MQTTTLSAddr() string { return h.br.Addr("tls") }

// deviceMQTT is the listener device instructions point at: MQTT over TLS
// when it is on, else plain MQTT.
func (h *Hub) deviceMQTT() (addr string, useTLS bool) {
	if a := h.br.Addr("tls"); a != "" {
		return a, true
	}
	return h.br.Addr("tcp"), false
}

// withTLSRoutes serves the authority's certificate at /ca.pem (it is
// public: devices and people fetch it, then compare its fingerprint with
// the one the hub shows) and marks HTTPS responses with HSTS.
func (h *Hub) withTLSRoutes(mux *http.ServeMux) http.Handler {
	if h.ca != nil {
		pemBytes := h.ca.PEM()
		mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Content-Disposition", `attachment; filename="candor-ca.pem"`)
			http.ServeContent(w, r, "ca.pem", h.ca.Cert.NotBefore, bytes.NewReader(pemBytes))
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", hstsHeader)
		}
		mux.ServeHTTP(w, r)
	})
}

// demoBroker is how the demo's simulated devices reach the broker: plain
// MQTT when it is on, else MQTT over TLS, verifying the hub as a device
// would.
func (h *Hub) demoBroker() (string, *tls.Config, error) {
	if a := h.br.Addr("tcp"); a != "" {
		return a, nil, nil
	}
	a := h.br.Addr("tls")
	if a == "" {
		return "", nil, errors.New("the simulated devices need plain MQTT (--mqtt-addr) or MQTT over TLS (--mqtt-tls-addr)")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", nil, fmt.Errorf("MQTT TLS address %q: %w", a, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if h.ca != nil {
		c.RootCAs = h.ca.Pool()
	} else {
		// An operator's certificate may not name a loopback address, so
		// the simulator trusts exactly the certificate this hub serves.
		own := h.tls.Certificates[0].Certificate[0]
		c.InsecureSkipVerify = true
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], own) {
				return errors.New("the MQTT TLS listener did not present the hub's certificate")
			}
			return nil
		}
	}
	return "tls://" + net.JoinHostPort(host, port), c, nil
}

// caBanner tells the operator where devices get the authority's
// certificate and what its fingerprint is, to compare with what a device
// or a browser shows.
func (h *Hub) caBanner(out io.Writer) {
	if h.ca == nil {
		return
	}
	fmt.Fprintf(out, "  TLS CA:      %s (also at %s/ca.pem); devices verify the hub with it\n", filepath.Join(h.cfg.DataDir, CAName), h.URL())
	fmt.Fprintf(out, "  CA SHA-256:  %s\n", h.ca.Fingerprint())
}
