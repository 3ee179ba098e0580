package consent

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
)

// KeyID names a public key in receipts: "ed25519:" and the first 8 bytes
// of the SHA-256 of the key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}
