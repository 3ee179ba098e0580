package readability

import (
	"bufio"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// cmuEntry is one line of testdata/syllables.tsv.
type cmuEntry struct {
	word  string
	count int
	exact bool // in a section marked "(must match exactly)"
}

// loadCMU reads testdata/syllables.tsv: word<TAB>count lines, '#' comments,
// and blank lines between sections. A section whose comment says "(must
// match exactly)" lists words the package must count exactly.
func loadCMU(t testing.TB) []cmuEntry {
	t.Helper()
	f, err := os.Open("testdata/syllables.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []cmuEntry
	exact := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			exact = false
			continue
		case strings.HasPrefix(line, "#"):
			if strings.Contains(line, "(must match exactly)") {
				exact = true
			}
			continue
		}
		word, count, ok := strings.Cut(line, "\t")
		c, err := strconv.Atoi(count)
		if !ok || err != nil || c < 1 || word == "" {
			t.Fatalf("syllables.tsv:%d: want word<TAB>count, got %q", n, line)
		}
		entries = append(entries, cmuEntry{word, c, exact})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestSyllablesCMU(t *testing.T) {
	entries := loadCMU(t)
	if len(entries) < 80 {
		t.Fatalf("syllables.tsv has %d words, want at least 80", len(entries))
	}
	seen := map[string]int{}
	right := 0
	for _, e := range entries {
		seen[e.word] = e.count
		got := Syllables(e.word)
		switch {
		case got == e.count:
			right++
		case e.exact:
			t.Errorf("Syllables(%q) = %d, want %d (must be exact)", e.word, got, e.count)
		default:
			t.Logf("miss: Syllables(%q) = %d, cmudict %d", e.word, got, e.count)
		}
	}
	acc := float64(right) / float64(len(entries))
	t.Logf("accuracy on syllables.tsv: %d/%d = %.1f%%", right, len(entries), 100*acc)
	if acc < 0.90 {
		t.Errorf("accuracy %.1f%%, want at least 90%%", 100*acc)
	}
	// Every entry of the exception table is in the list and exact.
	for w, n := range exceptions {
		want, ok := seen[w]
		if !ok {
			t.Errorf("exception %q is missing from syllables.tsv", w)
			continue
		}
		if n != want {
			t.Errorf("exceptions[%q] = %d, syllables.tsv says %d", w, n, want)
		}
		if got := Syllables(w); got != want {
			t.Errorf("Syllables(%q) = %d, want %d", w, got, want)
		}
	}
}

func TestSyllablesTokens(t *testing.T) {
	tests := []struct {
		word string
		want int
	}{
		// Inflections and derivations of table words.
		{"ideas", 3}, {"businesses", 3}, {"recipient's", 4}, {"naively", 3},
		{"everything", 3}, {"Everyone", 3}, {"hours", 1}, {"People", 2},
		// Case and apostrophes.
		{"DEVICE", 2}, {"Don’t", 1}, {"haven't", 2}, {"device's", 3},
		{"you're", 1}, {"o'clock", 2}, {"users'", 2},
		// Hyphenated compounds: the parts added up.
		{"well-known", 2}, {"opt-in", 2}, {"end-to-end", 3}, {"e-mail", 2},
		// Numbers: one syllable per group of digits.
		{"2030", 1}, {"21.5", 2}, {"2030-12-31", 3}, {"1,000", 2},
		{"10:30", 2}, {"24h", 1}, {"COVID-19", 3}, {"3rd", 1},
		// Initialisms and acronyms.
		{"e.g.", 2}, {"i.e.", 2}, {"U.S.", 2}, {"GDPR", 4}, {"TV", 2},
		{"WWW", 9}, {"MQTT", 4}, {"IoT", 3},
		// Accents and other scripts.
		{"naïve", 2}, {"café", 2}, {"résumé", 3}, {"Zürich", 2},
		{"cafe\u0301", 2}, {"Ελλάδα", 1}, {"日本語", 1},
		// Addresses.
		{"privacy@candor.example", 1}, {"https://candor.example/a-b", 1}, {"candor.local", 1},
		// Punctuation around the word is ignored; nothing left is 0.
		{"(privacy),", 3}, {"—", 0}, {"", 0}, {"...", 0},
	}
	for _, tt := range tests {
		if got := Syllables(tt.word); got != tt.want {
			t.Errorf("Syllables(%q) = %d, want %d", tt.word, got, tt.want)
		}
	}
}

func TestCounts(t *testing.T) {
	tests := []struct {
		name                        string
		text                        string
		words, sentences, syllables int // syllables -1: not checked
	}{
		{"empty", "", 0, 0, 0},
		{"blank", " \n\t\n  ", 0, 0, 0},
		{"punctuation only", "--- ... !!! ?", 0, 0, 0},
		{"no terminator", "the hub keeps your data", 5, 1, 6},
		{"one sentence", "The hub keeps your data.", 5, 1, 6},
		{"multiple spaces", "It   is \t  kept.", 3, 1, 3},
		// The temperature was 21.5 degrees: 1+4+1+2+2.
		{"decimal", "The temperature was 21.5 degrees.", 5, 1, 10},
		{"decimal at the end", "It is 21.5. It rose to 22.", 7, 2, -1},
		{"thousands and times", "It sent 1,000 readings by 10:30 today.", 7, 1, -1},
		{"date", "Updates until 2030-12-31.", 3, 1, 7},
		{"date with slashes", "Updates until 31/12/2030. Then none.", 5, 2, -1},
		{"e.g. and i.e.", "Use a hub, e.g. Candor, or a phone, i.e. an app. Then stop.", 13, 2, -1},
		{"e.g. before a capital", "Some devices, e.g. Alexa, listen.", 5, 1, -1},
		{"etc. mid-sentence", "Temperature, humidity etc. are stored.", 5, 1, -1},
		{"etc. at the end", "We keep temperature, humidity etc. Then we delete them.", 9, 2, -1},
		{"a.m. mid-sentence", "At 10:30 a.m. the hub wakes.", 6, 1, -1},
		{"initialisms", "It ships in the U.S. and the U.K. today. Then elsewhere.", 11, 2, -1},
		{"No. before a number", "No. 5 is kept. The answer is no. Fine.", 9, 3, -1},
		{"Dr.", "Ask Dr. Smith. She knows.", 5, 2, -1},
		{"ellipsis", "We wait... and then stop. Wait… Then go.", 8, 3, -1},
		{"strong stops", "It rains!!! Really?! Yes.", 4, 3, -1},
		{"stop inside quotes", `He said "stop." Then he left.`, 6, 2, -1},
		{"stop then comma", "Some streams, e.g., motion, are kept.", 6, 1, -1},
		{"missing space", "It is stored.It is shared.", 6, 2, -1},
		{"e-mail", "Write to privacy@candor.example today.", 4, 1, 5},
		// Write(1) to(1) [address](1) or(1) visit(2) [address](1).
		{"addresses", "Write to privacy@candor.example or visit https://candor.example/privacy?lang=en.", 6, 1, 7},
		{"www and domains", "See www.candor.example or candor.local for labels.json files.", 7, 1, -1},
		{"hyphens and apostrophes", "A well-known, opt-in feature isn't hard.", 6, 1, 10},
		{"slash", "Turn it on and/or off.", 6, 1, -1},
		{"symbols", "It uses 20% less energy ($5 a year).", 8, 1, -1},
		{"soft hyphen", "Your infor\u00ADmation stays here.", 4, 1, -1},
		{"zero-width space", "data\u200Bstays", 2, 1, -1},
		// Zürich(2) naïve(2) café(2) résumé(3) Ελλάδα(1).
		{"unicode letters", "Zürich naïve café résumé Ελλάδα.", 5, 1, 10},
		{"curly apostrophe", "Don’t worry, it’s fine.", 4, 1, 5},
		{"bullets", "We collect:\n- temperature\n- humidity\n- motion", 5, 4, -1},
		{"bullets with stops", "- Kept for 30 days.\n- Shared with nobody.", 7, 2, -1},
		{"other bullet marks", "* one\n+ two\n• three\n•four", 4, 4, -1},
		{"numbered list", "1. Collect\n2. Store\n3) Delete\n(4) Forget\na) Again", 5, 5, 9},
		{"wrapped bullet", "- Your choice: You can turn off each kind of data. The hub then drops it, but\n  the device still sends it.\n- Next item", 23, 3, -1},
		{"unindented line after bullet", "- Temperature\nis kept for a month.", 6, 2, -1},
		{"markdown heading", "## What it collects\nTemperature, every minute.", 6, 2, -1},
		{"setext heading", "Title\n=====\nBody text here.", 4, 2, -1},
		{"heading and blank line", "Battery level\n\nEvery minute the sensor reports.", 7, 2, -1},
		{"short lines", "Kept for: 30 days\nShared with: nobody\n", 7, 2, -1},
		{"wrapped paragraph", "The hub keeps your readings for one\nmonth and then deletes them.", 12, 1, -1},
		{"long wrapped line", "The hub keeps the readings from your thermostat for one month and\nThen deletes them.", 15, 1, -1},
		{"paragraphs without stops", "first part\n\nsecond part", 4, 2, -1},
		{"CRLF", "- a one\r\n- b two\r\n\r\nEnd", 5, 3, -1},
		{"paragraph separator", "one\u2029two", 2, 2, -1},
		{"stop alone", "Done . Next", 2, 2, -1},
		{"hyphen bullet needs a space", "-5 degrees tonight", 3, 1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Score(tt.text)
			if r.Words != tt.words || r.Sentences != tt.sentences ||
				(tt.syllables >= 0 && r.Syllables != tt.syllables) {
				t.Errorf("Score(%q) = %+v, want words %d, sentences %d, syllables %d",
					tt.text, r, tt.words, tt.sentences, tt.syllables)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	for _, text := range []string{"", "   ", "\n\n", "...", "— • —", "!!!"} {
		r := Score(text)
		if r != (Result{}) || Ease(text) != 0 || Grade(text) != 0 {
			t.Errorf("Score(%q) = %+v, Grade %v; want all zero", text, r, Grade(text))
		}
	}
}

func TestReferencePassages(t *testing.T) {
	tests := []struct {
		name                        string
		text                        string
		words, sentences, syllables int
		ease, grade                 float64 // published or computed by hand
	}{
		{
			// The usual one-syllable example: 6 words, 1 sentence, 6
			// syllables; 206.835 - 1.015*6 - 84.6*1 = 116.1 (above 100:
			// scores are not clamped).
			name: "cat", text: "The cat sat on the mat.",
			words: 6, sentences: 1, syllables: 6, ease: 116.1, grade: -1.45,
		},
		{
			// Wikipedia's example for both formulas: "26 syllables and 13
			// words", Reading Ease 24.4, grade 13.1.
			// The(1) Aus-tra-li-an(4) plat-y-pus(3) is(1) seem-ing-ly(3)
			// a(1) hy-brid(2) of(1) a(1) mam-mal(2) and(1) rep-til-i-an(4)
			// crea-ture(2).
			name: "platypus", text: "The Australian platypus is seemingly a hybrid of a mammal and reptilian creature.",
			words: 13, sentences: 1, syllables: 26, ease: 24.4, grade: 13.1,
		},
		{
			// Lincoln, the Gettysburg Address, first sentence, by hand:
			// Four score and se-ven years a-go our fa-thers brought forth
			// (10 words, 13 syllables) on this con-ti-nent a new na-tion
			// (6, 9) con-ceived in li-ber-ty (3, 6) and de-di-ca-ted to
			// the pro-po-si-tion (5, 11) that all men are cre-a-ted
			// e-qual (6, 9): 30 words, 48 syllables, 1 sentence;
			// 206.835 - 1.015*30 - 84.6*48/30 = 41.0; grade 0.39*30 +
			// 11.8*1.6 - 15.59 = 15.0.
			name: "Gettysburg",
			text: "Four score and seven years ago our fathers brought forth on this continent a new nation, " +
				"conceived in liberty, and dedicated to the proposition that all men are created equal.",
			words: 30, sentences: 1, syllables: 48, ease: 41.0, grade: 15.0,
		},
		{
			// Dr. Seuss, by hand: 8 + 6 words ("Sam-I-am" is one word of 3
			// syllables), 2 sentences, 8 + 8 syllables;
			// 206.835 - 1.015*7 - 84.6*16/14 = 103.0.
			name: "Green Eggs and Ham", text: "I do not like green eggs and ham. I do not like them, Sam-I-am.",
			words: 14, sentences: 2, syllables: 16, ease: 103.0, grade: 0.6,
		},
		{
			// Plain English as the labels should read, by hand:
			// Your ther-mo-stat mea-sures the tem-per-a-ture and hu-mid-i-ty
			// in each room (10 words, 19 syllables). It sends a read-ing to
			// the hub ev-ery five min-utes (10, 13). The hub us-es these
			// read-ings to con-trol the heat-ing (9, 13). It keeps them for
			// thir-ty days and then de-letes them (10, 12). No-bod-y out-side
			// your home re-ceives this in-for-ma-tion (7, 14). You can
			// switch off an-y sen-sor in the set-tings (9, 12).
			// 55 words, 6 sentences, 83 syllables;
			// 206.835 - 1.015*55/6 - 84.6*83/55 = 69.9, grade 5.8.
			name: "plain label",
			text: "Your thermostat measures the temperature and humidity in each room. " +
				"It sends a reading to the hub every five minutes. " +
				"The hub uses these readings to control the heating. " +
				"It keeps them for thirty days and then deletes them. " +
				"Nobody outside your home receives this information. " +
				"You can switch off any sensor in the settings.",
			words: 55, sentences: 6, syllables: 83, ease: 69.9, grade: 5.8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Score(tt.text)
			if r.Words != tt.words || r.Sentences != tt.sentences || r.Syllables != tt.syllables {
				t.Errorf("counts %+v, want words %d, sentences %d, syllables %d",
					r, tt.words, tt.sentences, tt.syllables)
			}
			if math.Abs(r.Ease-tt.ease) > 5 {
				t.Errorf("Ease = %.1f, want %.1f ± 5", r.Ease, tt.ease)
			}
			if g := r.Grade(); math.Abs(g-tt.grade) > 1 {
				t.Errorf("Grade = %.1f, want %.1f ± 1", g, tt.grade)
			}
			if Ease(tt.text) != r.Ease || Grade(tt.text) != r.Grade() {
				t.Errorf("Ease/Grade disagree with Score")
			}
		})
	}
}

func TestPlainAndDense(t *testing.T) {
	plain := "Your thermostat measures the temperature in each room. " +
		"It sends a reading to the hub every five minutes. " +
		"The hub keeps readings for thirty days. Then it deletes them. " +
		"Nobody else gets your data. You can turn this off at any time."
	if e := Ease(plain); e < 60 || e > 100 {
		t.Errorf("plain text: Ease %.1f, want 60 to 100", e)
	}
	// Written to be hard: long sentences of long words.
	legalese := "Notwithstanding any provision of this agreement to the contrary, the licensee shall " +
		"indemnify the licensor and its affiliates against all liabilities, damages and expenses " +
		"arising out of the unauthorised processing of personal information. The licensor's " +
		"aggregate liability, whether in contract, tort (including negligence) or otherwise, shall " +
		"not exceed the consideration previously remunerated under this agreement. Subprocessors " +
		"shall be contractually obligated to implement appropriate organisational and technical " +
		"measures."
	r := Score(legalese)
	if r.Sentences != 3 || r.Ease >= 30 {
		t.Errorf("legalese: %+v, want 3 sentences and Ease below 30", r)
	}
	if r.Grade() < 16 {
		t.Errorf("legalese: Grade %.1f, want university level (16+)", r.Grade())
	}
}

func TestLabel(t *testing.T) {
	b, err := os.ReadFile("testdata/label.txt")
	if err != nil {
		t.Fatal(err)
	}
	r := Score(string(b))
	t.Logf("label: %+v, grade %.1f", r, r.Grade())
	// Title, summary, "In short", 6 bullets (two with 2 sentences),
	// "Battery level", 5 sentences, "Who is responsible", 4 bullets (the
	// first with 3 sentences).
	if r.Sentences != 1+1+1+8+1+5+1+6 {
		t.Errorf("label: %d sentences, want 24", r.Sentences)
	}
	if r.Ease < PlainEnglish {
		t.Errorf("label: Ease %.1f, want at least %v", r.Ease, PlainEnglish)
	}
}

// Properties on generated text: adding a long word makes a text harder,
// splitting a sentence makes it easier.
func TestMonotonic(t *testing.T) {
	vocab := strings.Fields("the hub keeps your data for a month and then it deletes them " +
		"you can turn off each sensor at any time nobody else gets readings from this device " +
		"camera motion heating sleep heart update stored kept shared")
	long := []string{"interoperability", "notwithstanding", "responsibilities", "identifiability", "unconditionally"}
	rng := rand.New(rand.NewPCG(1, 2))
	sentence := func(n int) []string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = vocab[rng.IntN(len(vocab))]
		}
		return ws
	}
	join := func(sents [][]string) string {
		var b strings.Builder
		for _, s := range sents {
			b.WriteString(strings.Join(s, " ") + ". ")
		}
		return b.String()
	}
	for range 300 {
		sents := make([][]string, 1+rng.IntN(4))
		for i := range sents {
			sents[i] = sentence(2 + rng.IntN(15))
		}
		base := Score(join(sents))

		// Insert a long word into one sentence.
		i := rng.IntN(len(sents))
		k := rng.IntN(len(sents[i]) + 1)
		grown := make([][]string, len(sents))
		copy(grown, sents)
		grown[i] = append(append(append([]string{}, sents[i][:k]...), long[rng.IntN(len(long))]), sents[i][k:]...)
		if g := Score(join(grown)); g.Ease >= base.Ease || g.Grade() <= base.Grade() {
			t.Fatalf("adding a long word did not make %q harder: %+v -> %+v", join(sents), base, g)
		}

		// Split one sentence in two.
		k = 1 + rng.IntN(len(sents[i])-1)
		split := make([][]string, 0, len(sents)+1)
		split = append(split, sents[:i]...)
		split = append(split, sents[i][:k], sents[i][k:])
		split = append(split, sents[i+1:]...)
		s := Score(join(split))
		if s.Words != base.Words || s.Syllables != base.Syllables || s.Sentences != base.Sentences+1 {
			t.Fatalf("split changed the counts: %+v -> %+v", base, s)
		}
		if s.Ease <= base.Ease || s.Grade() >= base.Grade() {
			t.Fatalf("splitting a sentence did not make %q easier: %+v -> %+v", join(sents), base, s)
		}
	}
}

func checkResult(t *testing.T, text string, r Result) {
	t.Helper()
	grade := r.Grade()
	switch {
	case r.Words < 0 || r.Sentences < 0 || r.Syllables < 0:
		t.Fatalf("Score(%q) = %+v: negative count", text, r)
	case math.IsNaN(r.Ease) || math.IsInf(r.Ease, 0) || math.IsNaN(grade) || math.IsInf(grade, 0):
		t.Fatalf("Score(%q) = %+v, grade %v: not finite", text, r, grade)
	case r.Words == 0 && (r.Ease != 0 || grade != 0 || r.Sentences != 0 || r.Syllables != 0):
		t.Fatalf("Score(%q) = %+v, grade %v: no word but not zero", text, r, grade)
	case r.Words > 0 && (r.Sentences < 1 || r.Sentences > r.Words || r.Syllables < r.Words):
		t.Fatalf("Score(%q) = %+v: want 1 <= sentences <= words <= syllables", text, r)
	case r.Ease > 121.22+1e-9:
		t.Fatalf("Score(%q) = %+v: above the ceiling 121.22", text, r)
	}
}

func FuzzScore(f *testing.F) {
	for _, s := range []string{
		"", "The cat sat on the mat.", "e.g. i.e. etc. U.S. a.m.", "21.5 2030-12-31 1,000 10:30",
		"privacy@candor.example https://candor.example/x?y=z www.x.y",
		"- one\n- two\n  three\n\n# Heading\nText", "1. a\n2) b\n(c) d",
		"Zürich naïve café e\u0301 Ελλάδα 日本語", "don't it's o'clock '' -- -x- x-",
		"...!?…‽", "infor\u00ADmation\u200Bdata", "\xff\xfe invalid \xc3", "A.\nB.\r\nC.\u2029D",
	} {
		f.Add(s)
	}
	b, err := os.ReadFile("testdata/label.txt")
	if err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		r := Score(text)
		checkResult(t, text, r)
		if e := Ease(text); e != r.Ease {
			t.Fatalf("Ease(%q) = %v, Score says %v", text, e, r.Ease)
		}
		for _, w := range strings.Fields(text) {
			if n := Syllables(w); n < 0 || (n == 0 && strings.IndexFunc(w, isAlnum) >= 0) {
				t.Fatalf("Syllables(%q) = %d", w, n)
			}
		}
	})
}

func BenchmarkScore(b *testing.B) {
	label, err := os.ReadFile("testdata/label.txt")
	if err != nil {
		b.Fatal(err)
	}
	text := string(label)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		Score(text)
	}
}
