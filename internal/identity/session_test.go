package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func TestLoginFailuresAreUnauthenticated(t *testing.T) {
	svc, _ := newService(t)
	c := ctx(t)
	if _, _, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, user, pass string }{
		{"wrong password", "alex", goodPassword + "!"},
		{"password in other case", "alex", strings.ToUpper(goodPassword)},
		{"empty password", "alex", ""},
		{"unknown user", "nobody", goodPassword},
		{"empty user", "", goodPassword},
		{"over-long password", "alex", strings.Repeat("p", 1025)},
		{"over-long username", strings.Repeat("a", 65), goodPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss, tok, err := svc.Login(c, Origin{}, tc.user, tc.pass, store.SessionBrowser, "test")
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Login: %v, want ErrUnauthenticated", err)
			}
			if err.Error() != ErrUnauthenticated.Error() {
				t.Errorf("refusal %q says more than %q", err, ErrUnauthenticated)
			}
			if ss.ID != "" || tok != "" {
				t.Errorf("refused Login returned a session")
			}
		})
	}
}

func TestLoginOpensSessionsOfBothKinds(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	clock := newFakeClock()
	svc.now = clock.Now
	_, acc, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.Now()

	browser, btok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, strings.Repeat("u", 300))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(btok, SessionTokenPrefix) {
		t.Errorf("browser token %q lacks prefix %q", btok, SessionTokenPrefix)
	}
	if browser.Kind != store.SessionBrowser || browser.AccountID != acc.ID || !browser.ExpiresAt.Equal(t0.Add(BrowserSessionTTL)) {
		t.Errorf("browser session %+v: want kind browser expiring at %v", browser, t0.Add(BrowserSessionTTL))
	}
	if len(browser.Name) > 128 {
		t.Errorf("browser session name kept %d bytes, want at most 128", len(browser.Name))
	}
	if len(browser.TokenHash) != 32 {
		t.Errorf("session stores %d-byte token hash, want a SHA-256", len(browser.TokenHash))
	}

	api, atok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionToken, "home assistant")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(atok, APITokenPrefix) || api.Kind != store.SessionToken || !api.ExpiresAt.IsZero() {
		t.Errorf("API token %q / session %+v: want prefix %q and no expiry", atok, api, APITokenPrefix)
	}
	// An API token needs a usable name; checked before anything is stored.
	for _, name := range []string{"", "  ", "bad\nname", strings.Repeat("n", 65)} {
		if _, _, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionToken, name); !errors.Is(err, ErrInvalid) {
			t.Errorf("API token named %q: %v, want ErrInvalid", name, err)
		}
		if _, _, err := svc.CreateToken(c, acc.ID, name); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateToken named %q: %v, want ErrInvalid", name, err)
		}
	}
	list, err := db.Sessions(c, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("%d sessions stored, want 2", len(list))
	}
	if _, _, err := svc.CreateToken(c, "acc_missing", "script"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateToken for a missing account: %v, want store.ErrNotFound", err)
	}
}

func TestBrowserSessionsExpireAPITokensDoNot(t *testing.T) {
	svc, _ := newService(t)
	c := ctx(t)
	clock := newFakeClock()
	svc.now = clock.Now
	_, acc, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.Now()
	_, btok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	_, ltok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionToken, "cli")
	if err != nil {
		t.Fatal(err)
	}
	_, atok, err := svc.CreateToken(c, acc.ID, "script")
	if err != nil {
		t.Fatal(err)
	}

	clock.Set(t0.Add(BrowserSessionTTL - time.Second))
	if got, _, err := svc.Authenticate(c, btok); err != nil || got.ID != acc.ID {
		t.Errorf("browser session just before expiry: %v", err)
	}
	clock.Set(t0.Add(BrowserSessionTTL + time.Second))
	if _, _, err := svc.Authenticate(c, btok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("browser session after expiry: %v, want ErrUnauthenticated", err)
	}
	clock.Set(t0.Add(10 * 365 * 24 * time.Hour))
	if _, _, err := svc.Authenticate(c, btok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("browser session years later: %v, want ErrUnauthenticated", err)
	}
	for name, tok := range map[string]string{"API token": atok, "token from Login": ltok} {
		if got, ss, err := svc.Authenticate(c, tok); err != nil || got.ID != acc.ID || ss.Kind != store.SessionToken {
			t.Errorf("%s ten years later: %+v %v", name, ss, err)
		}
	}
}

func TestAuthenticateRecordsUseAtMostOncePerMinute(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	clock := newFakeClock()
	svc.now = clock.Now
	_, acc, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	ss, tok, err := svc.CreateToken(c, acc.ID, "script")
	if err != nil {
		t.Fatal(err)
	}
	lastSeen := func() time.Time {
		t.Helper()
		list, err := db.Sessions(c, acc.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("sessions: %v %v", list, err)
		}
		return list[0].LastSeenAt
	}
	t0 := clock.Now()
	clock.Add(5 * time.Second)
	if _, got, err := svc.Authenticate(c, tok); err != nil || got.ID != ss.ID {
		t.Fatalf("Authenticate: %v", err)
	}
	first := lastSeen()
	if !first.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("last seen %v after first use, want %v", first, t0.Add(5*time.Second))
	}
	clock.Add(30 * time.Second)
	if _, _, err := svc.Authenticate(c, tok); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); !got.Equal(first) {
		t.Errorf("use 30s later was written (last seen %v); want at most one write a minute", got)
	}
	clock.Add(31 * time.Second)
	if _, got, err := svc.Authenticate(c, tok); err != nil || !got.LastSeenAt.Equal(clock.Now()) {
		t.Fatalf("Authenticate a minute later: %+v %v", got, err)
	}
	if got := lastSeen(); !got.Equal(clock.Now()) {
		t.Errorf("use a minute later not recorded: last seen %v, want %v", got, clock.Now())
	}
}

func TestAuthenticateRefusesMalformedAndUnknownTokens(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	_, acc, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := svc.CreateToken(c, acc.ID, "script")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"cnds_",
		"short",
		tok[:len(tok)-1],
		tok + "x",
		strings.ToUpper(tok),
		SessionTokenPrefix + strings.Repeat("a", 52),
		tok + strings.Repeat("x", 256),
	} {
		if _, _, err := svc.Authenticate(c, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%.20q…): %v, want ErrUnauthenticated", bad, err)
		}
	}
	// A token whose account is gone is refused too.
	if err := db.DeleteAccount(c, acc.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(c, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token of a deleted account: %v, want ErrUnauthenticated", err)
	}
}

func TestRevokeSessionOnlyOwnSessions(t *testing.T) {
	svc, _ := newService(t)
	c := ctx(t)
	_, alex, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	// Sam lives in the same household: membership is not enough.
	sam, err := svc.CreateAccount(c, NewAccount{HouseholdID: alex.HouseholdID, Username: "sam", Password: otherPassword, Role: store.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	alexSS, alexTok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	alexAPI, alexAPITok, err := svc.CreateToken(c, alex.ID, "script")
	if err != nil {
		t.Fatal(err)
	}
	samSS, samTok, err := svc.CreateToken(c, sam.ID, "sam's script")
	if err != nil {
		t.Fatal(err)
	}

	if err := svc.RevokeSession(c, alex.ID, samSS.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alex revoking sam's session: %v, want store.ErrNotFound", err)
	}
	if err := svc.RevokeSession(c, sam.ID, alexSS.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("sam revoking alex's session: %v, want store.ErrNotFound", err)
	}
	if err := svc.RevokeSession(c, alex.ID, "ses_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking a missing session: %v, want store.ErrNotFound", err)
	}
	for name, tok := range map[string]string{"sam": samTok, "alex": alexTok, "alex api": alexAPITok} {
		if _, _, err := svc.Authenticate(c, tok); err != nil {
			t.Errorf("%s's session ended by a refused revocation: %v", name, err)
		}
	}

	if err := svc.RevokeSession(c, alex.ID, alexAPI.ID); err != nil {
		t.Fatalf("alex revoking own token: %v", err)
	}
	if _, _, err := svc.Authenticate(c, alexAPITok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked token: %v, want ErrUnauthenticated", err)
	}
	if _, _, err := svc.Authenticate(c, alexTok); err != nil {
		t.Errorf("alex's other session ended: %v", err)
	}
	if err := svc.RevokeSession(c, alex.ID, alexAPI.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking twice: %v, want store.ErrNotFound", err)
	}
	list, err := svc.Sessions(c, alex.ID)
	if err != nil || len(list) != 1 || list[0].ID != alexSS.ID {
		t.Errorf("alex's sessions after revocation: %+v %v", list, err)
	}
}
