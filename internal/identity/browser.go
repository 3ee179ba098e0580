package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// A known-browser token marks a browser in which a person has logged in
// before (OWASP's "device cookie"). A login for that person from that
// browser is throttled in the browser's own bucket, not the username's,
// so someone guessing the password elsewhere cannot lock the owner out
// of it. The token proves only that the browser once knew the password;
// it opens no session.
const (
	// KnownBrowserCookie is the name of the cookie that carries the token.
	KnownBrowserCookie = "candor_browser"
	// KnownBrowserTTL is how long a token is honoured after it was issued.
	KnownBrowserTTL = 180 * 24 * time.Hour

	browserTokenPrefix = "cndb_"
	browserNonceLen    = 16
	browserTokenLen    = browserNonceLen + 8 + sha256.Size
)

// KnownBrowser returns a fresh known-browser token for a browser in which
// the account has just logged in.
func (s *Service) KnownBrowser(ctx context.Context, accountID string) (string, error) {
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return "", fmt.Errorf("known browser for %s: %w", accountID, err)
	}
	raw := make([]byte, browserNonceLen, browserTokenLen)
	_, _ = rand.Read(raw)
	raw = binary.BigEndian.AppendUint64(raw, uint64(s.now().Unix()))
	raw = append(raw, browserMAC(acc, raw)...)
	return browserTokenPrefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// knownBrowser checks tok for acc and returns the key of the browser's
// bucket when it is valid.
func (s *Service) knownBrowser(acc store.Account, tok string) (string, bool) {
	b64, ok := strings.CutPrefix(tok, browserTokenPrefix)
	// The exact length also refuses the line breaks base64 decoding
	// skips, so each token has one spelling.
	if !ok || len(b64) != base64.RawURLEncoding.EncodedLen(browserTokenLen) || acc.ID == "" || acc.PasswordHash == "" {
		return "", false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil || len(raw) != browserTokenLen {
		return "", false
	}
	signed, mac := raw[:browserNonceLen+8], raw[browserNonceLen+8:]
	if !hmac.Equal(mac, browserMAC(acc, signed)) {
		return "", false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(signed[browserNonceLen:])), 0)
	if age := s.now().Sub(issued); age < -time.Minute || age > KnownBrowserTTL {
		return "", false
	}
	return acc.ID + "/" + hex.EncodeToString(signed[:browserNonceLen]), true
}

// browserMAC signs a token's nonce and issue time for one account. The key
// is derived from the account's password hash, a secret that never leaves
// the hub's store: no other key has to be kept, and a password change
// retires every token issued before it.
func browserMAC(acc store.Account, signed []byte) []byte {
	k := hmac.New(sha256.New, []byte(acc.PasswordHash))
	k.Write([]byte("candor known browser v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(acc.ID))
	m.Write([]byte{0})
	m.Write(signed)
	return m.Sum(nil)
}
