package identity

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/store"
)

func TestSetupTokenLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	db := openStoreAt(t, path)
	svc := New(db, Options{})
	c := ctx(t)

	if need, err := svc.SetupNeeded(c); err != nil || !need {
		t.Fatalf("SetupNeeded on a fresh hub = %v, %v; want true", need, err)
	}
	// No token has been issued yet: nothing can set the hub up.
	if _, err := svc.Setup(c, "setup-anything", "", NewAccount{Username: "alex", Password: goodPassword}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Setup before any token was issued: %v, want ErrUnauthenticated", err)
	}

	tok, err := svc.SetupToken(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "setup-") || len(tok) < 40 {
		t.Fatalf("setup token %q: want a long token starting with setup-", tok)
	}

	na := NewAccount{Username: "Alex", Password: goodPassword}
	for _, wrong := range []string{"", "setup-", tok + "x", strings.ToUpper(tok), tok[:len(tok)-1]} {
		if _, err := svc.Setup(c, wrong, "", na); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Setup with token %q: %v, want ErrUnauthenticated", wrong, err)
		}
	}

	// Refused input does not burn the token.
	for _, bad := range []struct {
		name      string
		household string
		na        NewAccount
	}{
		{"weak password", "", NewAccount{Username: "alex", Password: "password"}},
		{"short password", "", NewAccount{Username: "alex", Password: "short"}},
		{"password contains username", "", NewAccount{Username: "alexander", Password: "alexander the great"}},
		{"bad username", "", NewAccount{Username: "a", Password: goodPassword}},
		{"username with space", "", NewAccount{Username: "al ex", Password: goodPassword}},
		{"blank household name", "   ", na},
		{"control character in household name", "Home\n", na},
	} {
		if _, err := svc.Setup(c, tok, bad.household, bad.na); !errors.Is(err, ErrInvalid) {
			t.Errorf("Setup with %s: %v, want ErrInvalid", bad.name, err)
		}
	}
	if n, _ := db.CountAccounts(c); n != 0 {
		t.Fatalf("refused Setup calls created %d accounts", n)
	}
	if hhs, _ := db.Households(c); len(hhs) != 0 {
		t.Fatalf("refused Setup calls created %d households", len(hhs))
	}

	acc, err := svc.Setup(c, tok, "", na)
	if err != nil {
		t.Fatalf("Setup with the live token after refused attempts: %v", err)
	}
	if acc.Username != "alex" || acc.Role != store.RoleOwner || !acc.Admin || acc.HouseholdID == "" || acc.ID == "" {
		t.Errorf("first account %+v: want owner and admin named alex", acc)
	}
	if acc.PasswordHash == "" || strings.Contains(acc.PasswordHash, goodPassword) {
		t.Errorf("password not hashed: %.24s…", acc.PasswordHash)
	}
	hh, err := db.Household(c, acc.HouseholdID)
	if err != nil || hh.Name != "Home" {
		t.Errorf("first household %+v, %v; want one named Home by default", hh, err)
	}

	if _, err := svc.Setup(c, tok, "", NewAccount{Username: "sam", Password: goodPassword}); !errors.Is(err, ErrSetupDone) {
		t.Errorf("second Setup with the same token: %v, want ErrSetupDone", err)
	}
	if got, err := svc.SetupToken(c); err != nil || got != "" {
		t.Errorf("SetupToken after setup = %q, %v; want \"\"", got, err)
	}
	if need, err := svc.SetupNeeded(c); err != nil || need {
		t.Errorf("SetupNeeded after setup = %v, %v; want false", need, err)
	}

	// A restart: a new Service over the same store.
	svc2 := New(db, Options{})
	if got, err := svc2.SetupToken(c); err != nil || got != "" {
		t.Errorf("SetupToken after restart = %q, %v; want \"\"", got, err)
	}
	if _, err := svc2.Setup(c, tok, "", NewAccount{Username: "sam", Password: goodPassword}); !errors.Is(err, ErrSetupDone) {
		t.Errorf("Setup after restart: %v, want ErrSetupDone", err)
	}
	// Also when reopening the file from scratch.
	db.Close()
	db3 := openStoreAt(t, path)
	svc3 := New(db3, Options{})
	if need, err := svc3.SetupNeeded(c); err != nil || need {
		t.Errorf("SetupNeeded after reopening = %v, %v; want false", need, err)
	}
	if got, err := svc3.SetupToken(c); err != nil || got != "" {
		t.Errorf("SetupToken after reopening = %q, %v; want \"\"", got, err)
	}
	if _, err := svc3.Setup(c, "setup-whatever", "", NewAccount{Username: "sam", Password: goodPassword}); !errors.Is(err, ErrSetupDone) {
		t.Errorf("Setup after reopening: %v, want ErrSetupDone", err)
	}
	if n, _ := db3.CountAccounts(c); n != 1 {
		t.Errorf("%d accounts after setup, want 1", n)
	}
}

func TestSetupTokenDiesOnRestartAndReissue(t *testing.T) {
	db := openStore(t)
	c := ctx(t)
	svc := New(db, Options{})
	first, err := svc.SetupToken(c)
	if err != nil {
		t.Fatal(err)
	}
	// A restart before setup prints a new token; the old one dies.
	svc2 := New(db, Options{})
	second, err := svc2.SetupToken(c)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatal("restart issued the same setup token again")
	}
	na := NewAccount{Username: "alex", Password: goodPassword}
	if _, err := svc2.Setup(c, first, "", na); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token of the previous run: %v, want ErrUnauthenticated", err)
	}
	// Asking the same Service again also replaces the token.
	third, err := svc2.SetupToken(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.Setup(c, second, "", na); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("replaced token: %v, want ErrUnauthenticated", err)
	}
	if _, err := svc2.Setup(c, third, "Flat 3", na); err != nil {
		t.Fatalf("live token: %v", err)
	}
	// Setup on one instance is seen by another over the same store.
	if _, err := svc.Setup(c, first, "", NewAccount{Username: "sam", Password: goodPassword}); !errors.Is(err, ErrSetupDone) {
		t.Errorf("Setup on the other instance: %v, want ErrSetupDone", err)
	}
}

func TestSetupConcurrentExactlyOneSucceeds(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	tok, err := svc.SetupToken(c)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
		accs  = make([]store.Account, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Half race for the same name, half for different ones.
			name := "alex"
			if i%2 == 1 {
				name = "user" + string(rune('a'+i))
			}
			accs[i], errs[i] = svc.Setup(c, tok, "", NewAccount{Username: name, Password: goodPassword})
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			if !accs[i].Admin || accs[i].Role != store.RoleOwner {
				t.Errorf("winner %+v is not owner and admin", accs[i])
			}
		case errors.Is(err, ErrSetupDone):
		default:
			t.Errorf("Setup %d: %v, want success or ErrSetupDone", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent Setup calls succeeded, want exactly 1", ok)
	}
	if cnt, _ := db.CountAccounts(c); cnt != 1 {
		t.Errorf("%d accounts after concurrent setup, want 1", cnt)
	}
	if hhs, _ := db.Households(c); len(hhs) != 1 {
		t.Errorf("%d households after concurrent setup, want 1", len(hhs))
	}
}

// Devices may be added (demo, operator) before anyone sets the hub up; the
// first account then joins that household.
func TestSetupJoinsExistingHousehold(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	hh, err := svc.EnsureHousehold(c, "Demo")
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.EnsureHousehold(c, "Other")
	if err != nil || again != hh {
		t.Fatalf("EnsureHousehold twice: %q then %q (%v)", hh, again, err)
	}
	tok, _ := svc.SetupToken(c)
	acc, err := svc.Setup(c, tok, "Ignored", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	if acc.HouseholdID != hh {
		t.Errorf("first account joined %q, want the existing household %q", acc.HouseholdID, hh)
	}
	if hhs, _ := db.Households(c); len(hhs) != 1 {
		t.Errorf("%d households, want 1", len(hhs))
	}
}

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{
		"alex":     "alex",
		"Alex":     "alex",
		"ALEX":     "alex",
		"  Alex  ": "alex",
		"A.B-C_d":  "a.b-c_d",
		"":         "",
	} {
		if got := NormalizeUsername(in); got != want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUsernamesAreCaseInsensitive(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	_, owner, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "Alex", Password: goodPassword})
	if err != nil {
		t.Fatalf("CreateHousehold: %v", err)
	}
	if owner.Username != "alex" {
		t.Errorf("stored username %q, want alex", owner.Username)
	}
	for _, name := range []string{"alex", "ALEX", " aLeX "} {
		_, err := svc.CreateAccount(c, NewAccount{HouseholdID: owner.HouseholdID, Username: name, Password: otherPassword, Role: store.RoleMember})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAccount(%q) after Alex: %v, want ErrInvalid", name, err)
		}
	}
	// Nor in another household.
	if _, _, err := svc.CreateHousehold(c, "Flat", NewAccount{Username: "ALEX", Password: otherPassword}); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateHousehold with owner ALEX: %v, want ErrInvalid", err)
	}
	if n, _ := db.CountAccounts(c); n != 1 {
		t.Errorf("%d accounts, want 1", n)
	}
	for _, name := range []string{"alex", "Alex", "ALEX"} {
		ss, tok, err := svc.Login(c, Origin{}, name, goodPassword, store.SessionBrowser, "test")
		if err != nil {
			t.Errorf("Login(%q): %v", name, err)
			continue
		}
		if ss.AccountID != owner.ID || tok == "" {
			t.Errorf("Login(%q) opened %+v", name, ss)
		}
	}
}

func TestCreateAccountRules(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	hh := newHousehold(t, db, "hh_1")
	for _, tc := range []struct {
		name string
		na   NewAccount
	}{
		{"no role", NewAccount{HouseholdID: hh, Username: "sam", Password: goodPassword}},
		{"unknown role", NewAccount{HouseholdID: hh, Username: "sam", Password: goodPassword, Role: "admin"}},
		{"username too short", NewAccount{HouseholdID: hh, Username: "s", Password: goodPassword, Role: store.RoleMember}},
		{"username too long", NewAccount{HouseholdID: hh, Username: strings.Repeat("s", 65), Password: goodPassword, Role: store.RoleMember}},
		{"slash in username", NewAccount{HouseholdID: hh, Username: "sam/x", Password: goodPassword, Role: store.RoleMember}},
		{"non-ASCII username", NewAccount{HouseholdID: hh, Username: "sämi", Password: goodPassword, Role: store.RoleMember}},
		{"default password", NewAccount{HouseholdID: hh, Username: "sam", Password: "admin1234", Role: store.RoleMember}},
		{"password is username", NewAccount{HouseholdID: hh, Username: "samantha-jones", Password: "Samantha-Jones", Role: store.RoleMember}},
	} {
		if _, err := svc.CreateAccount(c, tc.na); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAccount with %s: %v, want ErrInvalid", tc.name, err)
		}
	}
	if n, _ := db.CountAccounts(c); n != 0 {
		t.Errorf("refused CreateAccount calls stored %d accounts", n)
	}
	if _, err := svc.CreateAccount(c, NewAccount{HouseholdID: "hh_missing", Username: "sam", Password: goodPassword, Role: store.RoleMember}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateAccount into a missing household: %v, want store.ErrNotFound", err)
	}
}

func TestCreateHouseholdBadOwnerLeavesNoHousehold(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	_, taken, err := svc.CreateHousehold(c, "First", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, household string
		owner           NewAccount
	}{
		{"weak password", "Flat", NewAccount{Username: "sam", Password: "xc3511"}},
		{"short password", "Flat", NewAccount{Username: "sam", Password: "tiny"}},
		{"empty username", "Flat", NewAccount{Username: "", Password: goodPassword}},
		{"bad username", "Flat", NewAccount{Username: "sam smith", Password: goodPassword}},
		{"taken username", "Flat", NewAccount{Username: taken.Username, Password: otherPassword}},
		{"taken username, other case", "Flat", NewAccount{Username: "ALEX", Password: otherPassword}},
		{"empty household name", "", NewAccount{Username: "sam", Password: goodPassword}},
		{"household name too long", strings.Repeat("h", 65), NewAccount{Username: "sam", Password: goodPassword}},
	} {
		hh, acc, err := svc.CreateHousehold(c, tc.household, tc.owner)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateHousehold with %s: %v, want ErrInvalid", tc.name, err)
		}
		if hh.ID != "" || acc.ID != "" {
			t.Errorf("CreateHousehold with %s returned %+v %+v", tc.name, hh, acc)
		}
	}
	hhs, err := db.Households(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(hhs) != 1 {
		t.Errorf("refused CreateHousehold calls left %d households behind (want only the first)", len(hhs)-1)
	}

	// The owner role is forced whatever the caller asked for.
	hh, owner, err := svc.CreateHousehold(c, "Flat", NewAccount{Username: "sam", Password: otherPassword, Role: store.RoleMember, HouseholdID: taken.HouseholdID})
	if err != nil {
		t.Fatal(err)
	}
	if owner.Role != store.RoleOwner || owner.HouseholdID != hh.ID || owner.Admin {
		t.Errorf("household owner %+v: want a non-admin owner of %s", owner, hh.ID)
	}
}

// Two requests creating households whose owners share a username both pass
// the up-front check; the loser's CreateAccount fails after its household
// was created.
func TestCreateHouseholdConcurrentSameOwnerLeavesNoHousehold(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	const n = 2
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, errs[i] = svc.CreateHousehold(c, "Flat", NewAccount{Username: "sam", Password: goodPassword})
		}()
	}
	close(start)
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	hhs, _ := db.Households(c)
	if len(hhs) != n-failed {
		t.Errorf("%d of %d CreateHousehold calls failed but %d households exist: a failed call left one behind", failed, n, len(hhs))
	}
}

func TestChangePassword(t *testing.T) {
	svc, db := newService(t)
	c := ctx(t)
	_, acc, err := svc.CreateHousehold(c, "Home", NewAccount{Username: "alex", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreateHousehold(c, "Flat", NewAccount{Username: "sam", Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	current, curTok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	_, phoneTok, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, "phone")
	if err != nil {
		t.Fatal(err)
	}
	_, apiTok, err := svc.CreateToken(c, acc.ID, "script")
	if err != nil {
		t.Fatal(err)
	}
	_, samTok, err := svc.Login(c, Origin{}, "sam", goodPassword, store.SessionBrowser, "sam's laptop")
	if err != nil {
		t.Fatal(err)
	}
	allAlive := func(when string) {
		t.Helper()
		for name, tok := range map[string]string{"current": curTok, "phone": phoneTok, "api": apiTok, "sam": samTok} {
			if _, _, err := svc.Authenticate(c, tok); err != nil {
				t.Errorf("%s: %s session ended: %v", when, name, err)
			}
		}
	}

	if err := svc.ChangePassword(c, acc.ID, "not my password", otherPassword, current.ID); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong current password: %v, want ErrInvalid", err)
	}
	allAlive("after a wrong current password")
	for _, weak := range []string{"password", "short", "alexalexalexalex", "qwertyuiopasdf"} {
		if err := svc.ChangePassword(c, acc.ID, goodPassword, weak, current.ID); !errors.Is(err, ErrInvalid) {
			t.Errorf("weak new password %q: %v, want ErrInvalid", weak, err)
		}
	}
	allAlive("after refused new passwords")
	if _, _, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, "check"); err != nil {
		t.Fatalf("refused changes altered the password: %v", err)
	}
	if err := svc.ChangePassword(c, "acc_missing", goodPassword, otherPassword, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ChangePassword of a missing account: %v, want store.ErrNotFound", err)
	}

	if err := svc.ChangePassword(c, acc.ID, goodPassword, otherPassword, current.ID); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	if _, ss, err := svc.Authenticate(c, curTok); err != nil || ss.ID != current.ID {
		t.Errorf("current session after password change: %v", err)
	}
	for name, tok := range map[string]string{"phone": phoneTok, "api token": apiTok} {
		if _, _, err := svc.Authenticate(c, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s session after password change: %v, want ErrUnauthenticated", name, err)
		}
	}
	if _, _, err := svc.Authenticate(c, samTok); err != nil {
		t.Errorf("another account's session ended by alex's password change: %v", err)
	}
	if list, _ := db.Sessions(c, acc.ID); len(list) != 1 || list[0].ID != current.ID {
		t.Errorf("sessions left after password change: %+v, want only the current one", list)
	}
	if _, _, err := svc.Login(c, Origin{}, "alex", goodPassword, store.SessionBrowser, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("login with the old password: %v, want ErrUnauthenticated", err)
	}
	if _, _, err := svc.Login(c, Origin{}, "alex", otherPassword, store.SessionBrowser, ""); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
}
