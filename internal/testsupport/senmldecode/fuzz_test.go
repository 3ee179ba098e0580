package senmldecode

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/candor-iot/candor/internal/senml"
)

// FuzzDecode: Decode never panics; what it accepts has valid names and at
// most one value per senml.Record, and re-encoding the resolved Records (where
// the encoder can write them) decodes to the same Records.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "senml", "testdata", "rfc8428", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`[]`, `[{}]`, `[{"bn":"a:"}]`, `[{"n":"x","vd":"AA"}]`, `[{"bs":1,"n":"s"}]`,
		`[{"bver":26,"n":"e","u":"kWh","v":1}]`, `[{"n":"x","v":1,"y_":2}]`, `[{"n":"x","v":-0}]`,
		`[{"bt":1e300,"n":"x","t":1e300,"v":1}]`, `[[`, `[{"n":"x","v":1}]]`, "\xef\xbb\xbf[]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Decode(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, senml.ErrVersion) {
				t.Fatalf("error %v wraps neither ErrSyntax nor ErrVersion", err)
			}
			return
		}
		secondary := false
		for _, r := range recs {
			if err := senml.ValidName(r.Name); err != nil {
				t.Fatalf("accepted %v", err)
			}
			n := 0
			for _, set := range []bool{r.Value != nil, r.StringValue != nil, r.BoolValue != nil, r.DataValue != nil} {
				if set {
					n++
				}
			}
			if n > 1 || n == 0 && r.Sum == nil {
				t.Fatalf("record %+v has %d values", r, n)
			}
			if senml.IsSecondaryUnit(r.Unit) {
				secondary = true
			}
		}
		// Re-encode the resolved Records as they are (no base fields).
		var buf bytes.Buffer
		e := senml.NewEncoder(&buf)
		if secondary {
			_ = e.UseSecondaryUnits()
		}
		for _, r := range recs {
			r.BaseVersion = 0
			if err := e.Encode(r); err != nil {
				if errors.Is(err, senml.ErrUnknownUnit) {
					return // Decode accepts any unit text; the encoder only registered ones
				}
				t.Fatalf("re-encode %+v: %v", r, err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", buf.Bytes(), err)
		}
		for i := range recs {
			recs[i].BaseVersion = 0
			again[i].BaseVersion = 0
		}
		if len(recs) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(again, recs) {
			t.Fatalf("round trip changed records\n got %s\nwant %s", show(again), show(recs))
		}
	})
}
