package forward

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// FuzzVerify feeds recipient-side verification arbitrary headers and
// bodies: it must never panic, and must accept only what the key signed.
func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_800_000_000, 0)
	f.Add("1800000000", "ed25519=AAAA", []byte(`{"recipient":"x","readings":[]}`))
	f.Add("", "", []byte{})
	f.Add("-1", "ed25519=", []byte("{"))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		if err := Verify(pub, ts, sig, body, now, time.Minute); err == nil {
			// Only a genuine signature passes; the fuzzer cannot forge one.
			msg := append(append([]byte(ts), '.'), body...)
			good := "ed25519=" + encode(ed25519.Sign(priv, msg))
			if sig != good {
				t.Fatalf("verified a signature the key did not make: %q", sig)
			}
		}
	})
}

// FuzzCheckURL checks the URL rule never panics and never admits plain
// http to another machine.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://a.example/in", "http://127.0.0.1:9/x", "http://[::1]/", "http://evil.example/", "", "::", "http://127.0.0.1.evil.example/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckURL(s) != nil {
			return
		}
		if len(s) >= 7 && s[:7] == "http://" {
			if err := CheckURL("https://" + s[7:]); err != nil {
				t.Fatalf("%q accepted as http but not as https: %v", s, err)
			}
		}
	})
}
