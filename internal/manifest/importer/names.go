package importer

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

const maxName = 64 // the manifest's limit on stream and field names

// sanitize turns a name from the source into one a manifest accepts:
// [a-z][a-z0-9_]*, at most 64 characters. Accents are dropped (Umidità →
// umidita), camelCase is split (sensorBedroomT → sensor_bedroom_t), every
// other character becomes an underscore, and runs of underscores collapse.
// A name that does not start with a letter gets prefix (which must). It
// returns "" when nothing is left.
func sanitize(s, prefix string) string {
	var b strings.Builder
	prevLower := false
	under := false
	for _, r := range norm.NFD.String(fold.Replace(s)) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			prevLower = r >= 'a' && r <= 'z'
		case r >= 'A' && r <= 'Z':
			if (under || prevLower) && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r + ('a' - 'A'))
			prevLower = false
		default:
			under = true
			prevLower = false
		}
		if b.Len() > 2*maxName {
			break
		}
	}
	out := b.String()
	if out == "" {
		return ""
	}
	if out[0] < 'a' || out[0] > 'z' {
		out = prefix + out
	}
	if len(out) > maxName {
		out = strings.TrimRight(out[:maxName], "_")
	}
	return out
}

// fold spells out letters that do not decompose into a base letter and an
// accent.
var fold = strings.NewReplacer("ß", "ss", "ẞ", "SS", "æ", "ae", "Æ", "AE", "ø", "o", "Ø", "O", "œ", "oe", "Œ", "OE",
	"ł", "l", "Ł", "L", "đ", "d", "Đ", "D", "þ", "th", "Þ", "TH", "ı", "i")

// names hands out unique names.
type names map[string]bool

// take returns name, or name_2, name_3, … if it is taken, within the length
// limit, and marks the result taken.
func (n names) take(name string) string {
	if !n[name] {
		n[name] = true
		return name
	}
	for i := 2; ; i++ {
		suffix := "_" + strconv.Itoa(i)
		base := name
		if len(base)+len(suffix) > maxName {
			base = strings.TrimRight(base[:maxName-len(suffix)], "_")
		}
		if c := base + suffix; !n[c] {
			n[c] = true
			return c
		}
	}
}

// clip shortens text from the source to at most n runes, so a hostile or
// careless payload cannot blow up the document.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// quote renders a source string for a description.
func quote(s string) string {
	return strconv.Quote(clip(s, 200))
}

// titleCase turns a snake_case name into words: "carbon_dioxide" →
// "Carbon dioxide".
func titleCase(s string) string {
	s = strings.ReplaceAll(s, "_", " ")
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[size:]
}
