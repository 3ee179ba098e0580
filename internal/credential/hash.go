package credential

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters as they appear in a PHC string.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are the OWASP Password Storage Cheat Sheet minimum for
// argon2id (19 MiB, 2 passes, 1 lane). They are what Hash uses today;
// Verify reads the parameters from each stored hash, so raising these later
// only needs NeedsRehash and a re-hash at the next successful login.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Limits on parameters accepted from a stored hash. A corrupted or hostile
// row must not make Verify allocate gigabytes or spin for minutes.
const (
	maxMemoryKiB = 256 * 1024
	maxTime      = 16
	maxThreads   = 16
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	maxPHCLen    = 512
)

// MaxSecretBytes is the longest secret Hash accepts and the longest
// password CheckPassword allows. Argon2 pre-hashes its input, so this is
// not about memory but about refusing megabyte "passwords" sent only to
// burn CPU.
const MaxSecretBytes = 1024

// ErrMalformedHash is wrapped by every error about an unparseable or
// out-of-bounds PHC string.
var ErrMalformedHash = errors.New("malformed argon2id hash")

// ErrSecretTooLong is returned by Hash for secrets over MaxSecretBytes.
var ErrSecretTooLong = fmt.Errorf("secret longer than %d bytes", MaxSecretBytes)

// b64 is the PHC string format's base64: standard alphabet, no padding.
// Strict rejects non-zero trailing bits so each hash has one spelling.
var b64 = base64.RawStdEncoding.Strict()

// Hasher runs argon2id with a bound on how many hashes run at once. Each
// call holds Params.Memory (19 MiB by default) for its duration, so without
// a bound a burst of logins, or an attacker's burst of MQTT CONNECTs, could
// exhaust the hub's memory. Callers past the bound wait their turn or give
// up when their context ends.
//
// A nil *Hasher and the zero Hasher use the package's default Hasher.
type Hasher struct {
	params Params
	sem    chan struct{}
}

// NewHasher returns a Hasher using DefaultParams that runs at most
// concurrency hashes or verifications at once; concurrency <= 0 means
// runtime.NumCPU(), since argon2id with one lane is CPU-bound and more
// simultaneous runs would only queue inside the scheduler while holding
// their memory.
func NewHasher(concurrency int) *Hasher {
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	return &Hasher{params: DefaultParams, sem: make(chan struct{}, concurrency)}
}

var defaultHasher = NewHasher(0)

func (h *Hasher) orDefault() *Hasher {
	if h == nil || h.sem == nil {
		return defaultHasher
	}
	return h
}

// acquire takes a slot, or returns the context's error once it ends.
func (h *Hasher) acquire(ctx context.Context) error {
	// Checked first because select picks at random when both are ready,
	// and a cancelled caller should not get to burn 19 MiB.
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the argon2id hash of secret as a PHC string, for example
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>", with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, secret string) (string, error) {
	h = h.orDefault()
	if len(secret) > MaxSecretBytes {
		return "", fmt.Errorf("hashing secret: %w", ErrSecretTooLong)
	}
	if err := h.acquire(ctx); err != nil {
		return "", fmt.Errorf("hashing secret: waiting for a free hasher: %w", err)
	}
	defer h.release()
	p := h.params
	salt := random(int(p.SaltLen))
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return formatPHC(p, salt, key), nil
}

// Verify reports whether secret matches the PHC string phc, or the fast
// hash of a generated secret (HashGenerated). A mismatch is
// (false, nil); an error means phc is malformed or out of bounds (wrapping
// ErrMalformedHash) or ctx ended while waiting for a free slot. A secret
// over MaxSecretBytes never matches, since Hash would not have produced it,
// and is refused without spending a hash on it.
func (h *Hasher) Verify(ctx context.Context, secret, phc string) (bool, error) {
	if IsGenerated(phc) {
		// A generated secret needs no slow hash, and so no slot either.
		return verifyGenerated(secret, phc)
	}
	h = h.orDefault()
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if len(secret) > MaxSecretBytes {
		return false, nil
	}
	if err := h.acquire(ctx); err != nil {
		return false, fmt.Errorf("verifying secret: waiting for a free hasher: %w", err)
	}
	defer h.release()
	got := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Hash hashes secret with the default Hasher and no deadline. Request
// handlers should prefer a Hasher method with the request's context.
func Hash(secret string) (string, error) {
	return defaultHasher.Hash(context.Background(), secret)
}

// Verify checks secret against phc with the default Hasher and no
// deadline. See Hasher.Verify.
func Verify(secret, phc string) (bool, error) {
	return defaultHasher.Verify(context.Background(), secret, phc)
}

// NeedsRehash reports whether phc should be replaced by a fresh Hash of the
// same secret (after it verified): its costs or lengths are below
// DefaultParams, or it cannot be parsed at all. A generated secret's hash
// never needs one.
func NeedsRehash(phc string) bool {
	if IsGenerated(phc) {
		return false // not a slow hash; there are no costs to raise
	}
	p, _, _, err := parsePHC(phc)
	if err != nil {
		return true
	}
	d := DefaultParams
	return p.Memory < d.Memory || p.Time < d.Time || p.SaltLen < d.SaltLen || p.KeyLen < d.KeyLen
}

func formatPHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}

// parsePHC parses "$argon2id$v=19$m=M,t=T,p=P$salt$hash" strictly and
// enforces the bounds above, so its result can go straight to argon2.
func parsePHC(phc string) (p Params, salt, key []byte, err error) {
	if len(phc) > maxPHCLen {
		return p, nil, nil, malformed("longer than %d bytes", maxPHCLen)
	}
	f := strings.Split(phc, "$")
	if len(f) != 6 || f[0] != "" {
		return p, nil, nil, malformed("want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if f[1] != "argon2id" {
		return p, nil, nil, malformed("algorithm %q is not argon2id", f[1])
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, malformed("version %q is not v=%d", f[2], argon2.Version)
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, malformed("parameters %q are not m=..,t=..,p=..", f[3])
	}
	m, err1 := phcUint(kv[0], "m=", maxMemoryKiB)
	t, err2 := phcUint(kv[1], "t=", maxTime)
	th, err3 := phcUint(kv[2], "p=", maxThreads)
	if err := errors.Join(err1, err2, err3); err != nil {
		return p, nil, nil, malformed("parameters %q: %v", f[3], err)
	}
	if t < 1 || th < 1 {
		return p, nil, nil, malformed("t and p must be at least 1")
	}
	if m < 8*th {
		// RFC 9106 section 3.1: memory must be at least 8 KiB per lane.
		return p, nil, nil, malformed("m=%d is below 8 KiB per lane", m)
	}
	salt, err = b64.DecodeString(f[4])
	if err != nil {
		return p, nil, nil, malformed("salt is not base64: %v", err)
	}
	key, err = b64.DecodeString(f[5])
	if err != nil {
		return p, nil, nil, malformed("hash is not base64: %v", err)
	}
	if len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return p, nil, nil, malformed("salt is %d bytes, want %d to %d", len(salt), minSaltLen, maxSaltLen)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, malformed("hash is %d bytes, want %d to %d", len(key), minKeyLen, maxKeyLen)
	}
	p = Params{Memory: m, Time: t, Threads: uint8(th), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

// phcUint parses "name=value" where value is a canonical decimal (no sign,
// no leading zero) no larger than limit.
func phcUint(s, name string, limit uint32) (uint32, error) {
	v, ok := strings.CutPrefix(s, name)
	if !ok {
		return 0, fmt.Errorf("%q does not start with %q", s, name)
	}
	if v == "" || (len(v) > 1 && v[0] == '0') {
		return 0, fmt.Errorf("%q is not a canonical number", s)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("%q is above the limit of %d", s, limit)
	}
	return uint32(n), nil
}
