package consent

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestKeyID(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	id := KeyID(pub)
	if !strings.HasPrefix(id, "ed25519:") || len(id) != len("ed25519:")+16 {
		t.Errorf("KeyID = %q", id)
	}
	if KeyID(otherKey.Public().(ed25519.PublicKey)) == id {
		t.Error("two keys share an id")
	}
}
