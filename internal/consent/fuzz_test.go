package consent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"testing"
)

// FuzzVerifyReceipt feeds arbitrary bytes to VerifyReceipt: it must never
// panic, and whatever it accepts must be exactly what was signed: the
// returned Record, encoded again, is byte for byte the canonical record
// the signature covers (nothing dropped, nothing read two ways).
func FuzzVerifyReceipt(f *testing.F) {
	// Receipts are built without a store: the fuzzer instruments every
	// package, and the SQLite engine would crawl.
	ms := templates(f)
	for i, c := range []struct{ typ, stream, purpose, recipient string }{
		{"wearable", "heart_rate", "dpv:ResearchAndDevelopment", research},
		{"smart-meter", "energy", "candor:Billing", RecipientHub},
	} {
		e := &catalog.Entry{Version: 3, Manifest: ms[c.typ]}
		st := e.Manifest.Stream(c.stream)
		s := &Service{controller: Party{Name: "Op <&>", Contact: "mailto:op@example.invalid"}, now: func() time.Time { return testNow }}
		rec := s.newRecord(KindConsent, status(i == 0, true), fmt.Sprintf("acc_%d", i), "dev_x", e, st)
		rec.Purposes = []RecordPurpose{{IRI: IRI(c.purpose), Term: c.purpose, Description: "why\n\"quoted\" é 😀"}}
		rec.Recipient = RecordRecipient{Name: c.recipient, Role: RoleController}
		rec.Processing = []string{ProcessCollect}
		rec.Storage = RecordStorage{Location: StoredOnHub, Duration: "P1D"}
		doc, err := encodeRecord(&rec)
		if err != nil {
			f.Fatal(err)
		}
		rc, err := signReceipt(testKey, KeyID(testKey.Public().(ed25519PublicKey)), doc)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := VerifyReceipt(rc, testKey.Public().(ed25519PublicKey)); err != nil {
			f.Fatal(err)
		}
		f.Add(rc)
		var compact bytes.Buffer
		_ = json.Compact(&compact, rc)
		f.Add(compact.Bytes())
	}
	if rc, err := os.ReadFile(filepath.Join("testdata", "receipt.json")); err == nil {
		f.Add(rc)
	}
	f.Add([]byte(`{"receipt_version":"candor-consent-receipt/1","record":{},"signature":{"algorithm":"Ed25519","canonicalization":"RFC8785","key_id":"","value":""}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Add([]byte(`{"a":1e999999}`))
	pub := testKey.Public().(ed25519PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := VerifyReceipt(data, pub)
		if err != nil {
			return
		}
		var env struct {
			Record json.RawMessage `json:"record"`
		}
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("accepted receipt does not parse: %v", err)
		}
		signed, err := canonicalJSON(env.Record)
		if err != nil {
			t.Fatal(err)
		}
		again, err := encodeRecord(&rec)
		if err != nil || !bytes.Equal(again, signed) {
			t.Fatalf("accepted record differs from the signed one:\n%s\n%s", again, signed)
		}
	})
}

// FuzzCanonicalJSON checks that canonicalization never panics and is
// idempotent on whatever it accepts.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":"\u00e9"}`, `[1,-0,"x"]`, `{"😀":null,"דּ":true}`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := canonicalJSON(data)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not JSON: %q", c)
		}
		again, err := canonicalJSON(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not idempotent: %q → %q (%v)", c, again, err)
		}
	})
}
