package updates

import (
	"encoding/json"
	"errors"
	"testing"
)

func FuzzParseProgress(f *testing.F) {
	for _, s := range []string{
		`{"version":"1.2.0","stage":"downloading"}`,
		`{"version":"v1.2.0","stage":"failed","reason":"hash-mismatch"}`,
		`{"version":"1.2.0","stage":"installed","reason":"x"}`,
		`{"version":"1.2","stage":"installed"}`,
		`{"version":"1.2.0","stage":"installed"} {}`,
		`[]`, `null`, `{"version":"1.2.0","stage":"installed","extra":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProgress(data)
		if err != nil {
			if !errors.Is(err, ErrBadProgress) {
				t.Fatalf("error %v does not wrap ErrBadProgress", err)
			}
			return
		}
		if !validVersion(p.Version) || (p.Stage == StageFailed) != (p.Reason != "") {
			t.Fatalf("accepted %+v", p)
		}
		// What was accepted survives a round trip unchanged.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseProgress(b)
		if err != nil || q != p {
			t.Fatalf("round trip of %+v: %+v, %v", p, q, err)
		}
	})
}
