package updates

import (
	"strings"

	"golang.org/x/mod/semver"
)

// Firmware versions are compared as semantic versions (semver.org 2.0),
// with or without a leading "v": "1.2.0" and "v1.2.0" are the same.

func canonical(v string) string {
	if len(v) > 0 && v[0] != 'v' {
		v = "v" + v
	}
	return v
}

// validVersion accepts full semantic versions only: semver's shorthands
// ("1", "1.2") would make "is this newer" depend on a guess.
func validVersion(v string) bool {
	if v == "" || len(v) > 64 || !semver.IsValid(canonical(v)) {
		return false
	}
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	return strings.Count(core, ".") == 2
}

// compareVersions returns -1, 0 or +1 as a is older than, equal to or
// newer than b. Invalid versions sort below every valid one.
func compareVersions(a, b string) int { return semver.Compare(canonical(a), canonical(b)) }
