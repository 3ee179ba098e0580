package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/identity"
)

// The login form says plainly when it is throttled, and a browser that
// logged in before keeps working while someone guesses the password.
func TestLoginFormThrottleSparesTheKnownBrowser(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	owner := h.browser()
	owner.login("alex", goodPassword)
	known := owner.cookie(identity.KnownBrowserCookie)
	if known == nil || !strings.HasPrefix(known.Value, "cndb_") {
		t.Fatalf("no known-browser cookie after a login through the form: %+v", known)
	}
	owner.post("/logout", nil)

	attacker := h.browser()
	attacker.get("/login")
	var p page2
	for i := range 8 {
		p = attacker.post("/login", url.Values{"username": {"alex"}, "password": {fmt.Sprintf("attacker guess %d", i)}})
	}
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Fatalf("the attacker's last guess: %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
	}
	mustContain(t, "throttled login page", visibleText(p.body), "Too many wrong passwords for this account; try again in")

	stranger := h.browser()
	stranger.get("/login")
	if p := stranger.post("/login", url.Values{"username": {"alex"}, "password": {goodPassword}}); p.status != http.StatusTooManyRequests {
		t.Errorf("the right password from a new browser during the lockout: %d", p.status)
	}
	owner.login("alex", goodPassword)

	// Guessing the current password on the security page is throttled too.
	owner.get("/security")
	for i := range 6 {
		p = owner.post("/security/password", url.Values{"current_password": {fmt.Sprintf("not it %d", i)}, "new_password": {"a brand new passphrase here"}})
	}
	if p.status != http.StatusTooManyRequests || !strings.Contains(visibleText(p.body), "Too many wrong passwords for this account") {
		t.Errorf("sixth wrong current password: %d %s", p.status, visibleText(p.body))
	}
}
