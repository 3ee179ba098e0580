package credential

import (
	_ "embed"
	"strings"
	"sync"
)

// defaultCredentialsTSV is the list of known IoT default credentials. It is
// a data file rather than Go literals so it can be reviewed and extended
// like any other list, and its header says where it comes from.
//
//go:embed default-credentials.tsv
var defaultCredentialsTSV string

type credPair struct{ username, password string }

type defaultList struct {
	pairs     []credPair
	byPair    map[credPair]bool // username lowercased, password as listed
	passwords map[string]bool   // lowercased
}

// knownDefaults parses the embedded list once, on first use, so programs
// that never check a password do not pay for it.
var knownDefaults = sync.OnceValue(func() *defaultList {
	return parseDefaults(defaultCredentialsTSV)
})

// parseDefaults reads "username<TAB>password" lines. Blank lines and lines
// starting with '#' are skipped and trailing whitespace (including a CR
// from an editor on Windows) is ignored; since that also eats the tab of a
// "root<TAB>" line, a line without a tab means an empty password.
func parseDefaults(tsv string) *defaultList {
	l := &defaultList{byPair: map[credPair]bool{}, passwords: map[string]bool{}}
	for line := range strings.Lines(tsv) {
		line = strings.TrimRight(line, " \t\r\n")
		if line == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, pass, _ := strings.Cut(line, "\t")
		p := credPair{username: user, password: pass}
		l.pairs = append(l.pairs, p)
		l.byPair[credPair{strings.ToLower(user), pass}] = true
		l.passwords[strings.ToLower(pass)] = true
	}
	return l
}

// IsKnownDefault reports whether username and password are a pair from the
// shipped list of known IoT default credentials. The username is compared
// case-insensitively (devices differ on "Admin" vs "admin"), the password
// exactly. CheckPassword is stricter: it refuses every listed password
// whatever the username.
func IsKnownDefault(username, password string) bool {
	return knownDefaults().byPair[credPair{strings.ToLower(username), password}]
}

// isDefaultPassword reports whether password, ignoring case, is any
// password on the list: attackers try them with every username, and
// case variants of "admin" are no better.
func isDefaultPassword(password string) bool {
	return knownDefaults().passwords[strings.ToLower(password)]
}
