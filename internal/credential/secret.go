package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// encoding is lowercase RFC 4648 base32 without padding: letters and the
// digits 2-7 only, so values survive URLs, shells, MQTT usernames and topic
// segments unquoted, and 0/1/8/9 cannot be misread as O/I/B/g.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const (
	// secretBytes gives 160 bits, the floor NIST SP 800-63B sets for
	// look-up secrets, and encodes to exactly 32 base32 characters.
	secretBytes = 20
	// secretGroup splits a secret into groups that are easy to read off a
	// screen or a label; '-' needs no quoting in URLs or shells.
	secretGroup = 8
	tokenBytes  = 32
	// idChars is 60 bits: ids are public names, not secrets, and only need
	// to be collision-free across one hub's devices and accounts.
	idChars = 12
)

// random returns n bytes from crypto/rand. Since Go 1.24 rand.Read never
// returns an error (it crashes the program instead of handing out weak
// bytes), so there is nothing to propagate.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// NewSecret returns a fresh random device secret of 160 bits: 32 lowercase
// base32 characters in four dash-separated groups of eight, such as
// "mfrggzdf-mnstsm3e-...". It is safe in URLs and shells without quoting.
func NewSecret() string {
	s := encoding.EncodeToString(random(secretBytes))
	var b strings.Builder
	b.Grow(len(s) + len(s)/secretGroup)
	for i := 0; i < len(s); i += secretGroup {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+secretGroup, len(s))])
	}
	return b.String()
}

// NewToken returns a random bearer token, prefix followed by 32 random
// bytes in lowercase base32 (52 characters), and its SHA-256 hash as
// HashToken computes it. Store only the hash; the prefix lets people and
// secret scanners recognise what kind of token leaked.
func NewToken(prefix string) (token string, hash []byte) {
	token = prefix + encoding.EncodeToString(random(tokenBytes))
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of a whole token, prefix included. A fast
// hash is right here, unlike for passwords, because a token has 256 random
// bits: there is nothing for a slow hash to protect against, and a
// deterministic hash lets the store find the token by its hash.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewID returns prefix followed by 12 random lowercase base32 characters,
// such as "dev_k3xq7wz2m4ab". Device ids double as MQTT usernames and topic
// segments, so callers should use a prefix of [a-z0-9_] only; the random
// part never contains anything else.
func NewID(prefix string) string {
	// 8 bytes encode to 13 characters; the 12 kept carry 60 random bits.
	return prefix + encoding.EncodeToString(random(8))[:idChars]
}
