package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzCheck: Check never panics, accepts only what the policy allows, and
// refuses everything else for the right reason.
func FuzzCheck(f *testing.F) {
	const limit = 256
	for _, seed := range []struct {
		payload string
		stream  string
	}{
		{`{"c":21.5}`, "temperature"},
		{`{}`, "a"},
		{" \t\r\n{\"a\":[1,2,{\"b\":null}]}\n", "heart_rate"},
		{`{"name":"\u00e9\ud83d\ude00"}`, strings.Repeat("z", 64)},
		{"{\"c\":\"\xff\"}", "s"},
		{`{"k":"` + strings.Repeat("x", limit-8) + `"}`, "s"}, // exactly the limit
		{`{"k":"` + strings.Repeat("x", limit-7) + `"}`, "s"}, // limit+1
		{``, "s"},
		{`[1,2]`, "s"},
		{`"str"`, "s"},
		{`42`, "s"},
		{`null`, "s"},
		{`{"c":`, "s"},
		{`{}{}`, "s"},
		{"\xef\xbb\xbf{}", "s"},
		{"\v{}", "s"},
		{`{}`, ""},
		{`{}`, strings.Repeat("z", 65)},
		{`{}`, "Temp"},
		{`{}`, "a/b"},
		{`{}`, "control"},
		{`{}`, "a-b"},
		{`{}`, "+"},
		{`{}`, "#"},
		{`{}`, "a\x00"},
		// Where JSON validators tend to differ (isJSONObject uses fastjson's,
		// the oracle below encoding/json's).
		{`{"n":01}`, "s"},
		{`{"n":1.}`, "s"},
		{`{"n":-}`, "s"},
		{`{"n":1E+}`, "s"},
		{`{"n":.5}`, "s"},
		{`{"n":-0.0e-0}`, "s"},
		{`{"n":+1}`, "s"},
		{`{"s":"\u12"}`, "s"},
		{`{"s":"\a"}`, "s"},
		{`{"s":"\ud800"}`, "s"},
		{"{\"s\":\"\t\"}", "s"},
		{"{\"s\":\"\x7f\x00\"}", "s"},
		{`{"a":1,}`, "s"},
		{`{"a" : [1 , 2] }`, "s"},
		{"\f{}", "s"},
		{"{}\f", "s"},
		{strings.Repeat(`{"a":`, 120) + "1" + strings.Repeat("}", 120), "s"},
	} {
		f.Add([]byte(seed.payload), seed.stream)
	}
	p := checkOnly(f, Options{MaxPayloadBytes: limit})

	f.Fuzz(func(t *testing.T, payload []byte, stream string) {
		orig := bytes.Clone(payload)
		err := p.Check("dev-1", stream, payload)
		if !bytes.Equal(orig, payload) {
			t.Fatal("Check modified the payload")
		}
		firstNonSpace := rune(-1)
		if i := bytes.IndexFunc(payload, func(r rune) bool { return !strings.ContainsRune(" \t\r\n", r) }); i >= 0 {
			firstNonSpace = rune(payload[i])
		}
		acceptable := ValidStream(stream) && len(payload) <= limit && firstNonSpace == '{' && json.Valid(payload)

		if err == nil {
			if !acceptable {
				t.Fatalf("accepted stream %q payload %q (json.Valid=%v, len=%d, first=%q, ValidStream=%v)",
					stream, payload, json.Valid(payload), len(payload), firstNonSpace, ValidStream(stream))
			}
			if len(stream) < 1 || len(stream) > 64 || stream == "control" ||
				strings.IndexFunc(stream, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') }) >= 0 {
				t.Fatalf("accepted invalid stream name %q", stream)
			}
			return
		}
		if acceptable {
			t.Fatalf("refused acceptable stream %q payload %q: %v", stream, payload, err)
		}
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("refusal is %T, not *RefusedError: %v", err, err)
		}
		want := ReasonNotJSON
		switch {
		case !ValidStream(stream):
			want = ReasonBadStream
		case len(payload) > limit:
			want = ReasonTooLarge
		}
		if re.Reason != want {
			t.Fatalf("stream %q payload %q refused for %q, want %q", stream, payload, re.Reason, want)
		}
		if re.DeviceID != "dev-1" || re.Stream != stream {
			t.Fatalf("RefusedError names %q/%q", re.DeviceID, re.Stream)
		}
		_ = re.Error() // never panics
	})
}
