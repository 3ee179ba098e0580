package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// missingHelper is run as a child test process by TestMissing, with CI
// set or not.
func TestMissingHelper(t *testing.T) {
	if os.Getenv("TESTENV_HELPER") != "1" {
		t.Skip("helper process for TestMissing")
	}
	Missing(t, "widget not found at %s", "/usr/bin/widget")
}

func TestMissing(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP"},
		{"false", false, "--- SKIP"},
		{"true", true, "--- FAIL"},
		{"1", true, "--- FAIL"},
	} {
		cmd := exec.Command(exe, "-test.run=^TestMissingHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_HELPER=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: failed %v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "widget not found at /usr/bin/widget") {
			t.Errorf("CI=%q: output lacks %q or the reason:\n%s", tc.ci, tc.want, out)
		}
	}
}
