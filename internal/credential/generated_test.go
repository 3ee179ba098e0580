package credential

import (
	"strings"
	"testing"
)

func TestHashGeneratedVerify(t *testing.T) {
	secret := NewSecret()
	h := HashGenerated(secret)
	if !IsGenerated(h) || strings.Contains(h, secret) {
		t.Fatalf("HashGenerated = %q", h)
	}
	if h2 := HashGenerated(secret); h2 == h {
		t.Error("two hashes of one secret are equal: the salt is missing")
	}
	if ok, err := Verify(secret, h); !ok || err != nil {
		t.Fatalf("Verify(right secret) = %v, %v", ok, err)
	}
	if NeedsRehash(h) {
		t.Error("NeedsRehash(generated hash) = true")
	}
	for _, wrong := range []string{
		NewSecret(),
		secret[:len(secret)-1] + "a",
		strings.ToUpper(secret),
		secret + "x",
		"",
	} {
		if wrong == secret {
			continue
		}
		if ok, err := Verify(wrong, h); ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v, want false, nil", wrong, ok, err)
		}
	}
}

// Only a secret with NewSecret's shape can pass the fast path: a stored
// fast hash of a typed password (which HashGenerated's callers never make)
// would still not let that password in.
func TestHashGeneratedOnlyForGeneratedShape(t *testing.T) {
	chosen := "amber-fjord-lantern-42-quiet"
	if ok, err := Verify(chosen, HashGenerated(chosen)); ok || err != nil {
		t.Fatalf("Verify(chosen, HashGenerated(chosen)) = %v, %v, want false", ok, err)
	}
}

func TestVerifyMalformedGenerated(t *testing.T) {
	good := HashGenerated(NewSecret())
	salt, mac, _ := strings.Cut(strings.TrimPrefix(good, generatedPrefix), "$")
	for _, bad := range []string{
		generatedPrefix,
		generatedPrefix + salt,
		generatedPrefix + salt + "$",
		generatedPrefix + "$" + mac,
		generatedPrefix + salt[:4] + "$" + mac,
		generatedPrefix + salt + "$" + mac[:10],
		generatedPrefix + salt + "$" + mac + "$",
		generatedPrefix + "!!" + salt + "$" + mac,
	} {
		if ok, err := Verify(NewSecret(), bad); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v, want a malformed-hash error", bad, ok, err)
		}
	}
}

func BenchmarkVerifyGenerated(b *testing.B) {
	secret := NewSecret()
	h := HashGenerated(secret)
	for b.Loop() {
		if ok, _ := Verify(secret, h); !ok {
			b.Fatal("no match")
		}
	}
}
