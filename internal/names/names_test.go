package names

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		bad    rune
		offset int
		words  string
	}{
		{"plain", "Kitchen sensor", 0, 0, ""},
		{"accents and scripts", "Küche — 厨房 — مطبخ", 0, 0, ""},
		{"emoji", "Door 🚪", 0, 0, ""},
		{"right-to-left override", "invoice\u202Egpj.exe", 0x202E, 7, "text direction control"},
		{"left-to-right embedding", "\u202Aname", 0x202A, 0, "text direction control"},
		{"pop directional formatting", "a\u202C", 0x202C, 1, "text direction control"},
		{"right-to-left isolate", "x\u2067y", 0x2067, 1, "text direction control"},
		{"pop directional isolate", "x\u2069", 0x2069, 1, "text direction control"},
		{"right-to-left mark", "ab\u200F", 0x200F, 2, "text direction control"},
		{"arabic letter mark", "ab\u061C", 0x061C, 2, "text direction control"},
		{"zero-width space", "ad\u200Bmin", 0x200B, 2, "zero-width character"},
		{"zero-width joiner", "a\u200Db", 0x200D, 1, "zero-width character"},
		{"byte order mark", "\uFEFFhome", 0xFEFF, 0, "zero-width character"},
		{"word joiner", "a\u2060b", 0x2060, 1, "zero-width character"},
		{"soft hyphen", "lamp\u00ADpost", 0x00AD, 4, "invisible format character"},
		{"tag character", "a\U000E0041", 0xE0041, 1, "invisible format character"},
		{"control", "a\x07b", 0x07, 1, "control character"},
		{"line separator", "a\u2028b", 0x2028, 1, "line break"},
		{"invalid UTF-8", "a\xffb", utf8.RuneError, 1, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.in)
			if tc.bad == 0 {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tc.in, err)
				}
				return
			}
			var ce *CharError
			if !errors.As(err, &ce) {
				t.Fatalf("Check(%q) = %v, want a *CharError", tc.in, err)
			}
			if ce.Rune != tc.bad || ce.Offset != tc.offset {
				t.Errorf("Check(%q): %U at %d, want %U at %d", tc.in, ce.Rune, ce.Offset, tc.bad, tc.offset)
			}
			msg := err.Error()
			if !strings.Contains(msg, "U+") || !strings.Contains(msg, tc.words) {
				t.Errorf("message %q lacks the code point or %q", msg, tc.words)
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"Kitchen", "a\u202Eb", "\u200B", "\uFEFF", "a\xffb", "Küche 🚪"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Check(s)
		var ce *CharError
		if err == nil {
			for _, r := range s {
				if Hidden(r) {
					t.Fatalf("Check(%q) accepted %U", s, r)
				}
			}
			return
		}
		if !errors.As(err, &ce) {
			t.Fatalf("Check(%q) = %T, want *CharError", s, err)
		}
		if ce.Offset < 0 || ce.Offset >= len(s) {
			t.Fatalf("offset %d outside %q", ce.Offset, s)
		}
		r, _ := utf8.DecodeRuneInString(s[ce.Offset:])
		if r != ce.Rune || !Hidden(r) {
			t.Fatalf("Check(%q) reported %U at %d, but there is %U", s, ce.Rune, ce.Offset, r)
		}
		for _, r := range s[:ce.Offset] {
			if Hidden(r) {
				t.Fatalf("Check(%q) missed the earlier %U", s, r)
			}
		}
	})
}
