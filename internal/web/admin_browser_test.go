package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// TestBrowserPeoplePages has the admin make a household and an owner
// change a member's role in Chromium, with the keyboard where no mouse is
// needed, and audits every state of the pages with axe-core.
func TestBrowserPeoplePages(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
	ctx := context.Background()
	alex := h.setup("alex")
	if _, err := h.id.CreateAccount(ctx, identity.NewAccount{HouseholdID: alex.HouseholdID, Username: "kim", Password: "quiet-harbour-lantern-7", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")

	tb.open("/admin")
	tb.checkA11y("all households")
	tb.checkFocusVisible("all households")
	tb.step("fill the household form (weak password)",
		chromedp.SendKeys(chromedp.ID("household-name"), "Flat 2"),
		chromedp.SendKeys(chromedp.ID("owner-username"), "sam"),
		chromedp.SendKeys(chromedp.ID("owner-password"), "password123"))
	tb.submit("make a household", "main form button[type=submit]")
	if msg := eval[string](tb, `document.querySelector('.error-summary').textContent`); !strings.Contains(msg, "This password is refused") {
		t.Errorf("the refused form says %q", msg)
	}
	if eval[string](tb, `document.activeElement.className`) != "error-summary" {
		t.Error("focus did not move to the error summary")
	}
	tb.checkA11y("all households, refused")
	tb.step("fill the password", chromedp.SendKeys(chromedp.ID("owner-password"), "marble-otter-sunrise-19"))
	tb.submit("make a household", "main form button[type=submit]")
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "The household Flat 2 is made.") {
		t.Errorf("after making a household the page says %q", msg)
	}
	tb.checkA11y("all households, one made")
	tb.screenshot("admin")

	tb.open("/household")
	tb.checkA11y("household")
	tb.checkFocusVisible("household")
	// Keyboard only: Tab to kim's "Make an owner" and press Enter.
	tb.tabTo("the role button", `document.activeElement.textContent.startsWith('Make an owner')`)
	ctx2, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	if _, err := chromedp.RunResponse(ctx2, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("Enter on the role button: %v", err)
	}
	cancel()
	if msg := eval[string](tb, `document.querySelector('.status-message').textContent`); !strings.Contains(msg, "kim is now an owner of your household.") {
		t.Errorf("after the role change the page says %q", msg)
	}
	if a, _ := h.st.AccountByUsername(ctx, "kim"); a.Role != store.RoleOwner {
		t.Errorf("kim is %s", a.Role)
	}
	tb.checkA11y("household, role changed")
	tb.step("fill the member form (taken username)",
		chromedp.SendKeys(chromedp.ID("member-username"), "sam"),
		chromedp.SendKeys(chromedp.ID("member-password"), "amber-willow-canyon-31"))
	tb.submit("add a person", "form[action='/household/members'] button[type=submit]")
	if msg := eval[string](tb, `document.querySelector('.error-summary').textContent`); !strings.Contains(msg, "already taken") {
		t.Errorf("the refused member form says %q", msg)
	}
	tb.checkA11y("household, refused")
	tb.screenshot("household")
	tb.checkProblems("end")
}
