// Package tlscert loads the hub's TLS certificate or, when asked, makes
// one from a small certificate authority of the hub's own, kept in the
// data directory, so TLS is one flag away even for a household without a
// certificate authority (clause 2C: secure communication available by
// default, not as an expert-only option).
//
// Devices on the LAN verify the hub against that authority's certificate
// (ca.pem), which they can pin: the authority stays the same for the life
// of the data directory while the server certificate it signs is
// reissued whenever the host's names or addresses change or it nears its
// expiry. The authority's private key never leaves the data directory.
package tlscert

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Load returns a server TLS config for the given PEM files.
func Load(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return ServerConfig(cert), nil
}

// ServerConfig is the hub's server TLS config for cert.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// writePEM replaces path atomically, so a crash leaves the old file or
// the new one, never half of one; mode applies from the first byte.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover would keep its old mode
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = errors.Join(pem.Encode(f, &pem.Block{Type: typ, Bytes: der}), f.Sync(), f.Close())
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readPEM returns the DER bytes of the first PEM block of type typ in
// path.
func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: %w: no %s block", path, ErrBadFile, typ)
		}
		if blk.Type == typ {
			return blk.Bytes, nil
		}
	}
}

// ErrBadFile is returned for a certificate or key file that exists but
// cannot be used.
var ErrBadFile = errors.New("unusable certificate or key file")
