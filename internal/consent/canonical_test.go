package consent

import (
	"crypto/ed25519"
	"testing"
)

type ed25519PublicKey = ed25519.PublicKey

func TestCanonicalJSON(t *testing.T) {
	good := []struct{ in, want string }{
		{`{"b": 1, "a": [true, false, null]}`, `{"a":[true,false,null],"b":1}`},
		{` [ ] `, `[]`},
		{`"<&>é\u00e9\/"`, `"<&>éé/"`},
		{`"\u0001\b\t\n\f\r\"\\\u001f\u007f"`, "\"\\u0001\\b\\t\\n\\f\\r\\\"\\\\\\u001f\x7f\""},
		{`-0`, `0`},
		{`9007199254740991`, `9007199254740991`},
		// RFC 8785 §3.2.3: names sorted by UTF-16 code units, so U+1F600
		// (surrogates D83D…) sorts before U+FB33 and after U+00E9.
		{`{"\ufb33":1,"😀":2,"é":3,"a":4}`, `{"a":4,"é":3,"😀":2,"דּ":1}`},
	}
	for _, c := range good {
		got, err := canonicalJSON([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("canonicalJSON(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
		again, err := canonicalJSON(got)
		if err != nil || string(again) != string(got) {
			t.Errorf("not idempotent on %s: %s %v", got, again, err)
		}
	}
	bad := []string{
		``, `{`, `{"a":1,"a":2}`, `{"a":1}{}`, `1.5`, `1e3`, `9007199254740992`, `"\xff"`,
		`[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]`, `{"a" 1}`, `{1:2}`, `[1,]`, `tru`,
	}
	for _, in := range bad {
		if got, err := canonicalJSON([]byte(in)); err == nil {
			t.Errorf("canonicalJSON(%q) = %s, want an error", in, got)
		}
	}
}
