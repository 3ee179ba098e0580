package updates

import "golang.org/x/mod/semver"

// Firmware versions are compared as semantic versions (semver.org 2.0),
// with or without a leading "v": "1.2.0" and "v1.2.0" are the same.

func canonical(v string) string {
	if len(v) > 0 && v[0] != 'v' {
		v = "v" + v
	}
	return v
}

func validVersion(v string) bool { return v != "" && len(v) <= 64 && semver.IsValid(canonical(v)) }

// compareVersions returns -1, 0 or +1 as a is older than, equal to or
// newer than b. Invalid versions sort below every valid one.
func compareVersions(a, b string) int { return semver.Compare(canonical(a), canonical(b)) }
