package credential

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
)

// MinPasswordChars is the shortest password CheckPassword accepts, counted
// in characters (runes), not bytes. NIST SP 800-63B favours length over
// composition rules: a few ordinary words beat "P@ssw0rd!".
const MinPasswordChars = 12

// minDistinct rejects passwords that are long only by repetition.
const minDistinct = 5

// WeakPasswordError says why a chosen password or device secret was
// refused. Reason is a sentence fragment meant for the person choosing it.
type WeakPasswordError struct {
	// What is refused: "password" or "device secret"; empty reads as
	// "password".
	What   string
	Reason string
}

// Error returns, for example, "password refused: it is a known default
// password of IoT devices (Mirai list)".
func (e *WeakPasswordError) Error() string {
	what := e.What
	if what == "" {
		what = "password"
	}
	return what + " refused: " + e.Reason
}

// Reasons, one per rule, so a person learns which rule they hit.
var (
	reasonEmpty       = "it is empty"
	reasonTooLong     = "it is longer than " + strconv.Itoa(MaxSecretBytes) + " bytes"
	reasonNotUTF8     = "it is not valid UTF-8 text"
	reasonDefault     = "it is a known default password of IoT devices (Mirai list)"
	reasonIsUsername  = "it is the same as the user name"
	reasonHasUsername = "it contains the user name"
	reasonTooShort    = "it is shorter than " + strconv.Itoa(MinPasswordChars) + " characters; a few words make a passphrase that is long and easy to remember"
	reasonFewDistinct = "it uses fewer than " + strconv.Itoa(minDistinct) + " different characters"
	reasonRepeated    = "it is a short pattern repeated"
	reasonSequence    = "it is a simple keyboard, alphabet or digit sequence"
	reasonGuessable   = "it is easy to guess: it is made of common words, names, dates or patterns that guessing tools try first; use three or four words that have nothing to do with each other"
)

// minStrength is the least zxcvbn score (0 to 4) a password needs: 3
// means about 10^8 guesses or more, out of reach of an online attack and
// costly offline against argon2id. zxcvbn knows common passwords, names,
// words, dates and their usual changes ("password12345", "football2024"),
// which the rules above cannot.
const minStrength = 3

// maxEstimated bounds the characters zxcvbn looks at: its cost grows
// faster than the length, and a long password is strong on length alone.
const maxEstimated = 100

// CheckPassword returns nil if a person may use password with username,
// or a *WeakPasswordError naming the first rule it breaks: empty; over
// MaxSecretBytes or not UTF-8; any password on the known-default list
// (whatever the username, ignoring case); equal to the username or
// containing it; shorter than MinPasswordChars; fewer than 5 different
// characters; one short pattern repeated; a keyboard, alphabet or digit
// run such as "qwertyuiopas"; or easy to guess by zxcvbn's estimate
// (common words, names and dates with a few digits, such as
// "football2024"). There are deliberately no composition rules:
// "correct horse battery staple" passes.
func CheckPassword(username, password string) error {
	if reason := weakness(username, password); reason != "" {
		return &WeakPasswordError{What: "password", Reason: reason}
	}
	return nil
}

// CheckDeviceCredential applies CheckPassword's rules to a secret chosen
// for a device, for devices whose maker cannot take one from NewSecret.
// username is the device's MQTT username.
func CheckDeviceCredential(username, secret string) error {
	if reason := weakness(username, secret); reason != "" {
		return &WeakPasswordError{What: "device secret", Reason: reason}
	}
	return nil
}

// weakness returns the reason password is refused, or "".
func weakness(username, password string) string {
	switch {
	case password == "":
		return reasonEmpty
	case len(password) > MaxSecretBytes:
		return reasonTooLong
	case !utf8.ValidString(password):
		return reasonNotUTF8
	case IsKnownDefault(username, password) || isDefaultPassword(password):
		return reasonDefault
	case strings.EqualFold(username, password):
		return reasonIsUsername
	case utf8.RuneCountInString(username) >= 3 &&
		strings.Contains(strings.ToLower(password), strings.ToLower(username)):
		return reasonHasUsername
	case utf8.RuneCountInString(password) < MinPasswordChars:
		return reasonTooShort
	}
	// Case is folded so "aAaAbBbB..." counts as the pattern it is.
	r := []rune(strings.ToLower(password))
	switch {
	case distinct(r) < minDistinct:
		return reasonFewDistinct
	case repeated(r):
		return reasonRepeated
	case sequential(r):
		return reasonSequence
	case guessable(username, password):
		return reasonGuessable
	}
	return ""
}

// guessable reports whether zxcvbn scores password below minStrength.
func guessable(username, password string) bool {
	if r := []rune(password); len(r) > maxEstimated {
		password = string(r[:maxEstimated])
	}
	return zxcvbn.PasswordStrength(password, []string{username, "candor"}).Score < minStrength
}

func distinct(r []rune) int {
	seen := make(map[rune]struct{}, minDistinct)
	for _, c := range r {
		seen[c] = struct{}{}
	}
	return len(seen)
}

// repeated reports whether r is a prefix repeated at least twice, whole or
// cut short ("abcdeabcdeab"). The KMP failure function gives the shortest
// period in one pass: n minus the longest proper prefix that is also a
// suffix.
func repeated(r []rune) bool {
	n := len(r)
	fail := make([]int, n)
	for i := 1; i < n; i++ {
		k := fail[i-1]
		for k > 0 && r[i] != r[k] {
			k = fail[k-1]
		}
		if r[i] == r[k] {
			k++
		}
		fail[i] = k
	}
	return n-fail[n-1] <= n/2
}

// sequences are runs people type without thinking: the alphabet and digits
// (wrapping around, so "789012" counts), and walks along common keyboard
// layouts (QWERTY, AZERTY, QWERTZ, rows and columns, shifted digits).
var sequences = []struct {
	s      string
	cyclic bool
}{
	{"abcdefghijklmnopqrstuvwxyz", true},
	{"0123456789", true},
	{"`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./", false},
	{"1234567890azertyuiopqsdfghjklmwxcvbn", false},
	{"1234567890qwertzuiopasdfghjklyxcvbnm", false},
	{"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/", false},
	{"~!@#$%^&*()_+", false},
}

// steps holds every ordered pair of neighbours in sequences, in both
// directions.
var steps = func() map[[2]rune]bool {
	m := map[[2]rune]bool{}
	for _, seq := range sequences {
		r := []rune(seq.s)
		if seq.cyclic {
			r = append(r, r[0])
		}
		for i := 1; i < len(r); i++ {
			m[[2]rune{r[i-1], r[i]}] = true
			m[[2]rune{r[i], r[i-1]}] = true
		}
	}
	return m
}()

// sequential reports whether r is at most two runs of neighbouring keys or
// symbols ("qwertyuiopas", "abcdef123456", "aabbccddeeff"). A chosen
// passphrase or a random string has many more breaks than that, so the
// rule costs nothing to good passwords.
func sequential(r []rune) bool {
	breaks := 0
	for i := 1; i < len(r); i++ {
		if r[i] != r[i-1] && !steps[[2]rune{r[i-1], r[i]}] {
			breaks++
			if breaks > 1 {
				return false
			}
		}
	}
	return true
}
