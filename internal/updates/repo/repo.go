// Package repo creates and maintains a TUF repository on disk for one
// firmware line, so a maker (or the demo) can publish signed update
// metadata that Candor hubs verify with go-tuf's client.
//
// It follows the TUF specification (theupdateframework.io, version 1.0):
// four top-level roles, each with its own Ed25519 key, consistent
// snapshots, and target files stored under their SHA-256. Signing and
// serialisation are go-tuf's (metadata package); this package only keeps
// the files in order. It writes, it never verifies: verification belongs
// to the client side (package updates), so a third party can check a
// repository without this code.
//
// Layout of a repository directory:
//
//	keys/<role>.key       Ed25519 private keys (hex), mode 0600; keep root's offline
//	staged/targets.json   targets added but not yet published (unsigned)
//	public/               what a web server serves as the metadata URL:
//	  <N>.root.json, <N>.targets.json, <N>.snapshot.json, timestamp.json
//	  targets/<sha256>.<name>   the target files
package repo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Roles are the four top-level TUF roles, in the order they are signed.
var Roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Expiry says how long each role's metadata stays valid after it is
// signed. Short-lived timestamps are what make a freeze attack visible.
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry is the expiry a new repository uses.
var DefaultExpiry = Expiry{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: 24 * time.Hour}

// ErrExists is returned by Init for a directory that already holds a repository.
var ErrExists = errors.New("a TUF repository already exists there")

// Repo is a TUF repository on disk. It is not safe for concurrent use.
type Repo struct {
	dir       string
	keys      map[string]ed25519.PrivateKey
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	staged    map[string]*metadata.TargetFiles
	// Now is the clock used for expiry dates; tests set it.
	Now    func() time.Time
	Expiry Expiry
}

// Init creates a repository in dir (made if missing) with a new key per
// role and publishes version 1 of every role with no targets.
func Init(dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, "public", "1.root.json")); err == nil {
		return nil, fmt.Errorf("init %s: %w", dir, ErrExists)
	}
	for _, d := range []string{"keys", "staged", "public/targets"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("init %s: %w", dir, err)
		}
	}
	r := &Repo{dir: dir, keys: map[string]ed25519.PrivateKey{}, Now: time.Now, Expiry: DefaultExpiry}
	now := r.Now().UTC()
	r.root = metadata.Root(now.Add(r.Expiry.Root))
	r.targets = metadata.Targets(now.Add(r.Expiry.Targets))
	r.snapshot = metadata.Snapshot(now.Add(r.Expiry.Snapshot))
	r.timestamp = metadata.Timestamp(now.Add(r.Expiry.Timestamp))
	for _, role := range Roles {
		if err := r.newKey(role); err != nil {
			return nil, err
		}
	}
	if err := r.writeRoot(r.keys[metadata.ROOT]); err != nil {
		return nil, err
	}
	if err := r.writeTop(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repo) newKey(role string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate %s key: %w", role, err)
	}
	key, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("%s key: %w", role, err)
	}
	if err := r.root.Signed.AddKey(key, role); err != nil {
		return fmt.Errorf("add %s key to root: %w", role, err)
	}
	if err := os.WriteFile(r.keyFile(role), []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		return fmt.Errorf("save %s key: %w", role, err)
	}
	r.keys[role] = priv
	return nil
}

func (r *Repo) keyFile(role string) string { return filepath.Join(r.dir, "keys", role+".key") }

// Open loads the repository in dir at its latest published versions,
// with anything staged.
func Open(dir string) (*Repo, error) {
	r := &Repo{dir: dir, keys: map[string]ed25519.PrivateKey{}, Now: time.Now, Expiry: DefaultExpiry}
	for _, role := range Roles {
		b, err := os.ReadFile(r.keyFile(role))
		if err != nil {
			return nil, fmt.Errorf("open repository %s: %w", dir, err)
		}
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("open repository %s: %s is not a hex Ed25519 seed", dir, r.keyFile(role))
		}
		r.keys[role] = ed25519.NewKeyFromSeed(seed)
	}
	pub := filepath.Join(dir, "public")
	n, err := latestRoot(pub)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	if r.root, err = metadata.Root().FromFile(filepath.Join(pub, fmt.Sprintf("%d.root.json", n))); err != nil {
		return nil, fmt.Errorf("open repository %s: root: %w", dir, err)
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(pub, "timestamp.json")); err != nil {
		return nil, fmt.Errorf("open repository %s: timestamp: %w", dir, err)
	}
	sv := r.timestamp.Signed.Meta["snapshot.json"].Version
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(pub, fmt.Sprintf("%d.snapshot.json", sv))); err != nil {
		return nil, fmt.Errorf("open repository %s: snapshot: %w", dir, err)
	}
	tv := r.snapshot.Signed.Meta["targets.json"].Version
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(pub, fmt.Sprintf("%d.targets.json", tv))); err != nil {
		return nil, fmt.Errorf("open repository %s: targets: %w", dir, err)
	}
	b, err := os.ReadFile(r.stagedFile())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	default:
		if err := json.Unmarshal(b, &r.staged); err != nil {
			return nil, fmt.Errorf("open repository %s: %s: %w", dir, r.stagedFile(), err)
		}
	}
	return r, nil
}

func latestRoot(pub string) (int64, error) {
	entries, err := os.ReadDir(pub)
	if err != nil {
		return 0, err
	}
	var best int64
	for _, e := range entries {
		v, ok := strings.CutSuffix(e.Name(), ".root.json")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > best {
			best = n
		}
	}
	if best == 0 {
		return 0, errors.New("no <N>.root.json in " + pub)
	}
	return best, nil
}

func (r *Repo) stagedFile() string { return filepath.Join(r.dir, "staged", "targets.json") }

// PublicDir is the directory to serve as the repository's metadata URL.
func (r *Repo) PublicDir() string { return filepath.Join(r.dir, "public") }

// Root returns the current root metadata, as a client should pin it.
func (r *Repo) Root() ([]byte, error) { return r.root.ToBytes(false) }

// RootVersion is the current root metadata's version.
func (r *Repo) RootVersion() int64 { return r.root.Signed.Version }

// TargetsVersion is the published targets metadata's version.
func (r *Repo) TargetsVersion() int64 { return r.targets.Signed.Version }

// Add stages a target file under name (a slash-separated path such as
// "thermostat/fw-1.2.0.bin") with custom metadata. It is published, with
// everything else staged, by the next Publish.
func (r *Repo) Add(name string, data []byte, custom json.RawMessage) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." {
		return fmt.Errorf("add target %q: the name must be a clean relative path such as thermostat/fw-1.2.0.bin", name)
	}
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	if len(custom) > 0 {
		if !json.Valid(custom) {
			return fmt.Errorf("add target %s: custom metadata is not valid JSON", name)
		}
		c := json.RawMessage(append([]byte(nil), custom...))
		tf.Custom = &c
	}
	file := filepath.Join(r.PublicDir(), "targets", filepath.FromSlash(path.Dir(name)), hex.EncodeToString(tf.Hashes["sha256"])+"."+path.Base(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	if r.staged == nil {
		r.staged = map[string]*metadata.TargetFiles{}
	}
	r.staged[name] = tf
	b, err := json.Marshal(r.staged)
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	return os.WriteFile(r.stagedFile(), b, 0o600)
}

// TargetFile returns where the published copy of a target lives on disk
// (so tests and tools can inspect it).
func (r *Repo) TargetFile(name string) (string, error) {
	tf, ok := r.targets.Signed.Targets[name]
	if !ok {
		return "", fmt.Errorf("target %s is not published", name)
	}
	return filepath.Join(r.PublicDir(), "targets", filepath.FromSlash(path.Dir(name)), hex.EncodeToString(tf.Hashes["sha256"])+"."+path.Base(name)), nil
}

// Publish signs a new version of targets (with everything staged),
// snapshot and timestamp, and writes them to the public directory.
func (r *Repo) Publish() error {
	now := r.Now().UTC()
	for name, tf := range r.staged {
		r.targets.Signed.Targets[name] = tf
	}
	r.targets.Signed.Version++
	r.targets.Signed.Expires = now.Add(r.Expiry.Targets)
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	r.snapshot.Signed.Version++
	r.snapshot.Signed.Expires = now.Add(r.Expiry.Snapshot)
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = now.Add(r.Expiry.Timestamp)
	if err := r.writeTop(); err != nil {
		return err
	}
	r.staged = nil
	if err := os.Remove(r.stagedFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// RefreshTimestamp signs a new timestamp only, as an online timestamp
// service does to show clients the repository is not frozen.
func (r *Repo) RefreshTimestamp() error {
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = r.Now().UTC().Add(r.Expiry.Timestamp)
	return r.write(metadata.TIMESTAMP, r.timestamp, r.keys[metadata.TIMESTAMP])
}

// RotateRootKey replaces the root key: the new root version is signed by
// both the old key (so clients trusting it accept the change) and the new
// one (so it satisfies its own threshold), then the old key is discarded.
func (r *Repo) RotateRootKey() error {
	old := r.keys[metadata.ROOT]
	oldKey, err := metadata.KeyFromPublicKey(old.Public())
	if err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	oldID, err := oldKey.ID()
	if err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	if err := r.root.Signed.RevokeKey(oldID, metadata.ROOT); err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	if err := r.newKey(metadata.ROOT); err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	r.root.Signed.Version++
	r.root.Signed.Expires = r.Now().UTC().Add(r.Expiry.Root)
	return r.writeRoot(old, r.keys[metadata.ROOT])
}

func (r *Repo) writeRoot(signers ...ed25519.PrivateKey) error {
	r.root.ClearSignatures()
	for _, k := range signers {
		if err := sign(r.root, k); err != nil {
			return fmt.Errorf("sign root: %w", err)
		}
	}
	name := fmt.Sprintf("%d.root.json", r.root.Signed.Version)
	if err := r.root.ToFile(filepath.Join(r.PublicDir(), name), false); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func (r *Repo) writeTop() error {
	if err := r.write(metadata.TARGETS, r.targets, r.keys[metadata.TARGETS]); err != nil {
		return err
	}
	if err := r.write(metadata.SNAPSHOT, r.snapshot, r.keys[metadata.SNAPSHOT]); err != nil {
		return err
	}
	return r.write(metadata.TIMESTAMP, r.timestamp, r.keys[metadata.TIMESTAMP])
}

type signable interface {
	ClearSignatures()
	Sign(signature.Signer) (*metadata.Signature, error)
	ToFile(string, bool) error
}

func (r *Repo) write(role string, m signable, key ed25519.PrivateKey) error {
	m.ClearSignatures()
	if err := sign(m, key); err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	name := role + ".json"
	switch role {
	case metadata.TARGETS:
		name = fmt.Sprintf("%d.%s", r.targets.Signed.Version, name)
	case metadata.SNAPSHOT:
		name = fmt.Sprintf("%d.%s", r.snapshot.Signed.Version, name)
	}
	if err := m.ToFile(filepath.Join(r.PublicDir(), name), false); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func sign(m interface {
	Sign(signature.Signer) (*metadata.Signature, error)
}, key ed25519.PrivateKey) error {
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		return err
	}
	_, err = m.Sign(s)
	return err
}

// RootSHA256 is the hex SHA-256 of root metadata bytes, the form a
// manifest may pin instead of shipping root.json.
func RootSHA256(root []byte) string {
	h := sha256.Sum256(root)
	return hex.EncodeToString(h[:])
}
