package readability

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// counter accumulates the counts of one text.
type counter struct {
	words, sentences, syllables int
	open                        bool // the current sentence has a word
}

func (c *counter) word(syllables int) {
	c.words++
	c.syllables += syllables
	c.open = true
}

// end closes the current sentence, if it has a word.
func (c *counter) end() {
	if c.open {
		c.sentences++
		c.open = false
	}
}

// count scans text.
func count(text string) counter {
	var c counter
	forEachBlock(text, func(block string) {
		scanBlock(&c, block)
		c.end()
	})
	return c
}

// Character classes.

func isAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

func isHyphen(r rune) bool { return r == '-' || r == '\u2010' || r == '\u2011' }

func isApostrophe(r rune) bool { return r == '\'' || r == '\u2019' || r == '\u02BC' }

// isSpace separates words: Unicode white space and the zero-width space.
func isSpace(r rune) bool { return unicode.IsSpace(r) || r == '\u200B' }

// Lines and blocks.

type lineKind int

const (
	lBlank   lineKind = iota // no letter or digit: "", "-----", "***"
	lPlain                   // ordinary text
	lBullet                  // a list item: "- ", "* ", "• ", "1. ", "a) "
	lHeading                 // a Markdown heading: "# ", "## "
)

type line struct {
	kind   lineKind
	indent int    // columns of leading white space (a tab counts 4)
	text   string // without indentation, list marker or heading marks
}

// splitLines splits text at \n, \r\n, \r, U+0085, U+2028 and U+2029; a
// paragraph separator U+2029 also makes a blank line.
func splitLines(text string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029', '\v', '\f':
			lines = append(lines, text[start:i])
			next := i + size
			if r == '\r' && next < len(text) && text[next] == '\n' {
				next++
			}
			if r == '\u2029' {
				lines = append(lines, "")
			}
			i, start = next, next
		default:
			i += size
		}
	}
	return append(lines, text[start:])
}

// bulletMarks start a list item when followed by white space; those in
// tightBullets also when followed directly by the item.
const (
	bulletMarks  = "-*+•‣◦▪▫·–—⁃○●■□►▶➢➤✓✔→"
	tightBullets = "•‣◦▪▫⁃○●■□►▶➢➤✓✔"
)

func classify(raw string) line {
	indent := 0
	s := raw
	for s != "" {
		r, size := utf8.DecodeRuneInString(s)
		if r == '\t' {
			indent += 4
		} else if isSpace(r) {
			indent++
		} else {
			break
		}
		s = s[size:]
	}
	l := line{kind: lPlain, indent: indent, text: s}
	if rest, ok := cutListMarker(s); ok {
		l.kind, l.text = lBullet, rest
	} else if rest, ok := cutHeadingMarks(s); ok {
		l.kind, l.text = lHeading, rest
	}
	if strings.IndexFunc(l.text, isAlnum) < 0 {
		l.kind = lBlank
	}
	return l
}

// cutListMarker strips a list marker from the start of s: a bullet
// character, or a number or a single letter followed by '.' or ')', or one
// in parentheses, then white space.
func cutListMarker(s string) (string, bool) {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s, false
	}
	if strings.ContainsRune(bulletMarks, r) {
		rest := s[size:]
		if rest == "" {
			return "", true
		}
		next, _ := utf8.DecodeRuneInString(rest)
		if isSpace(next) || strings.ContainsRune(tightBullets, r) {
			return rest, true
		}
		return s, false
	}
	i := 0
	paren := s[0] == '('
	if paren {
		i++
	}
	j := i
	for j < len(s) && j-i < 3 && '0' <= s[j] && s[j] <= '9' {
		j++
	}
	if j == i && j < len(s) && (('a' <= s[j] && s[j] <= 'z') || ('A' <= s[j] && s[j] <= 'Z')) {
		j++ // a single letter: "a)", "(b)"
		if !paren && j < len(s) && s[j] == '.' {
			return s, false // "A. Smith" is a name, not a list item
		}
	}
	if j == i || j >= len(s) {
		return s, false
	}
	switch {
	case paren && s[j] == ')':
	case !paren && (s[j] == '.' || s[j] == ')'):
	default:
		return s, false
	}
	rest := s[j+1:]
	next, _ := utf8.DecodeRuneInString(rest)
	if rest != "" && !isSpace(next) {
		return s, false
	}
	return rest, true
}

// cutHeadingMarks strips the '#' marks of a Markdown heading.
func cutHeadingMarks(s string) (string, bool) {
	rest := strings.TrimLeft(s, "#")
	if len(rest) == len(s) || len(s)-len(rest) > 6 {
		return s, false
	}
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return s, false
	}
	return rest, true
}

// forEachBlock cuts text into blocks that no sentence crosses and calls f
// on each, with its lines joined by spaces. A block ends
//   - at a blank line (or a line with no letter or digit, such as the
//     "=====" under a heading);
//   - after a heading line ("# Data") and after a list item ("- Camera"),
//     whose wrapped continuation lines are indented deeper than its marker;
//   - before a list item or a heading;
//   - after a short line (at most shortLine words) that starts a block, does
//     not end in punctuation and is followed by a line that starts with a
//     capital letter: an unmarked heading or a "Kept for: 30 days" line.
//
// Other line breaks, as in wrapped paragraphs, are just spaces.
func forEachBlock(text string, f func(string)) {
	raw := splitLines(text)
	lines := make([]line, len(raw))
	for i, r := range raw {
		lines[i] = classify(r)
	}
	var b strings.Builder
	inBlock, bullet, bulletIndent := false, false, 0
	flush := func() {
		if inBlock {
			f(b.String())
		}
		b.Reset()
		inBlock, bullet = false, false
	}
	for i, l := range lines {
		if l.kind == lBlank {
			flush()
			continue
		}
		if l.kind != lPlain {
			flush()
		}
		starts := !inBlock
		if starts {
			inBlock = true
			bullet, bulletIndent = l.kind == lBullet, l.indent
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(l.text)

		var brk bool
		switch {
		case l.kind == lHeading:
			brk = true
		case i+1 == len(lines) || lines[i+1].kind != lPlain:
			brk = true
		case bullet:
			brk = lines[i+1].indent <= bulletIndent
		case starts:
			brk = isShortHeading(l.text, lines[i+1].text)
		}
		if brk {
			flush()
		}
	}
	flush()
}

// shortLine is the most words a line without final punctuation may have to
// be taken for a heading when the next line starts with a capital.
const shortLine = 8

func isShortHeading(text, next string) bool {
	text = strings.TrimRightFunc(text, isSpace)
	last, _ := utf8.DecodeLastRuneInString(text)
	if !isAlnum(last) && !strings.ContainsRune(")]\"'’”»", last) {
		return false
	}
	words := 0
	for _, f := range strings.FieldsFunc(text, isSpace) {
		if strings.IndexFunc(f, isAlnum) >= 0 {
			words++
		}
	}
	if words > shortLine {
		return false
	}
	i := strings.IndexFunc(next, isAlnum)
	if i < 0 {
		return false
	}
	r, _ := utf8.DecodeRuneInString(next[i:])
	return unicode.IsUpper(r)
}

// Words and sentences within a block.

// nonFinal are abbreviations that never end a sentence, lower case and
// without their final '.'.
var nonFinal = map[string]bool{
	"e.g": true, "i.e": true, "eg": true, "cf": true, "vs": true, "viz": true,
	"mr": true, "mrs": true, "ms": true, "dr": true, "prof": true,
	"approx": true, "incl": true, "esp": true,
}

// maybeFinal are abbreviations that end a sentence only when the next word
// starts with a capital letter (or nothing follows): "etc.", "a.m.", "Ltd.".
// Every dotted initialism ("U.S.") is treated the same way.
var maybeFinal = map[string]bool{
	"etc": true, "inc": true, "ltd": true, "co": true, "jr": true, "sr": true,
	"st": true,
}

// scanBlock counts the words and sentence ends of one block.
func scanBlock(c *counter, block string) {
	chunks := strings.FieldsFunc(block, isSpace)
	// next[k] is the first letter or digit in chunks[k:], "" if none.
	next := make([]string, len(chunks)+1)
	for k := len(chunks) - 1; k >= 0; k-- {
		if i := strings.IndexFunc(chunks[k], isAlnum); i >= 0 {
			next[k] = chunks[k][i:]
		} else {
			next[k] = next[k+1]
		}
	}
	for k, chunk := range chunks {
		if strings.IndexFunc(chunk, isFormat) >= 0 {
			chunk = dropFormat(chunk)
		}
		start := strings.IndexFunc(chunk, isAlnum)
		if start < 0 {
			// Punctuation on its own: "?", "...", "—".
			switch terminal(chunk) {
			case strong, period:
				c.end()
			case ellipsis:
				if nextIsCapital(next[k+1]) {
					c.end()
				}
			}
			continue
		}
		end := strings.LastIndexFunc(chunk, isAlnum)
		_, size := utf8.DecodeRuneInString(chunk[end:])
		end += size
		core, trail := chunk[start:end], chunk[end:]

		last := ""
		if isAddress(core) {
			c.word(1)
			last = "@"
		} else {
			last = scanCore(c, core)
		}
		switch terminal(trail) {
		case strong:
			c.end()
		case ellipsis:
			if nextIsCapital(next[k+1]) {
				c.end()
			}
		case period:
			if endsSentence(last, next[k+1]) {
				c.end()
			}
		}
	}
}

type termKind int

const (
	none     termKind = iota
	period            // one '.'
	ellipsis          // "..", "...", "…"
	strong            // '!' or '?', perhaps with dots
)

// terminal says how the punctuation s, found after a word, ends a
// sentence. Punctuation after the stop (",", ";", ":") means the dot was
// not one: "e.g.,", "etc.;".
func terminal(s string) termKind {
	dots, strongs := 0, 0
	for _, r := range s {
		switch r {
		case '.':
			dots++
		case '…':
			dots += 3
		case '!', '?', '‽', '。', '！', '？':
			strongs++
		case ',', ';', ':':
			dots, strongs = 0, 0
		}
	}
	switch {
	case strongs > 0:
		return strong
	case dots == 1:
		return period
	case dots > 1:
		return ellipsis
	}
	return none
}

// endsSentence decides whether a '.' after the word last ends the sentence;
// next is the text from the next letter or digit on ("" if none).
func endsSentence(last, next string) bool {
	lw := strings.ToLower(last)
	switch {
	case nonFinal[lw]:
		return false
	case maybeFinal[lw] || isInitialism(lw):
		return nextIsCapital(next)
	case lw == "no" || lw == "nos":
		// "No. 5" is a number sign; "The answer is no." ends a sentence.
		r, _ := utf8.DecodeRuneInString(next)
		return !unicode.IsNumber(r)
	}
	return true
}

// nextIsCapital reports whether next, the text from the letter or digit
// after a stop, starts with a capital letter or is empty (the block ends).
func nextIsCapital(next string) bool {
	if next == "" {
		return true
	}
	r, _ := utf8.DecodeRuneInString(next)
	return unicode.IsUpper(r) || unicode.IsTitle(r)
}

// isInitialism reports whether s is single letters joined by dots: "e.g",
// "u.s", "a.m".
func isInitialism(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if utf8.RuneCountInString(part) != 1 {
			return false
		}
		r, _ := utf8.DecodeRuneInString(part)
		if !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

// isFormat reports an invisible formatting character (soft hyphen, zero-width
// joiner, direction marks): it is dropped, so it never splits a word.
func isFormat(r rune) bool { return r != '\u200B' && unicode.Is(unicode.Cf, r) }

func dropFormat(s string) string {
	return strings.Map(func(r rune) rune {
		if isFormat(r) {
			return -1
		}
		return r
	}, s)
}

// isAddress reports whether core (a chunk without its outer punctuation) is
// a web address, an e-mail address or a domain or file name: it counts as
// one word of one syllable.
func isAddress(core string) bool {
	if strings.Contains(core, "://") {
		return true
	}
	if len(core) > 4 && strings.EqualFold(core[:4], "www.") {
		return true
	}
	if i := strings.IndexByte(core, '@'); i > 0 {
		before, _ := utf8.DecodeLastRuneInString(core[:i])
		after, _ := utf8.DecodeRuneInString(core[i+1:])
		if isAlnum(before) && isAlnum(after) {
			return true
		}
	}
	// "candor.example", "labels.json": a dot between a letter or digit and a
	// lower-case letter, in something that is neither a number nor an
	// initialism.
	if isInitialism(strings.ToLower(core)) {
		return false
	}
	for i := 1; i < len(core)-1; i++ {
		if core[i] != '.' {
			continue
		}
		before, _ := utf8.DecodeLastRuneInString(core[:i])
		after, _ := utf8.DecodeRuneInString(core[i+1:])
		if isAlnum(before) && unicode.IsLower(after) {
			return true
		}
	}
	return false
}

// scanCore counts the words in core, which starts and ends with a letter or
// digit, and returns the last word. Inside it, '-' and apostrophes join
// letters ("well-known", "don't"), '.', ',', ':' and '/' join digits
// ("21.5", "1,000", "10:30", "31/12/2030"), and '.' joins single letters
// ("e.g"). Any other character separates words, and a '.', '!' or '?'
// between words ends a sentence ("stored.It").
func scanCore(c *counter, core string) string {
	last := ""
	i := 0
	for i < len(core) {
		r, _ := utf8.DecodeRuneInString(core[i:])
		if !isAlnum(r) {
			// A run of punctuation between two words.
			j := i
			for j < len(core) {
				r, size := utf8.DecodeRuneInString(core[j:])
				if isAlnum(r) {
					break
				}
				j += size
			}
			switch terminal(core[i:j]) {
			case strong, period:
				c.end()
			case ellipsis:
				if nextIsCapital(core[j:]) {
					c.end()
				}
			}
			i = j
			continue
		}
		j := tokenEnd(core, i)
		last = core[i:j]
		c.word(tokenSyllables(last))
		i = j
	}
	return last
}

// tokenEnd returns the end of the token that starts at core[i].
func tokenEnd(core string, i int) int {
	j := i
	segStart := i // start of the current dot-separated segment
	for j < len(core) {
		r, size := utf8.DecodeRuneInString(core[j:])
		if isAlnum(r) {
			j += size
			continue
		}
		// r is a possible joiner between core[:j] and core[j+size:].
		prev, _ := utf8.DecodeLastRuneInString(core[:j])
		next, nsize := utf8.DecodeRuneInString(core[j+size:])
		if j+size >= len(core) || !isAlnum(next) {
			break
		}
		switch {
		case isHyphen(r), isApostrophe(r):
			// joins letters and digits alike
		case (r == '.' || r == ',' || r == ':' || r == '/') && unicode.IsNumber(prev) && unicode.IsNumber(next):
		case r == '.' && unicode.IsLetter(prev) && unicode.IsLetter(next) &&
			utf8.RuneCountInString(core[segStart:j]) == 1 && singleLetterNext(core[j+size+nsize:]):
		default:
			return j
		}
		j += size
		if r == '.' {
			segStart = j
		}
	}
	return j
}

// singleLetterNext reports whether the letter just read is a segment of
// its own: what follows it is the end or not a letter.
func singleLetterNext(after string) bool {
	if after == "" {
		return true
	}
	r, _ := utf8.DecodeRuneInString(after)
	return !unicode.IsLetter(r)
}
