package credential

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
)

// generatedPrefix marks the stored hash of a secret the hub generated
// (NewSecret), as opposed to one a person chose. The format is
// "$candor-hmac-sha256$<salt>$<mac>", with the PHC string format's base64:
// the mac is HMAC-SHA256 (RFC 2104) of the secret keyed with a random
// per-credential salt.
//
// A slow hash protects a low-entropy secret against guessing once the hash
// has leaked. A generated secret has 160 random bits: nobody can guess it,
// slow hash or not, so argon2id would only cost the hub 19 MiB and tens of
// milliseconds per check, and hand unauthenticated clients a CPU lever (a
// reconnect storm of 10,000 devices took 163 s; issue #19). Secrets people
// choose, and all passwords, keep argon2id.
const generatedPrefix = "$candor-hmac-sha256$"

const (
	generatedSaltLen = 16
	generatedMACLen  = sha256.Size
)

// HashGenerated returns the stored form of a secret from NewSecret. It is
// fast (about a microsecond) and must only be used for generated secrets;
// anything a person chose goes through Hash.
func HashGenerated(secret string) string {
	salt := random(generatedSaltLen)
	return generatedPrefix + b64.EncodeToString(salt) + "$" + b64.EncodeToString(generatedMAC(salt, secret))
}

// IsGenerated reports whether stored is a hash made by HashGenerated.
func IsGenerated(stored string) bool { return strings.HasPrefix(stored, generatedPrefix) }

func generatedMAC(salt []byte, secret string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// verifyGenerated checks secret against a HashGenerated string in constant
// time (for a given secret length). Only a secret shaped like NewSecret's
// output can match, so a short secret someone typed can never pass the
// fast path even if a stored value were forged to use it.
func verifyGenerated(secret, stored string) (bool, error) {
	rest := stored[len(generatedPrefix):]
	s, m, ok := strings.Cut(rest, "$")
	if !ok {
		return false, malformed("generated secret hash: want %ssalt$mac", generatedPrefix)
	}
	salt, err := b64.DecodeString(s)
	if err != nil || len(salt) != generatedSaltLen {
		return false, malformed("generated secret hash: salt is not %d bytes of base64", generatedSaltLen)
	}
	want, err := b64.DecodeString(m)
	if err != nil || len(want) != generatedMACLen {
		return false, malformed("generated secret hash: mac is not %d bytes of base64", generatedMACLen)
	}
	if !looksGenerated(secret) {
		return false, nil
	}
	return subtle.ConstantTimeCompare(generatedMAC(salt, secret), want) == 1, nil
}

// looksGenerated reports whether s has NewSecret's shape: four groups of
// eight lowercase base32 characters separated by '-'.
func looksGenerated(s string) bool {
	const n = secretBytes * 8 / 5 // 32 characters
	if len(s) != n+n/secretGroup-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (i+1)%(secretGroup+1) == 0 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
