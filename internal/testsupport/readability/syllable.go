package readability

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// exceptions holds the syllable counts of frequent words that the
// vowel-group heuristic gets wrong, of words where the CMU Pronouncing
// Dictionary lists more than one count and we pick one, and of a few words
// the heuristic only gets right through a special rule. Keys are lower case.
// Plurals, possessives and "-ly" adverbs of an entry ("ideas",
// "businesses", "people's", "naively") are derived by [stemLookup].
//
// Keep this table small: it is for frequent words, above all the vocabulary
// of the hub's privacy labels. Every entry must be in
// testdata/syllables.tsv with the same count (the tests check).
var exceptions = map[string]int{
	// Choices where the CMU dictionary lists two counts: the everyday
	// pronunciation, written down so that no change to the rules moves it.
	"every":       2, // CMU 3 (EH1 V ER0 IY0) and 2 (EH1 V R IY0)
	"hour":        1, // CMU 2 (AW1 ER0) and 1 (AW1 R)
	"our":         1, // CMU 2 and 1
	"fire":        1, // CMU 2 and 1; "-ire" is one syllable throughout
	"temperature": 4, // CMU 3 and 4
	"camera":      3, // CMU 3 and 2
	"interesting": 3, // CMU 3 and 4

	// Frequent words with vowels spoken apart: the rules get them right,
	// the table pins them.
	"area":    3,
	"idea":    3,
	"create":  2,
	"science": 2,
	"quiet":   2,
	"being":   2,

	// Words the rules get wrong.
	"business":  2, // the 'i' is silent
	"people":    2, // "eo" is one vowel here
	"naive":     2, // "ai" is two vowels here (and see "naïve")
	"recipe":    3, // the final 'e' is spoken
	"maybe":     2, // may-be
	"evening":   2, // eve-ning
	"element":   3, // el-e-ment
	"elements":  3,
	"embed":     2, // not the "-ed" ending
	"really":    2, // not re-ally
	"wednesday": 2,
	"iot":       3, // spoken I-o-T
}

// Syllables estimates the number of syllables in one word as [Score] counts
// them. word should be a single token: letters with optional internal
// apostrophes and hyphens, a number, an initialism such as "e.g." or an
// address; surrounding punctuation is ignored. It returns 0 when word holds
// no letter or digit, and at least 1 otherwise.
func Syllables(word string) int {
	word = strings.TrimFunc(word, func(r rune) bool { return !isAlnum(r) })
	if word == "" {
		return 0
	}
	if isAddress(word) {
		return 1
	}
	return tokenSyllables(word)
}

// tokenSyllables counts the syllables of a token made by the tokeniser: a run
// of letters, digits and combining marks with internal joiners.
func tokenSyllables(tok string) int {
	hasDigit, hasDot := false, false
	for _, r := range tok {
		if unicode.IsNumber(r) {
			hasDigit = true
		} else if r == '.' {
			hasDot = true
		}
	}
	if hasDot && !hasDigit {
		// An initialism such as "e.g." or "U.S.": read letter by letter.
		return letterNames(tok)
	}
	n := 0
	for tok != "" {
		part := tok
		if i := strings.IndexFunc(tok, isHyphen); i >= 0 {
			_, size := utf8.DecodeRuneInString(tok[i:])
			part, tok = tok[:i], tok[i+size:]
		} else {
			tok = ""
		}
		switch {
		case part == "":
		case hasDigit:
			if strings.IndexFunc(part, unicode.IsNumber) >= 0 {
				n += digitGroups(part)
				break
			}
			fallthrough
		default:
			n += wordSyllables(part)
		}
	}
	if n == 0 {
		n = 1
	}
	return n
}

// digitGroups counts the runs of digits in s: "2030" is 1, "21.5" is 2,
// "24h" is 1. It is at least 1.
func digitGroups(s string) int {
	n, in := 0, false
	for _, r := range s {
		d := unicode.IsNumber(r)
		if d && !in {
			n++
		}
		in = d
	}
	return max(n, 1)
}

// letterNames counts the syllables of s spelt out letter by letter: one per
// letter, three for 'w' ("double-u").
func letterNames(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r == 'w' || r == 'W':
			n += 3
		case unicode.IsLetter(r):
			n++
		}
	}
	return max(n, 1)
}

// wordSyllables counts the syllables of one word made of letters and
// apostrophes (no hyphen, no digit).
func wordSyllables(w string) int {
	if isSpeltOut(w) {
		return letterNames(w)
	}
	lw := strings.Map(func(r rune) rune {
		if isApostrophe(r) {
			return '\''
		}
		return unicode.ToLower(r)
	}, w)
	if n, ok := stemLookup(lw); ok {
		return n
	}
	if i := strings.IndexByte(lw, '\''); i >= 0 {
		return contraction(lw)
	}
	return englishSyllables(lw)
}

// isSpeltOut reports whether w is an acronym read letter by letter: two or
// more letters, all upper case, with no vowel letter ("GDPR", "TV", "MQTT").
// Acronyms with a vowel ("NASA", "USB") go through the ordinary heuristic.
func isSpeltOut(w string) bool {
	n := 0
	for _, r := range w {
		if !unicode.IsUpper(r) || strings.ContainsRune("AEIOUY", r) {
			return false
		}
		n++
	}
	return n >= 2
}

// stemLookup finds lw in the exception table, directly or as the plural or
// possessive of an entry.
func stemLookup(lw string) (int, bool) {
	if n, ok := exceptions[lw]; ok {
		return n, true
	}
	for _, suffix := range []string{"'s", "s'", "s", "es", "ly"} {
		stem, ok := strings.CutSuffix(lw, suffix)
		if !ok || stem == "" {
			continue
		}
		n, ok := exceptions[stem]
		if !ok {
			continue
		}
		if suffix == "es" && !sibilantEnd(stem) {
			continue
		}
		if suffix == "ly" || (suffix != "s'" && sibilantEnd(stem)) {
			n++
		}
		return n, true
	}
	return 0, false
}

// sibilantEnd reports whether a word ends in a hissing sound, after which a
// plural or possessive "s" adds a syllable: "devices", "business's".
func sibilantEnd(w string) bool {
	for _, s := range []string{"s", "z", "x", "ch", "sh", "ce", "ge", "se", "ze"} {
		if strings.HasSuffix(w, s) {
			return true
		}
	}
	return false
}

// contraction counts a word with an apostrophe: "don't", "it's",
// "recipient's", "you're", "o'clock".
func contraction(lw string) int {
	if stem, ok := strings.CutSuffix(lw, "n't"); ok && stem != "" && !strings.Contains(stem, "'") {
		n := englishSyllables(stem)
		// "n't" is a syllable of its own after a consonant or a silent 'e'
		// ("didn't", "haven't"), not after a spoken vowel ("don't", "can't").
		if last := stem[len(stem)-1]; !strings.ContainsRune("aiouy", rune(last)) {
			n++
		}
		return n
	}
	if stem, ok := strings.CutSuffix(lw, "'s"); ok && stem != "" && !strings.Contains(stem, "'") {
		n := wordSyllables(stem)
		if sibilantEnd(stem) {
			n++
		}
		return n
	}
	for _, suffix := range []string{"'ll", "'re", "'ve", "'d", "'m"} {
		if stem, ok := strings.CutSuffix(lw, suffix); ok && stem != "" && !strings.Contains(stem, "'") {
			return wordSyllables(stem)
		}
	}
	return englishSyllables(strings.ReplaceAll(lw, "'", ""))
}

// compoundHeads are first halves of common compounds that end in a silent
// 'e' or otherwise confuse the heuristic when the word is read as a whole:
// "sometimes", "lifetime", "firewall", "wireless".
var compoundHeads = []string{
	"some", "every", "any", "home", "life", "time", "fire", "wire", "safe",
	"base", "note", "side", "name", "like", "where", "there", "here",
	"house", "care", "make", "take", "case", "whole", "one", "file",
	"pipe", "else", "code", "date", "type", "white", "more", "byte",
	"trade", "frame", "fore", "wide", "gate", "guide", "blue", "drive",
}

// headsByLetter groups compoundHeads by first letter.
var headsByLetter = func() (by [26][]string) {
	for _, h := range compoundHeads {
		by[h[0]-'a'] = append(by[h[0]-'a'], h)
	}
	return by
}()

// letters is a word prepared for the heuristic: lower-case ASCII letters,
// with accented Latin vowels reduced to their base letter and the accents
// that matter remembered.
type letters struct {
	s string
	// split marks a vowel written with a diaeresis ("naïve"): it starts a
	// new vowel group. nil when there is none.
	split []bool
	// spoken marks an 'e' with an accent ("café"): never silent. nil when
	// there is none.
	spoken []bool
}

func (l letters) isSplit(i int) bool  { return l.split != nil && l.split[i] }
func (l letters) isSpoken(i int) bool { return l.spoken != nil && l.spoken[i] }

// prepare turns a lower-case word into letters. Non-Latin letters become a
// neutral consonant, so a word in another script counts as 1 syllable.
func prepare(w string) letters {
	ascii := true
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			ascii = false
			break
		}
	}
	if ascii {
		return letters{s: w}
	}
	b := make([]byte, 0, len(w))
	split := make([]bool, 0, len(w))
	spoken := make([]bool, 0, len(w))
	add := func(c byte, sp, spk bool) {
		b = append(b, c)
		split = append(split, sp)
		spoken = append(spoken, spk)
	}
	for _, r := range w {
		if unicode.Is(unicode.Mn, r) {
			// A combining mark modifies the letter before it.
			if i := len(b) - 1; i >= 0 && isVowelByte(b[i]) {
				if r == '\u0308' {
					split[i] = true
				} else if b[i] == 'e' {
					spoken[i] = true
				}
			}
			continue
		}
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				add(byte(r), false, false)
			}
			continue
		}
		if !unicode.IsLetter(r) {
			continue
		}
		base, diaeresis, accent := foldLatin(r)
		add(base, diaeresis, accent && base == 'e')
	}
	return letters{s: string(b), split: split, spoken: spoken}
}

// foldLatin maps a lower-case non-ASCII letter to an ASCII letter, reporting
// whether it carried a diaeresis or another accent.
func foldLatin(r rune) (base byte, diaeresis, accent bool) {
	switch r {
	case 'ä':
		return 'a', true, true
	case 'ë':
		return 'e', true, true
	case 'ï':
		return 'i', true, true
	case 'ö':
		return 'o', true, true
	case 'ü':
		return 'u', true, true
	case 'ÿ':
		return 'y', true, true
	case 'à', 'á', 'â', 'ã', 'å', 'ā', 'ă', 'ą':
		return 'a', false, true
	case 'è', 'é', 'ê', 'ē', 'ĕ', 'ė', 'ę', 'ě':
		return 'e', false, true
	case 'ì', 'í', 'î', 'ĩ', 'ī', 'ĭ', 'į', 'ı':
		return 'i', false, true
	case 'ò', 'ó', 'ô', 'õ', 'ø', 'ō', 'ŏ', 'ő':
		return 'o', false, true
	case 'ù', 'ú', 'û', 'ũ', 'ū', 'ŭ', 'ů', 'ű', 'ų':
		return 'u', false, true
	case 'ý':
		return 'y', false, true
	case 'æ', 'œ':
		return 'e', false, false
	}
	return 'k', false, false
}

func isVowelByte(b byte) bool {
	switch b {
	case 'a', 'e', 'i', 'o', 'u', 'y':
		return true
	}
	return false
}

// englishSyllables is the heuristic proper, for a lower-case word without
// apostrophes or hyphens.
func englishSyllables(w string) int {
	if n, ok := exceptions[w]; ok {
		return n
	}
	// Compounds whose first half is a common word: count the halves apart.
	var heads []string
	if len(w) > 4 && 'a' <= w[0] && w[0] <= 'z' {
		heads = headsByLetter[w[0]-'a']
	}
	for _, head := range heads {
		rest, ok := strings.CutPrefix(w, head)
		if !ok || len(rest) < 2 || !strings.ContainsAny(rest, "aeiouy") {
			continue
		}
		if rest[0] == 'v' || rest[0] == 'n' || rest[0] == 'r' {
			continue // "wherever", "forever", "widening" are not compounds
		}
		if head == "one" && rest[0] != 's' {
			continue // only "oneself"
		}
		if head == "any" && rest != "one" && rest != "way" && rest != "where" && rest != "more" {
			continue
		}
		if head == "case" && rest[0] != 'w' && rest[0] != 'l' {
			continue // "casework", "caseload"; not "casein"
		}
		return simpleSyllables(head) + simpleSyllables(rest)
	}
	return heuristic(prepare(w))
}

// simpleSyllables is englishSyllables without looking for compounds.
func simpleSyllables(w string) int {
	if n, ok := exceptions[w]; ok {
		return n
	}
	return heuristic(prepare(w))
}

// heuristic counts vowel groups and corrects them for silent and split
// vowels.
func heuristic(l letters) int {
	w := l.s
	n := len(w)
	if n == 0 {
		return 1
	}
	var buf [64]bool
	var vowel []bool
	if n <= len(buf) {
		vowel = buf[:n]
	} else {
		vowel = make([]bool, n)
	}
	for i := 0; i < n; i++ {
		c := w[i]
		switch {
		case c == 'y':
			// 'y' is a consonant at the start of a word ("you", "yes") and
			// between two vowels ("beyond", "player"); a vowel otherwise
			// ("privacy", "system", "flying").
			prevV := i > 0 && vowel[i-1]
			nextV := i+1 < n && strings.IndexByte("aeiou", w[i+1]) >= 0
			vowel[i] = i > 0 && !(prevV && nextV)
		default:
			vowel[i] = isVowelByte(c)
		}
	}
	// Count maximal vowel groups, then add the vowel pairs inside a group
	// that are spoken as two syllables ("video", "area", "client").
	count := 0
	for i := 0; i < n; i++ {
		if !vowel[i] {
			continue
		}
		if i == 0 || !vowel[i-1] || l.isSplit(i) {
			count++
			continue
		}
		// "-ing" after a vowel is a syllable of its own: "being", "doing",
		// "flying", "seeing".
		if splitPair(w, i-1) || (w[i] == 'i' && endsING(w, i)) {
			count++
		}
	}
	if count == 0 {
		return 1
	}
	own := func(i int) bool { // w[i] is a vowel group of its own
		return i >= 0 && i < n && vowel[i] && (i == 0 || !vowel[i-1]) && (i+1 == n || !vowel[i+1])
	}
	cons := func(i int) bool { return i >= 0 && i < n && !vowel[i] }

	switch {
	case n >= 3 && w[n-1] == 'e' && own(n-1) && !l.isSpoken(n-1):
		// Silent final 'e' ("store", "device"), except the syllabic "-le"
		// and "-re" after a consonant ("table", "acre").
		if !syllabicLR(w, n-1, cons) && count > 1 {
			count--
		}
	case n >= 4 && strings.HasSuffix(w, "es") && own(n-2) && !l.isSpoken(n-2):
		// "-es" is silent ("makes", "updates") except after a hissing sound
		// ("devices", "changes", "boxes", "watches") or as "-les", "-res"
		// after a consonant ("tables").
		p := w[n-3]
		hiss := p == 's' || p == 'z' || p == 'x' || p == 'c' || p == 'g' ||
			strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes")
		if !hiss && !syllabicLR(w, n-2, cons) && count > 1 {
			count--
		}
	case n >= 4 && strings.HasSuffix(w, "ed") && own(n-2) && !l.isSpoken(n-2):
		// "-ed" is silent ("stored", "shared") except after 't' or 'd'
		// ("wanted", "added") or as "-led" after a consonant ("enabled").
		p := w[n-3]
		if p != 't' && p != 'd' && !syllabicLR(w, n-2, cons) && count > 1 {
			count--
		}
	}

	// A silent 'e' before a suffix: "lonely", "management", "useful",
	// "careless", "awareness".
	for _, sfx := range []string{"ly", "ment", "ments", "ful", "fully", "less", "ness"} {
		stemEnd := n - len(sfx) - 1 // index of the 'e' before the suffix
		if stemEnd < 2 || !strings.HasSuffix(w, sfx) || w[stemEnd] != 'e' {
			continue
		}
		if own(stemEnd) && !l.isSpoken(stemEnd) && !syllabicLR(w, stemEnd, cons) && count > 1 {
			count--
		}
		break
	}

	// "-ism", "-asm": the 'm' is syllabic.
	if (strings.HasSuffix(w, "sm") && n >= 4 && vowel[n-3]) ||
		(strings.HasSuffix(w, "sms") && n >= 5 && vowel[n-4]) {
		count++
	}
	// "-ically" is "-ic-ly": "automatically", "specifically".
	if strings.HasSuffix(w, "ically") && count > 2 {
		count--
	}
	// "-thm" is syllabic: "algorithm", "rhythm".
	if strings.HasSuffix(w, "thm") || strings.HasSuffix(w, "thms") {
		count++
	}
	// "-gue", "-que" after a vowel: the "ue" is silent ("league",
	// "unique", "techniques").
	for _, sfx := range []string{"gue", "que", "gues", "ques", "guely", "quely", "queness"} {
		if !strings.HasSuffix(w, sfx) {
			continue
		}
		k := n - len(sfx)
		if (sfx[0] == 'q' || (k > 0 && vowel[k-1])) && count > 1 {
			count--
		}
		break
	}
	return max(count, 1)
}

// endsING reports whether the 'i' at w[i] starts a final "-ing" or
// "-ings" after at least two letters.
func endsING(w string, i int) bool {
	n := len(w)
	switch {
	case i < 2:
		return false
	case i == n-3:
		return w[n-2] == 'n' && w[n-1] == 'g'
	case i == n-4:
		return w[n-3] == 'n' && w[n-2] == 'g' && w[n-1] == 's'
	}
	return false
}

// syllabicLR reports whether the 'e' at w[i] closes a syllabic "-le" or
// "-re" after a consonant: "table", "tables", "enabled", "acre", "centres".
// A doubled "ll" or "rr" does not count ("called", "controlled").
func syllabicLR(w string, i int, cons func(int) bool) bool {
	if i < 2 {
		return false
	}
	lr := w[i-1]
	if lr != 'l' && lr != 'r' {
		return false
	}
	return cons(i-2) && w[i-2] != lr && w[i-2] != 'w' && !(lr == 'r' && w[i-2] == 'h')
}

// splitPair reports whether the vowels w[j] and w[j+1], inside one vowel
// group, are spoken as two syllables.
func splitPair(w string, j int) bool {
	var prev, prev2 byte
	if j >= 1 {
		prev = w[j-1]
	}
	if j >= 2 {
		prev2 = w[j-2]
	}
	rest := w[j+2:]
	pair := w[j : j+2]

	// The prefix "pre-" before a vowel: "preempt", "preamble",
	// "preinstalled"; not "preach".
	if j == 2 && w[0] == 'p' && w[1] == 'r' && pair[0] == 'e' && !strings.HasPrefix(rest, "ch") {
		return true
	}
	switch pair {
	case "ia":
		// "media", "via", "trial", "material", "appreciate" but not
		// "social", "special", "initialize", "Christian", "Asia".
		if prev != 0 && strings.IndexByte("ctsgx", prev) >= 0 &&
			(rest == "" || rest[0] == 'l' || rest[0] == 'n') {
			return false
		}
		return true
	case "io":
		// "radio", "period", "various" but not "-tion", "-sion",
		// "religion", "million", "union", "opinion", "behavior".
		switch {
		case prev != 0 && strings.IndexByte("tscgxh", prev) >= 0:
			return false // also "fashion", "cushion"
		case prev == 'l' && (prev2 == 'l' || prev2 == 'i'):
			return false // "million", "pavilion"
		case prev == 'n' && strings.HasPrefix(rest, "n") && j >= 2:
			return false // "union", "opinion"
		case prev == 'v' && (strings.HasPrefix(rest, "r") || strings.HasPrefix(rest, "ur")):
			return false // "behavior", "behaviour"
		case prev == 'n' && prev2 == 'i' && strings.HasPrefix(rest, "r"):
			return false // "senior", "junior"
		}
		return true
	case "iu":
		return true // "medium", "premium"
	case "eo":
		// "video", "stereo", "theory", "geography" but not "surgeon",
		// "gorgeous".
		return !((prev == 'g' || prev == 'c') && j >= 2)
	case "ua":
		// "actual", "usual" but not "quality", "language".
		return prev != 'q' && prev != 'g'
	case "uo":
		return prev != 'q' // "continuous", "ambiguous"; not "quota"
	case "ue":
		// "fuel", "fluent", "duet" but not "issue", "values", "question".
		if prev == 'q' || prev == 'g' {
			return false
		}
		return rest != "" && strings.IndexByte("lntr", rest[0]) >= 0 // also "issuer"
	case "ui":
		// "fluid", "ruin", "genuine", "ambiguity" but not "build", "fruit",
		// "guide", "penguin".
		if rest == "ty" || rest == "ties" {
			return prev != 'q'
		}
		if prev == 'q' || prev == 'g' {
			return false
		}
		return strings.HasPrefix(rest, "d") || strings.HasPrefix(rest, "n")
	case "ie":
		// "client", "recipient", "experience", "science", "quiet",
		// "society", "easier", "earliest" but not "field", "friend",
		// "cities", "patient", "efficient", "convenient", "view".
		switch {
		case strings.HasPrefix(rest, "nt") || strings.HasPrefix(rest, "nc"):
			if prev == 'c' && !(j == 2 && prev2 == 's') {
				return false
			}
			return prev != 't' && prev != 'n' && prev != 's' // "transient"
		case strings.HasPrefix(rest, "t"):
			return true
		case rest == "r" || rest == "rs" || rest == "st":
			return isConsonant(prev) && j >= 2
		}
		return false
	case "ea":
		return splitEA(w, j, rest)
	case "eu":
		// "museum", "reuse".
		return rest == "m" || rest == "ms" || (j == 1 && prev == 'r')
	case "ei":
		// "reinstall", "reimburse", "reissue" but not "reign", "their".
		if j == 1 && prev == 'r' {
			for _, p := range []string{"ns", "nv", "nf", "nt", "mb", "mp", "ss"} {
				if strings.HasPrefix(rest, p) {
					return true
				}
			}
		}
		return false
	case "oe":
		// "poem", "poet", "coexist", "coerce" but not "does", "shoe".
		return strings.HasPrefix(rest, "m") || strings.HasPrefix(rest, "t") || (j == 1 && prev == 'c')
	case "oa":
		// "coalesce", "coalition" but not "coal", "coat".
		return j == 1 && prev == 'c' && len(rest) > 1 && rest[0] == 'l' && isPlainVowel(rest[1])
	case "ao":
		return true // "chaos"
	case "ai", "oi":
		// "mosaic", "heroic", "coincide".
		return rest == "c" || (pair == "oi" && j == 1 && prev == 'c' && strings.HasPrefix(rest, "nc"))
	case "oo":
		// "cooperate", "coordinate".
		return j == 1 && w[0] == 'c' && (strings.HasPrefix(rest, "pe") || strings.HasPrefix(rest, "rd"))
	}
	return false
}

// splitEA: "area", "idea", "linear", "Boolean", "create", "react",
// "reality" but not "each", "sea", "great", "ocean", "real", "ready".
func splitEA(w string, j int, rest string) bool {
	var prev, prev2 byte
	if j >= 1 {
		prev = w[j-1]
	}
	if j >= 2 {
		prev2 = w[j-2]
	}
	switch rest {
	case "", "s", "r", "rs", "n", "ns":
		if isConsonant(prev) && isPlainVowel(prev2) && !(prev == 'c' && rest != "" && rest[0] == 'n') {
			return true
		}
	}
	if prev == 'r' && prev2 == 'c' && strings.HasPrefix(rest, "t") && !strings.HasPrefix(rest, "tur") {
		return true // "create", "recreate"; not "creature"
	}
	if j == 1 && prev == 'r' {
		for _, p := range []string{"ct", "ss", "rr", "ll", "cq", "dj", "pp"} {
			if strings.HasPrefix(rest, p) {
				return true // "react", "reassign", "rearrange", "reapply"
			}
		}
		if len(rest) > 1 && rest[0] == 'l' && isPlainVowel(rest[1]) {
			return true
		}
	}
	return false
}

func isPlainVowel(b byte) bool {
	return b != 0 && strings.IndexByte("aeiou", b) >= 0
}

func isConsonant(b byte) bool {
	return b != 0 && !isPlainVowel(b) && b != 'y'
}
