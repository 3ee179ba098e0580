// Package names checks names people and manifests give to things (devices,
// households, tokens, recipients) for characters that make the text
// shown differ from the text stored: bidirectional controls such as
// U+202E RIGHT-TO-LEFT OVERRIDE, which reorder what follows them, and
// zero-width and other invisible format characters, which make two names
// look identical. Both are used to spoof names (Unicode Technical Report
// #36, section 2; CVE-2021-42574 "Trojan Source").
package names

import (
	"fmt"
	"unicode"
)

// CharError reports a character a name must not contain.
type CharError struct {
	Rune   rune
	Offset int // byte offset in the name
}

func (e *CharError) Error() string {
	return fmt.Sprintf("contains %U (%s) at byte %d; remove it and type the name again", e.Rune, kind(e.Rune), e.Offset)
}

// Check returns a *CharError for the first character of s that hides or
// reorders text: Unicode format characters (category Cf, which holds the
// bidirectional controls U+202A–U+202E and U+2066–U+2069, the zero-width
// characters U+200B–U+200F and U+FEFF), control characters (Cc) and the
// line and paragraph separators U+2028 and U+2029. Invalid UTF-8 is
// reported as U+FFFD.
func Check(s string) error {
	for i, r := range s {
		if Hidden(r) {
			return &CharError{Rune: r, Offset: i}
		}
	}
	return nil
}

// Hidden reports whether r is a character Check refuses.
func Hidden(r rune) bool {
	return r == unicode.ReplacementChar || unicode.Is(unicode.Cf, r) || unicode.IsControl(r) ||
		r == '\u2028' || r == '\u2029'
}

// kind names the class of r in words a person understands.
func kind(r rune) string {
	switch {
	case r == unicode.ReplacementChar:
		return "invalid or replacement character"
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return "text direction control"
	case r >= 0x200B && r <= 0x200D, r == 0x2060, r == 0xFEFF:
		return "zero-width character"
	case unicode.IsControl(r):
		return "control character"
	case r == '\u2028' || r == '\u2029':
		return "line break"
	}
	return "invisible format character"
}
