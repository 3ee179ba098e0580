package updates

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Source is a maker's update repository, as a manifest's candor:updates
// block names it.
type Source struct {
	MetadataURL  string // where root.json, timestamp.json, … are served
	TargetPrefix string // target paths for this device type start with it, e.g. "thermostat/"
	// TrustedRoot is the pinned root metadata. When it is empty, RootSHA256
	// pins it instead: the hub fetches 1.root.json and accepts it only if
	// its SHA-256 matches.
	TrustedRoot []byte
	RootSHA256  string
}

// Release is what a maker says about one firmware image, in the target's
// custom metadata under the key "candor".
type Release struct {
	DeviceType string   `json:"deviceType"`
	Version    string   `json:"version"`
	Fixes      []string `json:"fixes,omitempty"` // advisory ids (CVE, GHSA, OSV, CSAF) it fixes
	Notes      string   `json:"notes"`           // release notes in plain words
	Security   bool     `json:"security"`        // a security update: installed automatically by default
}

// Target is one firmware image listed in verified targets metadata.
type Target struct {
	Path    string
	Length  int64
	SHA256  string // hex
	Release Release
}

// Catalog is what one verified refresh of a repository found.
type Catalog struct {
	Targets []Target // for the source's prefix, with valid release metadata, highest version first
	// TargetsMetadata is the signed targets.json exactly as verified, passed
	// to devices so they can check it themselves.
	TargetsMetadata json.RawMessage
	RootVersion     int64
	// Skipped names targets under the prefix whose release metadata was
	// unusable, with why.
	Skipped map[string]string
}

// maxFirmware bounds the size of a firmware image the hub downloads.
const maxFirmware = 256 << 20

// Client refreshes one maker's repository with go-tuf's updater and keeps
// its verified metadata and downloaded targets in a cache directory.
// It is safe for concurrent use; refreshes are serialised.
type Client struct {
	src  Source
	dir  string
	http *http.Client
	// now is the reference time for expiry checks; nil means the wall clock.
	now func() time.Time

	mu      sync.Mutex
	up      *updater.Updater
	cfg     *config.UpdaterConfig
	catalog *Catalog // of the last refresh that passed
	// The last refresh's outcome, and when it started.
	last    *Catalog
	lastErr error
	lastAt  time.Time
}

// NewClient returns a client for src caching under dir. hc may be nil.
func NewClient(src Source, dir string, hc *http.Client) (*Client, error) {
	if src.MetadataURL == "" {
		return nil, errors.New("update source: metadata URL is empty")
	}
	if len(src.TrustedRoot) == 0 && src.RootSHA256 == "" {
		return nil, fmt.Errorf("update source %s: no pinned root (root.json or its SHA-256)", src.MetadataURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &Client{src: src, dir: dir, http: hc}, nil
}

// SetClock sets the reference time for expiry checks (tests use it to
// step past an expiry without waiting).
func (c *Client) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// ctxTransport carries a context into go-tuf's fetcher, whose requests
// have none, so a refresh stops when its caller gives up.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

func (c *Client) fetcher(ctx context.Context) fetcher.Fetcher {
	base := c.http.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc := *c.http
	hc.Transport = ctxTransport{ctx: ctx, base: base}
	f := fetcher.NewDefaultFetcher().NewFetcherWithHTTPClient(&hc)
	// Without this the copy retries forever, and a missing next root
	// (404, the normal end of the root walk) would never end a refresh;
	// the scheduler is the retry.
	f.SetRetry(0, 1)
	return f
}

func (c *Client) metaDir() string    { return filepath.Join(c.dir, "metadata") }
func (c *Client) targetsDir() string { return filepath.Join(c.dir, "targets") }

// trustedRoot is the newest root the cache holds (go-tuf writes each root
// it verified there, which is how a rotation survives a restart), or else
// the pinned one.
func (c *Client) trustedRoot(ctx context.Context) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(c.metaDir(), "root.json"))
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if len(c.src.TrustedRoot) > 0 {
		return c.src.TrustedRoot, nil
	}
	url := strings.TrimSuffix(c.src.MetadataURL, "/") + "/1.root.json"
	data, err := c.fetcher(ctx).DownloadFile(url, 512<<10, 0)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	if got := hex.EncodeToString(h[:]); !strings.EqualFold(got, c.src.RootSHA256) {
		return nil, &RefusedError{Reason: ReasonSignature, Where: url,
			Err: fmt.Errorf("root metadata has SHA-256 %s, the manifest pins %s", got, c.src.RootSHA256)}
	}
	return data, nil
}

// Refresh walks the repository's metadata with go-tuf and returns the
// targets for this source's prefix. A refusal is a *RefusedError.
func (c *Client) Refresh(ctx context.Context) (*Catalog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refresh(ctx)
}

// Recent returns the outcome of the last refresh if it started less than
// maxAge ago, and refreshes otherwise: a schedule checking many devices of
// one type walks the repository once, and a refusal reaches every device.
func (c *Client) Recent(ctx context.Context, maxAge time.Duration) (*Catalog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lastAt.IsZero() && time.Since(c.lastAt) < maxAge {
		return c.last, c.lastErr
	}
	return c.refresh(ctx)
}

func (c *Client) refresh(ctx context.Context) (*Catalog, error) {
	start := time.Now()
	cat, err := c.walk(ctx)
	c.last, c.lastErr, c.lastAt = cat, err, start
	return cat, err
}

// walk is one go-tuf refresh; c.mu is held.
func (c *Client) walk(ctx context.Context) (*Catalog, error) {
	where := c.src.MetadataURL
	root, err := c.trustedRoot(ctx)
	if err != nil {
		return nil, refused(where, err)
	}
	cfg, err := config.New(c.src.MetadataURL, root)
	if err != nil {
		return nil, refused(where, err)
	}
	cfg.LocalMetadataDir = c.metaDir()
	cfg.LocalTargetsDir = c.targetsDir()
	cfg.Fetcher = c.fetcher(ctx)
	up, err := updater.New(cfg)
	if err != nil {
		return nil, refused(where, err)
	}
	if c.now != nil {
		up.UnsafeSetRefTime(c.now())
	}
	if err := up.Refresh(); err != nil {
		return nil, refused(where, err)
	}
	trusted := up.GetTrustedMetadataSet()
	raw, err := os.ReadFile(filepath.Join(c.metaDir(), metadata.TARGETS+".json"))
	if err != nil {
		return nil, fmt.Errorf("refresh %s: read verified targets: %w", where, err)
	}
	cat := &Catalog{TargetsMetadata: raw, RootVersion: trusted.Root.Signed.Version, Skipped: map[string]string{}}
	for path, tf := range up.GetTopLevelTargets() {
		if !strings.HasPrefix(path, c.src.TargetPrefix) {
			continue
		}
		t, err := target(path, tf)
		if err != nil {
			cat.Skipped[path] = err.Error()
			continue
		}
		cat.Targets = append(cat.Targets, t)
	}
	sort.Slice(cat.Targets, func(i, j int) bool {
		return compareVersions(cat.Targets[i].Release.Version, cat.Targets[j].Release.Version) > 0
	})
	c.up, c.cfg, c.catalog = up, cfg, cat
	return cat, nil
}

// target reads a target's release metadata, strictly.
func target(path string, tf *metadata.TargetFiles) (Target, error) {
	sum, ok := tf.Hashes["sha256"]
	if !ok {
		return Target{}, errors.New("no sha256 hash")
	}
	if tf.Custom == nil {
		return Target{}, errors.New("no custom metadata")
	}
	var custom struct {
		Candor *Release `json:"candor"`
	}
	if err := json.Unmarshal(*tf.Custom, &custom); err != nil || custom.Candor == nil {
		return Target{}, errors.New(`custom metadata has no "candor" release object`)
	}
	r := *custom.Candor
	if err := r.validate(); err != nil {
		return Target{}, err
	}
	return Target{Path: path, Length: tf.Length, SHA256: hex.EncodeToString(sum), Release: r}, nil
}

func (r *Release) validate() error {
	if r.DeviceType == "" {
		return errors.New("custom.candor.deviceType is empty")
	}
	if !validVersion(r.Version) {
		return fmt.Errorf("custom.candor.version %q is not a version such as 1.2.0", r.Version)
	}
	if len(r.Notes) > 4000 {
		return errors.New("custom.candor.notes is longer than 4000 bytes")
	}
	return nil
}

// Download returns the verified bytes of a target from the last refresh,
// from the cache when it is there and still matches.
func (c *Client) Download(ctx context.Context, t Target) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up == nil {
		return nil, fmt.Errorf("download %s: refresh the repository first", t.Path)
	}
	tf, ok := c.up.GetTopLevelTargets()[t.Path]
	if !ok {
		return nil, fmt.Errorf("download %s: not in the verified targets metadata", t.Path)
	}
	if tf.Length > maxFirmware {
		return nil, &RefusedError{Reason: ReasonInvalid, Where: t.Path, Err: fmt.Errorf("%d bytes, more than the %d the hub accepts", tf.Length, maxFirmware)}
	}
	if err := os.MkdirAll(c.targetsDir(), 0o700); err != nil {
		return nil, err
	}
	file := filepath.Join(c.targetsDir(), t.SHA256)
	if _, data, err := c.up.FindCachedTarget(tf, file); err == nil && data != nil {
		return data, nil
	}
	// The updater keeps a pointer to its config and has no context
	// parameter, so a fetcher bound to this call's context is put in.
	c.cfg.Fetcher = c.fetcher(ctx)
	_, data, err := c.up.DownloadTarget(tf, file, "")
	if err != nil {
		return nil, refused(t.Path, err)
	}
	return data, nil
}

// verify checks data against a target's length and hash (used when
// serving a cached file to a device).
func (t Target) verify(data []byte) error {
	if int64(len(data)) != t.Length {
		return fmt.Errorf("%s: %d bytes, the signed metadata says %d", t.Path, len(data), t.Length)
	}
	h := sha256.Sum256(data)
	if hex.EncodeToString(h[:]) != t.SHA256 {
		return fmt.Errorf("%s: SHA-256 differs from the signed metadata", t.Path)
	}
	return nil
}

// Custom returns the target custom metadata that carries r, for a
// maker's repository tool; it refuses a release the hub would skip.
func (r Release) Custom() (json.RawMessage, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]Release{"candor": r})
}
