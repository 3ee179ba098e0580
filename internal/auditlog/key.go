package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/privfile"
	"golang.org/x/mod/sumdb/note"
)

// Key is the hub's log signing key: an Ed25519 key in the
// golang.org/x/mod/sumdb/note encoding. Its name is the log's origin (the
// first line of every checkpoint). The private half never leaves the
// process except through Save; share VerifierKey with users.
type Key struct {
	skey     string
	vkey     string
	signer   note.Signer
	verifier note.Verifier
}

// GenerateKey makes a new random key. An empty name gets a random one of
// the form "candor.audit/<16 hex digits>", unique per hub, so checkpoints of
// two hubs can never be confused.
func GenerateKey(name string) (*Key, error) {
	if name == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("generate log key name: %w", err)
		}
		name = "candor.audit/" + hex.EncodeToString(b[:])
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, fmt.Errorf("generate log key %q: %w", name, err)
	}
	return ParseKey(skey)
}

// NewKey wraps an existing Ed25519 private key, for a hub that manages its
// keys elsewhere.
func NewKey(name string, priv ed25519.PrivateKey) (*Key, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("log key: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log key %q: %w", name, err)
	}
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, v.KeyHash(),
		base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...)))
	return ParseKey(skey)
}

// ParseKey decodes an encoded note signer key
// ("PRIVATE+KEY+<name>+<hash>+<key>").
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		// Never echo skey: it is the secret.
		return nil, fmt.Errorf("log key: not a valid note signer key: %w", err)
	}
	// The verifier key is derived from the seed; note has no accessor.
	// The key data is the fifth field and may itself contain '+'.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("log key: only Ed25519 note keys are supported")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if verifier.KeyHash() != signer.KeyHash() {
		return nil, errors.New("log key: key hash does not match the key")
	}
	return &Key{skey: skey, vkey: vkey, signer: signer, verifier: verifier}, nil
}

// Name is the key's name, which is also the log's origin.
func (k *Key) Name() string { return k.signer.Name() }

// VerifierKey is the public key string users verify checkpoints with
// (e.g. "candor.audit/3f9a…+1a2b3c4d+AXo…"). Publish it; it is not secret.
func (k *Key) VerifierKey() string { return k.vkey }

// String never shows the private key.
func (k *Key) String() string { return "auditlog.Key(" + k.vkey + ")" }

// Save writes the private key to path with mode 0600, refusing to overwrite
// an existing file.
func (k *Key) Save(path string) error {
	return privfile.WriteNew(path, []byte(k.skey+"\n"), 0o600)
}

// LoadOrCreateKey loads the log key from dir/log.key, or generates one
// (named name, or a random name if empty) and stores it there with mode
// 0600, plus the public verifier key in dir/log.pub. It refuses a key file
// that group or others can read or write, as ssh does, because whoever
// holds the key can sign a rewritten history.
func LoadOrCreateKey(dir, name string) (*Key, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	path := filepath.Join(dir, logformat.KeyFile)
	b, created, err := privfile.LoadOrCreate(path, keyMaxBytes, func() ([]byte, error) {
		k, err := GenerateKey(name)
		if err != nil {
			return nil, err
		}
		return []byte(k.skey + "\n"), nil
	})
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if created {
		// The public key file is a convenience; the private key is the record.
		_ = os.WriteFile(filepath.Join(dir, logformat.PubFile), []byte(k.vkey+"\n"), 0o644)
	}
	return k, nil
}

// keyMaxBytes bounds the key file read: an encoded note key is one short
// line.
const keyMaxBytes = 4 << 10
