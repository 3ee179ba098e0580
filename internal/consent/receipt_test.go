package consent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/signkey"
)

var update = flag.Bool("update", false, "rewrite testdata/receipt.json")

func receiptFixture(t testing.TB) (*fixture, Record, []byte) {
	t.Helper()
	f := newFixture(t)
	rec := f.set(t, wearable, "heart_rate", "dpv:ResearchAndDevelopment", research, true)
	rc, err := f.svc.Receipt(context.Background(), rec.RecordID)
	if err != nil {
		t.Fatal(err)
	}
	return f, rec, rc
}

func TestReceiptVerifies(t *testing.T) {
	f, rec, rc := receiptFixture(t)
	got, err := VerifyReceipt(rc, f.svc.PublicKey())
	if err != nil {
		t.Fatalf("VerifyReceipt: %v\n%s", err, rc)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("verified record differs from the one Set returned:\n%+v\n%+v", got, rec)
	}
	// Spot-check the 27560/DPV content.
	for _, want := range []string{
		`"event": "https://w3id.org/dpv#ConsentGiven"`,
		`"consent_type": "https://w3id.org/dpv#ExpressedConsent"`,
		`"iri": "https://w3id.org/dpv#ResearchAndDevelopment"`,
		`"https://w3id.org/dpv/pd#HealthRecord"`,
		`"role": "https://w3id.org/dpv#DataProcessor"`,
		`"name": "The maker's research team"`, // no HTML escaping
		`"key_id": "` + f.svc.KeyID() + `"`,
		`"canonicalization": "RFC8785"`,
	} {
		if !bytes.Contains(rc, []byte(want)) {
			t.Errorf("receipt lacks %s:\n%s", want, rc)
		}
	}
	// Layout is free: compacted, it still verifies.
	var compact bytes.Buffer
	if err := json.Compact(&compact, rc); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(compact.Bytes(), f.svc.PublicKey()); err != nil {
		t.Errorf("compacted receipt: %v", err)
	}
	if _, err := f.svc.Receipt(context.Background(), "cr_nope"); !errors.Is(err, ErrUnknownRecord) {
		t.Errorf("receipt of an unknown record: %v", err)
	}
	if r, err := f.svc.Record(context.Background(), rec.RecordID); err != nil || r.RecordID != rec.RecordID || r.Seq == 0 {
		t.Errorf("Record: %+v %v", r, err)
	}
}

func TestReceiptFailsAfterAnyByteChange(t *testing.T) {
	f, _, rc := receiptFixture(t)
	pub := f.svc.PublicKey()
	// Every byte, each changed three ways (low bit, ASCII case/space bit,
	// high bit), and the receipt cut short: the positions are shared out
	// among goroutines to keep the race build quick.
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rc); i += workers {
				for _, x := range []byte{0x01, 0x20, 0x80} {
					b := bytes.Clone(rc)
					b[i] ^= x
					if _, err := VerifyReceipt(b, pub); err == nil {
						t.Errorf("byte %d (%q) xor %#x still verifies:\n%s", i, rc[i], x, b)
						return
					}
				}
				// Cut short (every 11th byte is plenty; the last byte is the
				// trailing newline).
				if i%11 == 0 && i < len(rc)-1 {
					if _, err := VerifyReceipt(rc[:i], pub); err == nil {
						t.Errorf("receipt cut at %d verifies", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestReceiptOtherKeyAndTampering(t *testing.T) {
	f, _, rc := receiptFixture(t)
	pub := f.svc.PublicKey()
	if _, err := VerifyReceipt(rc, otherKey.Public().(ed25519PublicKey)); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "signed by key") {
		t.Errorf("another key: %v", err)
	}
	edit := func(fn func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(rc, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec := func(m map[string]any) map[string]any { return m["record"].(map[string]any) }
	sig := func(m map[string]any) map[string]any { return m["signature"].(map[string]any) }
	cases := map[string][]byte{
		"event flipped":      edit(func(m map[string]any) { rec(m)["event"] = StatusWithdrawn }),
		"member added":       edit(func(m map[string]any) { rec(m)["note"] = "x" }),
		"member removed":     edit(func(m map[string]any) { delete(rec(m), "jurisdiction") }),
		"envelope member":    edit(func(m map[string]any) { m["extra"] = true }),
		"key id changed":     edit(func(m map[string]any) { sig(m)["key_id"] = KeyID(otherKey.Public().(ed25519PublicKey)) }),
		"algorithm changed":  edit(func(m map[string]any) { sig(m)["algorithm"] = "EdDSA" }),
		"version changed":    edit(func(m map[string]any) { m["receipt_version"] = "candor-consent-receipt/2" }),
		"signature missing":  edit(func(m map[string]any) { delete(m, "signature") }),
		"record not object":  edit(func(m map[string]any) { m["record"] = "x" }),
		"signature a number": edit(func(m map[string]any) { sig(m)["value"] = 1 }),
		"duplicate member":   bytes.Replace(rc, []byte(`"record": {`), []byte(`"record": {"event": "`+StatusWithdrawn+`", `), 1),
		"case-folded name":   bytes.Replace(rc, []byte(`"record":`), []byte(`"RECORD":`), 1),
		"trailing data":      append(bytes.Clone(rc), "{}"...),
		"empty":              nil,
		"not json":           []byte("receipt"),
	}
	for name, b := range cases {
		if _, err := VerifyReceipt(b, pub); err == nil {
			t.Errorf("%s: verifies", name)
		}
	}
	if _, err := VerifyReceipt(rc, pub[:10]); err == nil {
		t.Error("short public key accepted")
	}
}

// TestReceiptTestdata keeps receipts written by earlier builds verifiable:
// testdata/receipt.json was signed by testKey (go test -update rewrites
// it after a deliberate format change).
func TestReceiptTestdata(t *testing.T) {
	path := filepath.Join("testdata", "receipt.json")
	pubPath := filepath.Join("testdata", "receipt-key.pub.pem")
	if *update {
		_, _, rc := receiptFixture(t)
		if err := os.WriteFile(path, rc, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pubPath, signkey.MarshalPublicKey(testKey.Public().(ed25519PublicKey)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signkey.ParsePublicKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := VerifyReceipt(rc, pub)
	if err != nil {
		t.Fatalf("testdata receipt: %v", err)
	}
	if rec.Event != StatusGiven || rec.Recipient.Name != research || rec.Timestamp != testNow {
		t.Errorf("testdata record: %+v", rec)
	}
}
