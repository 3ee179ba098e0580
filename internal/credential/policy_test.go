package credential

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultListParsed(t *testing.T) {
	pairs := knownDefaults().pairs
	if len(pairs) < 60 {
		t.Fatalf("embedded default list has %d entries, want at least 60", len(pairs))
	}
	for _, want := range []credPair{{"root", "xc3511"}, {"pi", "raspberry"}, {"root", ""}, {"admin", ""}} {
		found := false
		for _, p := range pairs {
			if p == want {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("embedded default list lacks %q/%q", want.username, want.password)
		}
		if !IsKnownDefault(want.username, want.password) {
			t.Errorf("IsKnownDefault(%q, %q) = false", want.username, want.password)
		}
	}
	for _, p := range pairs {
		if strings.ContainsAny(p.username+p.password, "\t\r\n#") || strings.TrimSpace(p.username) != p.username {
			t.Errorf("entry %q/%q carries parsing debris", p.username, p.password)
		}
	}
}

func TestParseDefaultsTolerance(t *testing.T) {
	l := parseDefaults("# comment\n\n  # indented comment\nroot\tvizxv  \r\nadmin\t\r\nsupport\n")
	want := []credPair{{"root", "vizxv"}, {"admin", ""}, {"support", ""}}
	if len(l.pairs) != len(want) {
		t.Fatalf("parsed %q, want %q", l.pairs, want)
	}
	for i := range want {
		if l.pairs[i] != want[i] {
			t.Errorf("pair %d = %q, want %q", i, l.pairs[i], want[i])
		}
	}
}

func TestEveryDefaultRefused(t *testing.T) {
	for _, p := range knownDefaults().pairs {
		if err := CheckPassword(p.username, p.password); err == nil {
			t.Errorf("CheckPassword(%q, %q) accepted a known default", p.username, p.password)
		}
		if err := CheckDeviceCredential(p.username, p.password); err == nil {
			t.Errorf("CheckDeviceCredential(%q, %q) accepted a known default", p.username, p.password)
		}
		if p.password == "" {
			continue
		}
		// A listed password is refused whatever the username, with the
		// default-list reason even when a shorter rule would also apply.
		for _, user := range []string{"alice", "", p.username} {
			err := CheckPassword(user, p.password)
			if reasonOf(t, err) != reasonDefault {
				t.Errorf("CheckPassword(%q, %q) = %v, want the default-list reason", user, p.password, err)
			}
		}
		if reasonOf(t, CheckPassword("alice", strings.ToUpper(p.password))) != reasonDefault {
			t.Errorf("upper-case %q slipped past the default list", p.password)
		}
	}
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var weak *WeakPasswordError
	if !errors.As(err, &weak) {
		t.Fatalf("error %v (%T) is not a *WeakPasswordError", err, err)
	}
	return weak.Reason
}

// longSecret is random text longer than MaxSecretBytes.
var longSecret = func() string {
	var b strings.Builder
	for b.Len() <= MaxSecretBytes {
		b.WriteString(NewSecret())
	}
	return b.String()
}()

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name, user, pass, reason string
	}{
		{"empty", "alice", "", reasonEmpty},
		{"too long", "alice", strings.Repeat("correct horse ", 80), reasonTooLong},
		{"not utf8", "alice", "correct horse \xff battery", reasonNotUTF8},
		{"mirai", "root", "xc3511", reasonDefault},
		{"listed password other user", "alice", "7ujMko0vizxv", reasonDefault},
		{"username", "alice", "alice", reasonIsUsername},
		{"username case", "Alice", "aLICE", reasonIsUsername},
		{"short username equal", "al", "al", reasonIsUsername},
		{"contains username", "alice", "my name is Alice ok", reasonHasUsername},
		{"short username may appear", "al", "always look at the bright side", ""},
		{"short", "alice", "Tr0ub4dor&3", reasonTooShort},
		{"short runes", "alice", "ééééééééééé", reasonTooShort},
		{"one char", "alice", "aaaaaaaaaaaaaaaa", reasonFewDistinct},
		{"three chars", "alice", "abcabcabcabc", reasonFewDistinct},
		{"mixed case few", "alice", "aAbBcCdDaAbBcCdD", reasonFewDistinct},
		{"pattern", "alice", "abcdeabcdeabcde", reasonRepeated},
		{"pattern cut short", "alice", "xyz12xyz12xy", reasonRepeated},
		{"pattern case", "alice", "Hello!hello!HELLO!", reasonRepeated},
		{"digits", "alice", "123456789012", reasonSequence},
		{"alphabet", "alice", "abcdefghijkl", reasonSequence},
		{"keyboard", "alice", "qwertyuiopas", reasonSequence},
		{"keyboard reverse", "alice", "lkjhgfdsapoiu", reasonSequence},
		{"keyboard column", "alice", "1qaz2wsx3edc", reasonSequence},
		{"two runs", "alice", "abcdef123456", reasonSequence},
		{"doubled run", "alice", "aabbccddeeff", reasonSequence},
		{"common word and digits", "alice", "password12345", reasonGuessable},
		{"common phrase and digits", "alice", "letmein12345", reasonGuessable},
		{"word and year", "alice", "football2024", reasonGuessable},
		{"name and year", "alice", "sunshine2023", reasonGuessable},
		{"passphrase", "alice", "correct horse battery staple", ""},
		{"passphrase no spaces", "bob", "correcthorsebatterystaple", ""},
		{"lowercase only", "alice", "purple monkey dishwasher", ""},
		{"unicode", "alice", "größenwahn im schloss", ""},
		{"exactly 12", "alice", "kx7!mqz2#vbw", ""},
		{"generated secret", "dev_abcdefghijkl", NewSecret(), ""},
		{"max length", "alice", longSecret[:MaxSecretBytes], ""},
		{"one byte over", "alice", longSecret[:MaxSecretBytes+1], reasonTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPassword(tt.user, tt.pass)
			if got := reasonOf(t, err); got != tt.reason {
				t.Errorf("CheckPassword(%q, %q) reason = %q, want %q", tt.user, tt.pass, got, tt.reason)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "password refused: ") {
				t.Errorf("error text %q lacks the prefix", err)
			}
			derr := CheckDeviceCredential(tt.user, tt.pass)
			if got := reasonOf(t, derr); got != tt.reason {
				t.Errorf("CheckDeviceCredential(%q, %q) reason = %q, want %q", tt.user, tt.pass, got, tt.reason)
			}
			if derr != nil && !strings.HasPrefix(derr.Error(), "device secret refused: ") {
				t.Errorf("error text %q lacks the prefix", derr)
			}
		})
	}
}

func TestReasonsDistinct(t *testing.T) {
	all := []string{reasonEmpty, reasonTooLong, reasonNotUTF8, reasonDefault, reasonIsUsername,
		reasonHasUsername, reasonTooShort, reasonFewDistinct, reasonRepeated, reasonSequence, reasonGuessable}
	seen := map[string]bool{}
	for _, r := range all {
		if r == "" || seen[r] {
			t.Errorf("reason %q is empty or repeated", r)
		}
		seen[r] = true
	}
}

func TestWeakPasswordErrorText(t *testing.T) {
	err := CheckPassword("root", "xc3511")
	want := "password refused: it is a known default password of IoT devices (Mirai list)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if got := (&WeakPasswordError{Reason: "x"}).Error(); got != "password refused: x" {
		t.Errorf("zero What reads %q", got)
	}
}

func TestGeneratedSecretsPassPolicy(t *testing.T) {
	for range 1000 {
		id := NewID("dev_")
		if s := NewSecret(); CheckDeviceCredential(id, s) != nil {
			t.Fatalf("NewSecret %q refused: %v", s, CheckDeviceCredential(id, s))
		}
	}
}

func BenchmarkCheckPassword(b *testing.B) {
	for b.Loop() {
		_ = CheckPassword("alice", "correct horse battery staple")
	}
}
