package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity periods. The authority lasts long because devices pin it and
// replacing it means visiting every device; the server certificate stays
// under the 398 days some clients accept, and is reissued at start once
// it is within RenewBefore of its end.
const (
	caValidity     = 20 * 365 * 24 * time.Hour
	serverValidity = 397 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
)

// ErrCAIncomplete means one of the authority's two files is missing.
// Making a new authority then would silently cut off every device that
// pinned the old one, so the operator has to choose.
var ErrCAIncomplete = errors.New("local certificate authority is incomplete")

// CA is the hub's own certificate authority.
type CA struct {
	// Cert is the authority's certificate, the one devices verify with.
	Cert *x509.Certificate
	key  crypto.Signer
}

// LoadOrCreateCA loads the authority from certFile and keyFile, or
// creates both (ECDSA P-256) when neither exists. The key file is written
// with mode 0600 and its directory with 0700; the certificate is public.
func LoadOrCreateCA(certFile, keyFile, name string) (*CA, error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return createCA(certFile, keyFile, name)
	case errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s is missing but its key %s exists; restore it, or delete the key to make a new authority (devices then need the new certificate)", ErrCAIncomplete, certFile, keyFile)
	case errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: the key %s of %s is missing; restore it, or delete %s to make a new authority (devices then need the new certificate)", ErrCAIncomplete, keyFile, certFile, certFile)
	}
	der, err := readPEM(certFile, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", certFile, ErrBadFile, err)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	// A key copied in from a backup may have come back readable by all.
	if err := os.Chmod(keyFile, 0o600); err != nil {
		return nil, fmt.Errorf("restrict CA key %s: %w", keyFile, err)
	}
	if !publicKeyEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: %s does not belong to %s", ErrBadFile, keyFile, certFile)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrBadFile, certFile)
	}
	return &CA{Cert: cert, key: key}, nil
}

func createCA(certFile, keyFile, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: strings.TrimSpace("Candor hub local CA " + name), Organization: []string{"Candor hub"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs server certificates only, never another authority.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	// The key first: a certificate without its key would be reported as
	// an incomplete authority at the next start.
	if err := writeKey(keyFile, key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(certFile), err)
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

// PEM is the authority's certificate in PEM form, what devices install.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Fingerprint is the SHA-256 of the authority's certificate as
// colon-separated upper-case hex, the form `openssl x509 -noout
// -fingerprint -sha256` prints, so a person can compare the two.
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// Pool is a certificate pool holding only the authority, for clients.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ServerCert returns the server certificate in certFile and keyFile,
// first issuing a new one (with a new key) when it is missing, was not
// signed by this authority, lacks a name or address of hosts, or expires
// within RenewBefore of now. reissued says whether it did.
func (ca *CA) ServerCert(certFile, keyFile string, hosts Hosts, now time.Time) (cert tls.Certificate, reissued bool, err error) {
	if cert, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && ca.current(cert, hosts, now) {
		return cert, false, nil
	}
	if err := ca.issue(certFile, keyFile, hosts, now); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("load new server certificate: %w", err)
	}
	return cert, true, nil
}

// current says whether cert can go on serving hosts.
func (ca *CA) current(cert tls.Certificate, hosts Hosts, now time.Time) bool {
	leaf := cert.Leaf
	if leaf == nil {
		return false
	}
	if now.Add(RenewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return false
	}
	if len(hosts.MissingFrom(leaf)) > 0 {
		return false
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

func (ca *CA) issue(certFile, keyFile string, hosts Hosts, now time.Time) error {
	if len(hosts.DNSNames) == 0 && len(hosts.IPs) == 0 {
		return errors.New("issue server certificate: no host name or address to cover")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate server key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	notAfter := now.Add(serverValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	cn := "Candor hub"
	if len(hosts.DNSNames) > 0 {
		cn = hosts.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Candor hub"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     hosts.DNSNames,
		IPAddresses:  hosts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("issue server certificate: %w", err)
	}
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func readKey(path string) (crypto.Signer, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrBadFile, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %w: not a signing key", path, ErrBadFile)
	}
	return s, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}
