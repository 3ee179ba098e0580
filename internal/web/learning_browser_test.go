package web

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// TestBrowserLearningPage audits the machine-learning register with
// axe-core in Chromium: the owner's view with its switches, after a
// switch, and a member's read-only view with its "ask" buttons.
func TestBrowserLearningPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
	ctx := context.Background()
	alex := h.setup("alex")
	if _, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim", Password: kimPassword, Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	h.addDevice(alex.HouseholdID, "Hall heating", "thermostat")
	h.addDevice(alex.HouseholdID, "Porch camera", "motion-camera")

	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	login := func(user, pw string) {
		tb.open("/login")
		tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), pw))
		tb.submit("log in", "main form button[type=submit]")
	}

	login("alex", goodPassword)
	tb.open("/machine-learning")
	tb.checkA11y("machine learning, owner")
	tb.checkFocusVisible("machine learning, owner")
	tb.submit("turn learning off", `form[action="/machine-learning/switch"] input[value="candor:MachineLearning"] ~ button`)
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "learning from it is off") {
		t.Errorf("after the switch the page says %q", msg)
	}
	tb.checkA11y("machine learning, switched")
	tb.submit("log out", `form[action="/logout"] button`)

	login("kim", kimPassword)
	tb.open("/machine-learning")
	if n := eval[int](tb, `document.querySelectorAll('form[action="/machine-learning/switch"]').length`); n != 0 {
		t.Errorf("the member's register has %d switches, want none", n)
	}
	tb.checkA11y("machine learning, member")
	tb.submit("ask", `form[action="/machine-learning/ask"] button`)
	tb.checkA11y("machine learning, member asked")
}
