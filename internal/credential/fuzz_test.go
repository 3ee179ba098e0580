package credential

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzCheckPassword(f *testing.F) {
	for _, p := range knownDefaults().pairs {
		f.Add(p.username, p.password)
	}
	f.Add("alice", "correct horse battery staple")
	f.Add("alice", "abcdeabcdeabcde")
	f.Add("alice", "qwertyuiopas")
	f.Add("alice", "alice in wonderland")
	f.Add("", "\xff\xfe correct horse")
	f.Fuzz(func(t *testing.T, username, password string) {
		err := CheckPassword(username, password)
		derr := CheckDeviceCredential(username, password)
		if (err == nil) != (derr == nil) {
			t.Fatalf("password and device rules disagree: %v vs %v", err, derr)
		}
		if err != nil {
			var weak *WeakPasswordError
			if !errors.As(err, &weak) || weak.Reason == "" {
				t.Fatalf("refusal %v has no reason", err)
			}
			return
		}
		if n := utf8.RuneCountInString(password); n < MinPasswordChars {
			t.Fatalf("accepted %q of %d characters", password, n)
		}
		if len(password) > MaxSecretBytes || !utf8.ValidString(password) {
			t.Fatalf("accepted oversize or invalid %q", password)
		}
		if IsKnownDefault(username, password) || isDefaultPassword(password) {
			t.Fatalf("accepted known default %q/%q", username, password)
		}
		if username != "" && strings.EqualFold(username, password) {
			t.Fatalf("accepted password equal to username %q", username)
		}
	})
}

func FuzzVerifyPHC(f *testing.F) {
	f.Add(cheapPHC("s3cret passphrase"))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$argon2id$v=19$m=262144,t=16,p=16$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$$")
	f.Add("$$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, phc string) {
		p, salt, key, err := parsePHC(phc)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("parse error %v does not wrap ErrMalformedHash", err)
			}
			_ = NeedsRehash(phc)
			return
		}
		if p.Memory > maxMemoryKiB || p.Time > maxTime || p.Threads > maxThreads ||
			p.Time < 1 || p.Threads < 1 || len(salt) < minSaltLen || len(key) < minKeyLen {
			t.Fatalf("parse accepted out-of-bounds %+v", p)
		}
		// Running argon2 at up to 256 MiB per input would stall the
		// fuzzer; the accepted bounds are checked above, and small
		// costs still exercise the whole Verify path.
		if uint64(p.Memory)*uint64(p.Time) > 4096 {
			return
		}
		ok, err := NewHasher(1).Verify(context.Background(), "s3cret passphrase", phc)
		if err != nil {
			t.Fatalf("Verify failed after parse succeeded: %v", err)
		}
		_ = ok
	})
}
