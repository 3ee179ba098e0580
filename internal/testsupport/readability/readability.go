// Package readability scores English text with the Flesch Reading Ease
// formula,
//
//	206.835 − 1.015 × (words / sentences) − 84.6 × (syllables / words),
//
// and the Flesch–Kincaid grade level,
//
//	0.39 × (words / sentences) + 11.8 × (syllables / words) − 15.59.
//
// Candor's tests use it to hold the plain-language privacy labels and
// pages the hub writes to a Reading Ease of at least [PlainEnglish] (60,
// "plain English": about what a 13 to 15 year old reads easily); only
// tests import it. It serves clause 2A of the IoT Good Practice paper
// (usability: people can only consent to, and hold to account, what they
// can read) and clause 4 (education: the labels teach what a device tells
// about a home, so they must be written for everyone). The package has no
// dependencies; it is a careful heuristic, not a dictionary.
//
// # Words
//
// A word is a run of letters (any script) and digits. Inside a word,
// apostrophes join letters ("don't", "O'Brien", "device's"); so do
// hyphens: a hyphenated compound such as "well-known" or "opt-in" is one
// word, whose syllables are those of its parts added up ("well-known" is
// one word of 2 syllables), as in Flesch's own counting rules and most
// readability tools. Other punctuation separates words ("and/or" is two
// words) and symbols are ignored ("20%" is the word "20").
//
// A number is one word, with one syllable per group of digits: "2030" is
// 1, "21.5" and "10:30" are 2, "1,000" is 2, the date "2030-12-31" is 3.
// Inside a number '.', ',', ':', '/' and '-' join digits. This under-counts
// how numbers are read aloud ("twenty thirty"), on purpose: dates, times and
// durations are familiar to every reader, and the labels need them; the
// score is about the wording around them. Letters stuck to a number do not
// add syllables ("24h", "3rd", "IPv6" are 1).
//
// A web address ("https://…", "www.…"), an e-mail address
// ("privacy@candor.example") or a dotted name ("candor.local",
// "labels.json") is one word of one syllable: labels must show where to
// write, and a reader does not sound an address out.
//
// An initialism with dots ("e.g.", "i.e.", "U.S.") is one word with one
// syllable per letter; an acronym in capitals with no vowel ("GDPR", "TV",
// "MQTT") is spelt out too ('W' counts 3). Other acronyms ("NASA", "USB")
// are read as words. Flesch's rules count every figure and abbreviation as
// one syllable; counting a little more here nudges a label to spell things
// out, which is what its readers need.
//
// # Sentences
//
// A sentence ends at '.', '!' or '?' (and '…', "…!", "?!" and the like, each
// run counting once) after a word, at a paragraph break, and at the end of a
// list item or heading line even without punctuation. A '.' does not end a
// sentence inside a number ("21.5"), an address, or after the abbreviations
// "e.g.", "i.e.", "cf.", "vs.", "viz.", "Mr.", "Mrs.", "Ms.", "Dr.",
// "Prof.", "approx.", "incl." and "esp.", nor after "No." before a number.
// After "etc.", "Inc.", "Ltd.", "Co.", "Jr.", "Sr.", "St.", a dotted
// initialism ("a.m.", "U.S.") or an ellipsis it ends the sentence only when
// the next word starts with a capital letter. A stop followed by ',', ';' or
// ':' ("e.g.,") never ends one.
//
// Text is read line by line. A blank line, or one with no letter or digit
// such as the "=====" under a heading, ends the sentence. So does the end
// of a list item (a line starting with "- ", "* ", "+ ", "• ", "1. ", "1) ",
// "a) " or "(a) "; its wrapped continuation lines must be indented deeper
// than its marker), of a Markdown heading ("# …"), and of a short line (at
// most 8 words) that starts a paragraph, has no final punctuation and is
// followed by a line starting with a capital letter: an unmarked heading, or
// a line such as "Kept for: 30 days". Any other line break is a space, so
// wrapped paragraphs read as running text. Text with no sentence
// terminator and no such break is one sentence.
//
// # Syllables
//
// [Syllables] counts the vowel groups of a word ('y' is a vowel except at
// the start of a word and between vowels) and corrects them: a final 'e' is
// silent ("store", "device") but not in "-le" or "-re" after a consonant
// ("table", "acre"); "-es" and "-ed" are silent ("makes", "stored") except
// after a hissing sound or 't'/'d' ("changes", "wanted"); a silent 'e'
// before "-ly", "-ment", "-ful", "-less" and "-ness" is dropped
// ("management"); vowel pairs that are spoken apart are split ("video",
// "area", "client", "quiet", "being", "actual", but not "social" or
// "patient"); "-ism" and "-thm" gain a syllable, "-ically" and a silent
// "-gue" or "-que" lose one ("league", "unique"); common compounds are
// counted by their halves ("sometimes", "firewall"); a letter with a
// diaeresis starts a new syllable ("naïve") and an accented 'e' is never
// silent ("café"). A small table fixes frequent words the rules get wrong
// ("business", "people"), and every word counts at least 1.
//
// Counts follow the CMU Pronouncing Dictionary. Where it lists two
// pronunciations the everyday one is used: "every" 2, "hour", "our" and
// "fire" 1, "temperature" 4, "camera" 3. "-ire" is one syllable
// throughout, as dictionaries hyphenate it ("fire", "en-tire",
// "de-sired"), where CMU often counts one more. Words in other scripts
// count 1 each, and text without spaces between words (Chinese, Japanese)
// is one word.
//
// # Scores
//
// Text with no word scores 0 (Ease and Grade), never NaN or infinity.
// Scores are not clamped: one-syllable words in short sentences score above
// 100 ("The cat sat on the mat." is 116.1; the ceiling is 121.22) and dense
// legal prose can score below 0.
package readability

// PlainEnglish is the lowest Reading Ease a privacy label may have.
const PlainEnglish = 60.0

// Result holds the counts of a text and its Flesch Reading Ease.
type Result struct {
	Words, Sentences, Syllables int
	// Ease is the Flesch Reading Ease; 0 when there is no word.
	Ease float64
}

// Score counts the words, sentences and syllables of text and computes its
// Flesch Reading Ease.
func Score(text string) Result {
	c := count(text)
	r := Result{Words: c.words, Sentences: c.sentences, Syllables: c.syllables}
	if r.Words > 0 && r.Sentences > 0 {
		r.Ease = 206.835 - 1.015*r.wordsPerSentence() - 84.6*r.syllablesPerWord()
	}
	return r
}

// Ease returns the Flesch Reading Ease of text: higher is easier; 60 to 70
// is plain English, below 30 is very hard. It is 0 for text with no word.
func Ease(text string) float64 { return Score(text).Ease }

// Grade returns the Flesch–Kincaid grade level of text: roughly the years
// of schooling needed to understand it. It is 0 for text with no word.
func Grade(text string) float64 { return Score(text).Grade() }

// Grade returns the Flesch–Kincaid grade level for the counts in r, 0 when
// there is no word.
func (r Result) Grade() float64 {
	if r.Words <= 0 || r.Sentences <= 0 {
		return 0
	}
	return 0.39*r.wordsPerSentence() + 11.8*r.syllablesPerWord() - 15.59
}

func (r Result) wordsPerSentence() float64 { return float64(r.Words) / float64(r.Sentences) }
func (r Result) syllablesPerWord() float64 { return float64(r.Syllables) / float64(r.Words) }
