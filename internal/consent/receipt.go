package consent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// ReceiptVersion names the receipt format.
const ReceiptVersion = "candor-consent-receipt/1"

// Receipt signature parameters.
const (
	SignatureAlgorithm = "Ed25519"
	Canonicalization   = "RFC8785" // JSON Canonicalization Scheme
)

// maxReceiptBytes bounds what VerifyReceipt reads; a receipt is about 2 KB.
const maxReceiptBytes = 1 << 20

// Receipt errors, tested with errors.Is.
var (
	ErrMalformedReceipt = errors.New("malformed consent receipt")
	ErrBadSignature     = errors.New("consent receipt signature does not verify")
)

// receipt is the document Receipt writes:
//
//	{
//	  "receipt_version": "candor-consent-receipt/1",
//	  "record": { …the Record… },
//	  "signature": {
//	    "algorithm": "Ed25519",
//	    "canonicalization": "RFC8785",
//	    "key_id": "ed25519:…",
//	    "value": "<base64url, no padding, of the 64-byte signature>"
//	  }
//	}
//
// The signature is over the RFC 8785 canonical bytes of "record".
type receipt struct {
	ReceiptVersion string           `json:"receipt_version"`
	Record         json.RawMessage  `json:"record"`
	Signature      receiptSignature `json:"signature"`
}

type receiptSignature struct {
	Algorithm        string `json:"algorithm"`
	Canonicalization string `json:"canonicalization"`
	KeyID            string `json:"key_id"`
	Value            string `json:"value"`
}

var sigEncoding = base64.RawURLEncoding.Strict()

// Receipt returns a record as a receipt signed by the hub, for the person
// to download and keep. Verify it with VerifyReceipt and PublicKey. The
// caller checks the asking person may see the record (see Record).
func (s *Service) Receipt(ctx context.Context, recordID string) ([]byte, error) {
	r, err := s.storedRecord(ctx, recordID)
	if err != nil {
		return nil, err
	}
	// The stored document is canonical by construction; checking costs
	// little and keeps a damaged row from being signed as if it were not.
	canon, err := canonicalJSON(r.Doc)
	if err != nil || !bytes.Equal(canon, r.Doc) {
		return nil, fmt.Errorf("consent: stored record %q is not in canonical form", recordID)
	}
	return signReceipt(s.key, s.keyID, r.Doc)
}

func signReceipt(key ed25519.PrivateKey, keyID string, canon []byte) ([]byte, error) {
	rc := receipt{
		ReceiptVersion: ReceiptVersion,
		Record:         canon,
		Signature: receiptSignature{
			Algorithm:        SignatureAlgorithm,
			Canonicalization: Canonicalization,
			KeyID:            keyID,
			Value:            sigEncoding.EncodeToString(ed25519.Sign(key, canon)),
		},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rc); err != nil {
		return nil, fmt.Errorf("consent: encode receipt: %w", err)
	}
	return b.Bytes(), nil
}

// VerifyReceipt checks a receipt offline against the hub's public key and
// returns the record it proves. It fails (never panics) on anything but a
// well-formed receipt whose record was signed by that key: a changed name or
// value anywhere, duplicate or unknown members, another key, a key id that
// does not match the key.
func VerifyReceipt(data []byte, publicKey ed25519.PublicKey) (Record, error) {
	if len(publicKey) != ed25519.PublicKeySize {
		return Record{}, fmt.Errorf("consent: public key is %d bytes, want %d", len(publicKey), ed25519.PublicKeySize)
	}
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformedReceipt, fmt.Sprintf(format, args...))
	}
	if len(data) > maxReceiptBytes {
		return Record{}, malformed("larger than %d bytes", maxReceiptBytes)
	}
	// Canonicalizing the whole receipt first refuses invalid UTF-8,
	// duplicate members and odd numbers anywhere, so that what a reader
	// sees is what is checked.
	if _, err := canonicalJSON(data); err != nil {
		return Record{}, malformed("%v", err)
	}
	top, err := members(data, "receipt_version", "record", "signature")
	if err != nil {
		return Record{}, malformed("%v", err)
	}
	var version string
	if err := json.Unmarshal(top["receipt_version"], &version); err != nil || version != ReceiptVersion {
		return Record{}, malformed("receipt_version is not %q", ReceiptVersion)
	}
	sm, err := members(top["signature"], "algorithm", "canonicalization", "key_id", "value")
	if err != nil {
		return Record{}, malformed("signature: %v", err)
	}
	var sig receiptSignature
	for name, dst := range map[string]*string{"algorithm": &sig.Algorithm, "canonicalization": &sig.Canonicalization, "key_id": &sig.KeyID, "value": &sig.Value} {
		if err := json.Unmarshal(sm[name], dst); err != nil {
			return Record{}, malformed("signature.%s is not a string", name)
		}
	}
	if sig.Algorithm != SignatureAlgorithm || sig.Canonicalization != Canonicalization {
		return Record{}, malformed("signature is %s over %s, want %s over %s", sig.Algorithm, sig.Canonicalization, SignatureAlgorithm, Canonicalization)
	}
	raw, err := sigEncoding.DecodeString(sig.Value)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return Record{}, malformed("signature.value is not a base64url Ed25519 signature")
	}
	canon, err := canonicalJSON(top["record"])
	if err != nil || len(canon) == 0 || canon[0] != '{' {
		return Record{}, malformed("record is not a JSON object")
	}
	want := KeyID(publicKey)
	if !ed25519.Verify(publicKey, canon, raw) {
		if sig.KeyID != want {
			return Record{}, fmt.Errorf("%w: signed by key %q, not by %q", ErrBadSignature, sig.KeyID, want)
		}
		return Record{}, fmt.Errorf("%w: the record or its signature was changed", ErrBadSignature)
	}
	if sig.KeyID != want {
		return Record{}, fmt.Errorf("%w: key_id %q does not name the key that signed it (%q)", ErrBadSignature, sig.KeyID, want)
	}
	rec, err := decodeRecord(canon)
	if err != nil {
		return Record{}, malformed("record: %v", err)
	}
	return rec, nil
}

// members decodes a JSON object whose member names must be exactly names.
// Names are compared exactly (encoding/json alone would also take
// "RECORD" for "record").
func members(data []byte, names ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return nil, fmt.Errorf("member %q is missing", n)
		}
	}
	if len(m) != len(names) {
		for k := range m {
			if !slices.Contains(names, k) {
				return nil, fmt.Errorf("unknown member %q", k)
			}
		}
	}
	return m, nil
}
