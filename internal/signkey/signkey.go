// Package signkey keeps the hub's Ed25519 signing keys on disk: the key
// that signs consent receipts and the key that signs forwarded batches.
// Each key is a pair of files in a directory: <name>.pem, the private key
// as PKCS #8 PEM with mode 0600, and <name>.pub.pem, its public half as
// PKIX PEM with mode 0644, to hand to anyone who verifies signatures
// (openssl reads both).
package signkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/candor-iot/candor/internal/privfile"
)

// maxKeyBytes bounds a key file read: a PEM Ed25519 key is under 200 bytes.
const maxKeyBytes = 64 << 10

// KeyFile is the name of the private key file of the key called name.
func KeyFile(name string) string { return name + ".pem" }

// PublicKeyFile is the name of the public key file of the key called name.
func PublicKeyFile(name string) string { return name + ".pub.pem" }

// LoadOrCreate loads the key called name from dir, creating dir (0700) and
// both files when there is no key yet, and the public key file when only
// it is missing. When two processes race, both end up with the key that
// was written first.
func LoadOrCreate(dir, name string) (ed25519.PrivateKey, error) {
	key, err := Load(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = Create(dir, name)
		if errors.Is(err, fs.ErrExist) {
			key, err = Load(dir, name)
		}
	}
	if err != nil {
		return nil, err
	}
	pubPath := filepath.Join(dir, PublicKeyFile(name))
	if _, err := os.Stat(pubPath); errors.Is(err, fs.ErrNotExist) {
		if err := privfile.WriteNew(pubPath, MarshalPublicKey(key.Public().(ed25519.PublicKey)), 0o644); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("signing key %s: %w", name, err)
		}
	}
	return key, nil
}

// Create generates the key called name and writes both its files in dir,
// creating dir (0700) if needed. It never overwrites: an existing key file
// is an error wrapping fs.ErrExist.
func Create(dir, name string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: generate: %w", name, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: encode: %w", name, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := privfile.WriteNew(filepath.Join(dir, KeyFile(name)), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	pubPath := filepath.Join(dir, PublicKeyFile(name))
	_ = os.Remove(pubPath) // a stale public key of another key would mislead
	if err := privfile.WriteNew(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	return key, nil
}

// Load reads the key called name from dir. A missing file is an error
// wrapping fs.ErrNotExist; a key file that others may read or change is
// refused (privfile.ErrExposed).
func Load(dir, name string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile(name))
	data, err := privfile.Read(path, maxKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM \"PRIVATE KEY\" file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T, not an Ed25519 key", path, k)
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

// ParsePublicKey decodes a PKIX PEM Ed25519 public key such as a public
// key file.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("signkey: not a PEM \"PUBLIC KEY\"")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signkey: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signkey: public key is a %T, not Ed25519", k)
	}
	return pub, nil
}
