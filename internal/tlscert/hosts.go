package tlscert

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
)

// Hosts are the names and addresses a server certificate covers.
type Hosts struct {
	DNSNames []string
	IPs      []net.IP
}

// Add adds an IP address or a DNS name, once. It refuses what is
// neither.
func (h *Hosts) Add(s string) error {
	if ip := net.ParseIP(s); ip != nil {
		if !slices.ContainsFunc(h.IPs, ip.Equal) {
			h.IPs = append(h.IPs, ip)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if err := CheckName(name); err != nil {
		return err
	}
	if !slices.Contains(h.DNSNames, name) {
		h.DNSNames = append(h.DNSNames, name)
	}
	return nil
}

// ErrBadName is returned for a host name a certificate cannot carry.
var ErrBadName = errors.New("not an IP address or DNS name")

// CheckName accepts a DNS host name: dot-separated labels of letters,
// digits and hyphens, each 1 to 63 long and not starting or ending with a
// hyphen, at most 253 in all. Wildcards are refused: the hub serves only
// itself.
func CheckName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q: %w", name, ErrBadName)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: %w", name, ErrBadName)
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%q: %w", name, ErrBadName)
			}
		}
	}
	return nil
}

// MissingFrom lists the names and addresses of h that cert does not
// cover.
func (h Hosts) MissingFrom(cert *x509.Certificate) []string {
	var out []string
	for _, n := range h.DNSNames {
		if !slices.ContainsFunc(cert.DNSNames, func(c string) bool { return strings.EqualFold(c, n) }) {
			out = append(out, n)
		}
	}
	for _, ip := range h.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			out = append(out, ip.String())
		}
	}
	return out
}

// LocalHosts are the names and addresses a device may use to reach this
// machine: its host name and the same name under .local (mDNS, as
// Avahi and Bonjour announce it), localhost, every address of its
// network interfaces (loopback included), and extra, which holds the
// operator's additions and the listen addresses' hosts.
func LocalHosts(extra ...string) (Hosts, error) {
	var h Hosts
	if name, err := os.Hostname(); err == nil {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		// A host name a certificate cannot carry is left out rather than
		// stopping the hub: its addresses still work.
		if h.Add(name) == nil {
			short, _, _ := strings.Cut(name, ".")
			_ = h.Add(short + ".local")
		}
	}
	_ = h.Add("localhost")
	_ = h.Add("127.0.0.1")
	_ = h.Add("::1")
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return Hosts{}, fmt.Errorf("list network interface addresses: %w", err)
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			ips = append(ips, n.IP)
		}
	}
	// A stable order keeps the certificate the same from run to run.
	slices.SortFunc(ips, func(a, b net.IP) int { return bytes.Compare(a.To16(), b.To16()) })
	for _, ip := range ips {
		_ = h.Add(ip.String())
	}
	for _, e := range extra {
		if err := h.Add(e); err != nil {
			return Hosts{}, err
		}
	}
	return h, nil
}
