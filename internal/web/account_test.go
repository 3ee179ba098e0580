package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestFirstRunCreatesOwnerAndLogsIn(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	b := h.browser()

	p := b.get("/")
	if p.url != "/setup" || p.status != 200 {
		t.Fatalf("a fresh hub sends people to %s (%d), want /setup", p.url, p.status)
	}
	// Password managers and paste are welcome: the right autocomplete
	// hints, and nothing that blocks pasting.
	mustContain(t, "setup page", p.body,
		`autocomplete="username"`, `autocomplete="new-password"`, `name="token"`, `for="token"`, `for="password"`)
	mustNotContain(t, "setup page", p.body, "onpaste", "oncopy", `autocomplete="off" name="password"`)
	if b.cookie(preCookie) == nil {
		t.Fatal("the setup page sets no pre-login cookie for its CSRF token")
	}

	tests := []struct {
		name, token, user, pass, want string
	}{
		{"no token", "", "alex", goodPassword, "Enter the setup token"},
		{"wrong token", "setup-wrong", "alex", goodPassword, "wrong or used up"},
		{"default password", h.setupToken, "alex", "xc3511xc3511", "known default password"},
		{"short password", h.setupToken, "alex", "short1", "shorter than 12 characters"},
		{"password has username", h.setupToken, "alexander", "alexander-the-great-1", "contains the user name"},
		{"bad username", h.setupToken, "a b", goodPassword, "The username may contain letters"},
	}
	for _, tc := range tests {
		p := b.post("/setup", url.Values{"token": {tc.token}, "username": {tc.user}, "password": {tc.pass}})
		if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, tc.want) {
			t.Errorf("%s: %d, want 422 saying %q; page says: %s", tc.name, p.status, tc.want, visibleText(p.body))
		}
		if tc.pass != "" && strings.Contains(p.body, tc.pass) {
			t.Errorf("%s: the refused password is echoed into the page", tc.name)
		}
	}

	p = b.post("/setup", url.Values{"token": {h.setupToken}, "household": {"Our flat"}, "username": {"Alex"}, "password": {goodPassword}})
	if p.status != 200 || p.url != "/?done=setup" {
		t.Fatalf("setup: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	mustContain(t, "home after setup", p.body, "Your devices", "Our flat", "logged in as alex", `id="add-device"`)

	c := b.cookie(sessionCookie)
	if c == nil {
		t.Fatal("no session cookie after setup")
	}
	// The pages' login is the API's: the same cookie works there.
	p = b.get("/api/v1/me")
	if p.status != 200 || !strings.Contains(p.body, `"username":"alex"`) {
		t.Errorf("API with the page's cookie: %d %s", p.status, p.body)
	}
	// Setup is over: the token is dead and the setup page sends to login.
	if p := b.get("/setup"); p.url != "/" {
		t.Errorf("setup page after setup lands on %s", p.url)
	}
	if need, _ := h.id.SetupNeeded(context.Background()); need {
		t.Error("setup still needed after the first account")
	}
}

func TestSessionCookieFlags(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b := h.browser()
	b.get("/login")
	form := url.Values{"username": {"alex"}, "password": {goodPassword}, csrfField: {b.csrf()}}
	req, _ := http.NewRequest("POST", h.srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login answered %d, want 303", resp.StatusCode)
	}
	var found bool
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(sc, sessionCookie+"=") || strings.Contains(sc, "Max-Age=0") {
			continue
		}
		found = true
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
			if !strings.Contains(sc, want) {
				t.Errorf("session cookie %q lacks %s", sc, want)
			}
		}
		if strings.Contains(sc, "Secure") {
			t.Errorf("session cookie over plain HTTP (no TLS, SecureCookies off) is marked Secure: %q", sc)
		}
	}
	if !found {
		t.Fatal("login set no session cookie")
	}

	// With SecureCookies (the hub serves TLS) the cookie is Secure.
	w := New(Config{Identity: h.id, Store: h.st, Catalog: h.cat, SecureCookies: true})
	rec := httptestRecorder(w.Handler(), "GET", "/login", nil)
	for _, sc := range rec.Header().Values("Set-Cookie") {
		if !strings.Contains(sc, "Secure") {
			t.Errorf("with SecureCookies a cookie is not Secure: %q", sc)
		}
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b := h.browser()

	p := b.get("/devices/dev_x")
	if !strings.HasPrefix(p.url, "/login?next=") {
		t.Fatalf("a page behind login sends to %s, want the login page with next", p.url)
	}
	mustContain(t, "login page", p.body, `autocomplete="current-password"`, `autocomplete="username"`, `value="/devices/dev_x"`)

	p = b.post("/login", url.Values{"username": {"alex"}, "password": {"wrong-password-123"}, "next": {"/devices/dev_x"}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "The username or the password is wrong.") {
		t.Errorf("wrong password: %d %s", p.status, visibleText(p.body))
	}
	// After login the person lands where they were going (here: a device
	// that does not exist, which is a 404 page, not a redirect away).
	p = b.post("/login", url.Values{"username": {"ALEX"}, "password": {goodPassword}, "next": {"/devices/dev_x"}})
	if p.url != "/devices/dev_x" || p.status != http.StatusNotFound {
		t.Errorf("login with next: %d at %s", p.status, p.url)
	}
	// next may not send anyone to another site.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example"} {
		if got := localPath(next); got != "/" {
			t.Errorf("localPath(%q) = %q, want /", next, got)
		}
	}

	p = b.get("/")
	mustContain(t, "home", p.body, "Log out")
	p = b.post("/logout", nil)
	if p.url != "/login?done=logged-out" || !strings.Contains(p.body, "You are logged out.") {
		t.Errorf("logout lands on %s: %s", p.url, visibleText(p.body))
	}
	if p := b.get("/"); p.url != "/login" {
		t.Errorf("after logout / lands on %s, want /login", p.url)
	}

	// A login through the API works for the pages too.
	b2 := h.browser()
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/login", strings.NewReader(`{"username":"alex","password":"`+goodPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if p := b2.do(req); p.status != 200 {
		t.Fatalf("API login: %d %s", p.status, p.body)
	}
	if p := b2.get("/"); p.url != "/" || !strings.Contains(p.body, "Your devices") {
		t.Errorf("after an API login the home page is %s", p.url)
	}
}

func TestSecurityPage(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.setup("alex")
	b, other := h.browser(), h.browser()
	b.login("alex", goodPassword)
	other.login("alex", goodPassword)

	p := b.get("/security")
	mustContain(t, "security page", p.body, "(this browser)", "Log out here", "End<span class=\"visually-hidden\">",
		`autocomplete="current-password"`, `autocomplete="new-password"`)
	if n := strings.Count(p.body, "/security/sessions/ses_"); n != 2 {
		t.Errorf("security page lists %d sessions, want 2", n)
	}

	p = b.post("/security/password", url.Values{"current_password": {"not-my-password-1"}, "new_password": {"harbour-lantern-quiet-88"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "This is not your password now.") {
		t.Errorf("wrong current password: %d %s", p.status, visibleText(p.body))
	}
	p = b.post("/security/password", url.Values{"current_password": {goodPassword}, "new_password": {"qwertyuiopasdf"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "keyboard, alphabet or digit sequence") {
		t.Errorf("weak new password: %d %s", p.status, visibleText(p.body))
	}
	p = b.post("/security/password", url.Values{"current_password": {goodPassword}, "new_password": {"harbour-lantern-quiet-88"}})
	if p.url != "/security?done=password" || !strings.Contains(p.body, "Your password is changed.") {
		t.Fatalf("change password: %d at %s: %s", p.status, p.url, visibleText(p.body))
	}
	if p := other.get("/"); p.url != "/login" {
		t.Errorf("the other session survived a password change: %s", p.url)
	}
	if n := strings.Count(p.body, "/security/sessions/ses_"); n != 1 {
		t.Errorf("after the change %d sessions are listed, want 1", n)
	}

	// End another session from here.
	other.login("alex", "harbour-lantern-quiet-88")
	p = b.get("/security")
	ids := regexp.MustCompile(`/security/sessions/(ses_[A-Za-z0-9_-]+)/revoke`).FindAllStringSubmatch(p.body, -1)
	current := b.currentSessionID()
	for _, m := range ids {
		if m[1] != current {
			p = b.post("/security/sessions/"+m[1]+"/revoke", nil)
		}
	}
	if p.url != "/security?done=session" {
		t.Errorf("ending a session lands on %s", p.url)
	}
	if p := other.get("/"); p.url != "/login" {
		t.Errorf("an ended session still works: %s", p.url)
	}
	// Ending another person's session is not found.
	if p := b.post("/security/sessions/ses_notmine/revoke", nil); p.status != http.StatusNotFound {
		t.Errorf("ending an unknown session: %d, want 404", p.status)
	}
}

// currentSessionID finds the browser's own session on the security page.
func (b *browser) currentSessionID() string {
	p := b.get("/security")
	i := strings.Index(p.body, "(this browser)")
	if i < 0 {
		return ""
	}
	m := regexp.MustCompile(`/security/sessions/(ses_[A-Za-z0-9_-]+)/revoke`).FindStringSubmatch(p.body[i:])
	if m == nil {
		return ""
	}
	return m[1]
}

func httptestRecorder(h http.Handler, method, target string, body *strings.Reader) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	var req *http.Request
	if body == nil {
		req = httptest.NewRequest(method, target, nil)
	} else {
		req = httptest.NewRequest(method, target, body)
	}
	h.ServeHTTP(rec, req)
	return rec
}
