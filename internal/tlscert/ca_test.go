package tlscert

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type files struct{ caCert, caKey, cert, key string }

func newFiles(t *testing.T) files {
	dir := t.TempDir()
	return files{
		caCert: filepath.Join(dir, "ca.pem"),
		caKey:  filepath.Join(dir, "tls", "ca-key.pem"),
		cert:   filepath.Join(dir, "tls", "hub-cert.pem"),
		key:    filepath.Join(dir, "tls", "hub-key.pem"),
	}
}

func hosts(t *testing.T, names ...string) Hosts {
	t.Helper()
	var h Hosts
	for _, n := range names {
		if err := h.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCAIsCreatedOnceAndKeptPrivate(t *testing.T) {
	f := newFiles(t)
	ca, err := LoadOrCreateCA(f.caCert, f.caKey, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v, MaxPathLenZero %v", ca.Cert.IsCA, ca.Cert.MaxPathLenZero)
	}
	if m := mode(t, f.caKey); m != 0o600 {
		t.Errorf("CA key mode %v, want 0600", m)
	}
	if m := mode(t, filepath.Dir(f.caKey)); m != 0o700 {
		t.Errorf("CA key directory mode %v, want 0700", m)
	}
	onDisk, err := os.ReadFile(f.caCert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, ca.PEM()) {
		t.Error("ca.pem differs from CA.PEM()")
	}
	if bytes.Contains(onDisk, []byte("PRIVATE")) {
		t.Error("ca.pem holds a private key")
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	if got, want := strings.ReplaceAll(ca.Fingerprint(), ":", ""), strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}

	// A key restored from a backup with a loose mode is tightened.
	if err := os.Chmod(f.caKey, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(f.caCert, f.caKey, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Error("loading the CA again made a different one")
	}
	if m := mode(t, f.caKey); m != 0o600 {
		t.Errorf("CA key mode after load %v, want 0600", m)
	}
}

func TestIncompleteCAIsNotReplaced(t *testing.T) {
	for _, missing := range []string{"cert", "key"} {
		t.Run(missing, func(t *testing.T) {
			f := newFiles(t)
			if _, err := LoadOrCreateCA(f.caCert, f.caKey, ""); err != nil {
				t.Fatal(err)
			}
			gone := f.caCert
			if missing == "key" {
				gone = f.caKey
			}
			if err := os.Remove(gone); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateCA(f.caCert, f.caKey, "")
			if !errors.Is(err, ErrCAIncomplete) || !strings.Contains(err.Error(), gone) {
				t.Fatalf("error = %v, want ErrCAIncomplete naming %s", err, gone)
			}
			if _, err := os.Stat(gone); err == nil {
				t.Errorf("%s was recreated", gone)
			}
		})
	}
}

func TestServerCertCoversHostsAndVerifies(t *testing.T) {
	f := newFiles(t)
	ca, err := LoadOrCreateCA(f.caCert, f.caKey, "")
	if err != nil {
		t.Fatal(err)
	}
	h := hosts(t, "hub", "hub.local", "localhost", "127.0.0.1", "::1", "192.0.2.7")
	now := time.Now()
	cert, reissued, err := ca.ServerCert(f.cert, f.key, h, now)
	if err != nil {
		t.Fatal(err)
	}
	if !reissued {
		t.Error("first call did not report issuing")
	}
	if m := mode(t, f.key); m != 0o600 {
		t.Errorf("server key mode %v, want 0600", m)
	}
	if miss := h.MissingFrom(cert.Leaf); len(miss) > 0 {
		t.Errorf("certificate lacks %v", miss)
	}
	for _, name := range []string{"hub.local", "192.0.2.7", "::1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "elsewhere.example", Roots: ca.Pool()}); err == nil {
		t.Error("certificate verifies for a name it was not given")
	}

	// Nothing changed: the same certificate is served.
	same, reissued, err := ca.ServerCert(f.cert, f.key, h, now)
	if err != nil {
		t.Fatal(err)
	}
	if reissued || !same.Leaf.Equal(cert.Leaf) {
		t.Error("an up-to-date certificate was reissued")
	}
}

func TestServerCertReissued(t *testing.T) {
	f := newFiles(t)
	ca, err := LoadOrCreateCA(f.caCert, f.caKey, "")
	if err != nil {
		t.Fatal(err)
	}
	h := hosts(t, "hub", "127.0.0.1")
	now := time.Now()
	first, _, err := ca.ServerCert(f.cert, f.key, h, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		hosts Hosts
		now   time.Time
	}{
		{"a new address", hosts(t, "hub", "127.0.0.1", "198.51.100.4"), now},
		{"a new name", hosts(t, "hub", "hub.example", "127.0.0.1"), now},
		{"within 30 days of expiry", h, first.Leaf.NotAfter.Add(-29 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, reissued, err := ca.ServerCert(f.cert, f.key, tt.hosts, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if !reissued || cert.Leaf.Equal(first.Leaf) {
				t.Fatal("not reissued")
			}
			if miss := tt.hosts.MissingFrom(cert.Leaf); len(miss) > 0 {
				t.Errorf("reissued certificate lacks %v", miss)
			}
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: tt.now}); err != nil {
				t.Errorf("reissued certificate does not verify: %v", err)
			}
		})
	}

	t.Run("signed by another authority", func(t *testing.T) {
		g := newFiles(t)
		other, err := LoadOrCreateCA(g.caCert, g.caKey, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := other.ServerCert(f.cert, f.key, h, now); err != nil {
			t.Fatal(err)
		}
		cert, reissued, err := ca.ServerCert(f.cert, f.key, h, now)
		if err != nil {
			t.Fatal(err)
		}
		if !reissued {
			t.Fatal("a certificate of another authority was kept")
		}
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err != nil {
			t.Errorf("reissued certificate does not verify: %v", err)
		}
	})
}

// A real TLS handshake: a client that trusts only the CA accepts the
// server certificate for an address it covers and refuses it for one it
// does not.
func TestHandshakeAgainstCA(t *testing.T) {
	f := newFiles(t)
	ca, err := LoadOrCreateCA(f.caCert, f.caKey, "")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.ServerCert(f.cert, f.key, hosts(t, "localhost", "127.0.0.1"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	for _, tc := range []struct {
		serverName string
		ok         bool
	}{{"127.0.0.1", true}, {"localhost", true}, {"other.example", false}} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: tc.serverName})
		if err == nil {
			_ = c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("handshake for %s: err %v, want ok=%v", tc.serverName, err, tc.ok)
		}
	}
}

func TestLocalHosts(t *testing.T) {
	h, err := LocalHosts("hub.example", "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"localhost", "127.0.0.1", "::1", "hub.example", "203.0.113.9"}
	if name, err := os.Hostname(); err == nil && CheckName(name) == nil {
		short, _, _ := strings.Cut(strings.ToLower(name), ".")
		want = append(want, strings.ToLower(name), short+".local")
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			want = append(want, n.IP.String())
		}
	}
	got := map[string]bool{}
	for _, n := range h.DNSNames {
		got[n] = true
	}
	for _, ip := range h.IPs {
		got[ip.String()] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("LocalHosts lacks %s (has %v %v)", w, h.DNSNames, h.IPs)
		}
	}
	if _, err := LocalHosts("bad_name"); !errors.Is(err, ErrBadName) {
		t.Errorf("an underscore name: error %v, want ErrBadName", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"hub", "hub.local", "a-b.example.org", strings.Repeat("a", 63)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*.example", "-hub", "hub-", "a..b", "hub name", strings.Repeat("a", 64), "ünï"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}
