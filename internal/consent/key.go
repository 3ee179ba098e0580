package consent

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Key files in the hub's data directory.
const (
	// KeyFile holds the receipt signing key: PKCS #8 PEM, mode 0600.
	KeyFile = "consent-signing-key.pem"
	// PublicKeyFile holds its public half: PKIX PEM, mode 0644, to hand
	// to anyone who wants to verify receipts (openssl reads both).
	PublicKeyFile = "consent-signing-key.pub.pem"
)

// KeyID names a public key in receipts: "ed25519:" and the first 8 bytes
// of the SHA-256 of the key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// LoadOrCreateKey loads the signing key from dir, creating the key and
// public key files when there is none yet (and the public key file when
// only it is missing).
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	key, err := LoadKey(dir)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = CreateKey(dir)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it between our two calls.
			key, err = LoadKey(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	pubPath := filepath.Join(dir, PublicKeyFile)
	if _, err := os.Stat(pubPath); errors.Is(err, fs.ErrNotExist) {
		if err := writeNew(pubPath, MarshalPublicKey(key.Public().(ed25519.PublicKey)), 0o644); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return key, nil
}

// CreateKey generates a key and writes KeyFile (0600) and PublicKeyFile
// (0644) in dir, creating dir (0700) if needed. It never overwrites: an
// existing key file is an error wrapping fs.ErrExist.
func CreateKey(dir string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("consent key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("consent key: encode: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeNew(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	pubPath := filepath.Join(dir, PublicKeyFile)
	_ = os.Remove(pubPath) // a stale public key of another key would mislead
	if err := writeNew(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
		return nil, err
	}
	return key, nil
}

// LoadKey reads KeyFile from dir. A missing file is an error wrapping
// fs.ErrNotExist. On Unix a key file that others may read is refused.
func LoadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("consent key %s: mode %04o lets others read the hub's signing key; make it 0600 (chmod 600)", path, fi.Mode().Perm())
	}
	if fi.Size() > 64<<10 {
		return nil, fmt.Errorf("consent key %s: too large to be a key", path)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("consent key %s: not a PEM \"PRIVATE KEY\" file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("consent key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("consent key %s: a %T, not an Ed25519 key", path, k)
	}
	return key, nil
}

// MarshalPublicKey encodes a public key as PKIX PEM ("PUBLIC KEY").
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // cannot happen for an Ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey decodes a PKIX PEM public key such as PublicKeyFile.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("consent: not a PEM \"PUBLIC KEY\"")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("consent: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("consent: public key is a %T, not Ed25519", k)
	}
	return pub, nil
}

// writeNew writes a complete file at path, or nothing: the data goes to a
// temporary file that is synced and then linked into place, which fails
// (fs.ErrExist) rather than replace an existing file.
func writeNew(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("consent key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("consent key: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("consent key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; not all systems allow it
		d.Close()
	}
	return nil
}
