// Package testenv decides what a test does when a tool it needs from the
// machine (a browser, npm, a Mosquitto binary) is missing. A developer's
// machine may lack one: the test skips and says what to install. In CI
// (CI=true, as .ci/run and most CI services set it) the test fails
// instead, so a run cannot pass by quietly not running the browser,
// accessibility or reference-client checks.
package testenv

import (
	"os"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI: the environment variable CI
// holds a true value ("true", "1", …).
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// Missing ends tb because something it needs is missing, with the reason
// given by format and args: a failure in CI, a skip elsewhere.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true, so this cannot be skipped: "+format, args...)
	}
	tb.Skipf(format, args...)
}
