package credential

import (
	"bytes"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
)

func TestNewSecret(t *testing.T) {
	shape := regexp.MustCompile(`^[a-z2-7]{8}(-[a-z2-7]{8}){3}$`)
	seen := make(map[string]bool, 1000)
	for range 1000 {
		s := NewSecret()
		if !shape.MatchString(s) {
			t.Fatalf("NewSecret() = %q, want four dash-separated groups of 8 base32 characters", s)
		}
		raw, err := encoding.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err != nil {
			t.Fatalf("NewSecret() = %q does not decode: %v", s, err)
		}
		if bits := len(raw) * 8; bits < 160 {
			t.Fatalf("NewSecret() carries %d bits, want at least 160", bits)
		}
		if seen[s] {
			t.Fatalf("NewSecret() repeated %q", s)
		}
		seen[s] = true
	}
}

func TestNewToken(t *testing.T) {
	shape := regexp.MustCompile(`^cnd_[a-z2-7]{52}$`)
	tok, hash := NewToken("cnd_")
	if !shape.MatchString(tok) {
		t.Fatalf("NewToken = %q, want cnd_ and 52 base32 characters", tok)
	}
	want := sha256.Sum256([]byte(tok))
	if !bytes.Equal(hash, want[:]) || !bytes.Equal(HashToken(tok), hash) {
		t.Fatalf("token hash is not the SHA-256 of the whole token")
	}
	tok2, hash2 := NewToken("cnd_")
	if tok2 == tok || bytes.Equal(hash, hash2) {
		t.Fatalf("NewToken repeated itself")
	}
}

func TestNewID(t *testing.T) {
	shape := regexp.MustCompile(`^dev_[a-z2-7]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID("dev_")
		if !shape.MatchString(id) {
			t.Fatalf("NewID = %q, want dev_ and 12 characters of [a-z2-7]", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
	if id := NewID(""); len(id) != 12 {
		t.Fatalf("NewID(\"\") = %q, want 12 characters", id)
	}
}
