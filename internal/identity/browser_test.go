package identity

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/store"
)

// FuzzKnownBrowser feeds the known-browser cookie's parser whatever a
// client may send: it must not panic, and nothing but a token the hub
// issued for the account may be honoured.
func FuzzKnownBrowser(f *testing.F) {
	svc := New(nil, Options{})
	clk := newFakeClock()
	svc.now = clk.Now
	acc := store.Account{ID: "acc_1", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}
	raw := binary.BigEndian.AppendUint64(make([]byte, browserNonceLen), uint64(clk.Now().Unix()))
	issued := browserTokenPrefix + base64.RawURLEncoding.EncodeToString(append(raw, browserMAC(acc, raw)...))
	if _, ok := svc.knownBrowser(acc, issued); !ok {
		f.Fatal("the seed token is not honoured")
	}
	for _, seed := range []string{"", "cndb_", issued, issued + "A", strings.ToUpper(issued), "cndb_" + strings.Repeat("A", 75), "cnds_x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		key, ok := svc.knownBrowser(acc, tok)
		if ok && tok != issued {
			t.Errorf("token %q honoured (bucket %q), but the hub issued only %q", tok, key, issued)
		}
		if _, ok := svc.knownBrowser(store.Account{ID: "acc_2", PasswordHash: acc.PasswordHash}, tok); ok {
			t.Errorf("token %q honoured for another account", tok)
		}
	})
}
