package web

import "testing"

// The browser tests share one Chromium (startBrowser); each test must
// still start from an empty browser, as it did with a browser of its own:
// no cookie, no stored data left by the test before, and the same window.
func TestBrowserTabsStartEmpty(t *testing.T) {
	h := startHub(t)
	t.Run("first", func(t *testing.T) {
		tb := startBrowser(t, h.srv.URL)
		tb.open("/login")
		eval[bool](tb, `document.cookie = "left=behind; path=/"; localStorage.setItem("left", "behind"); sessionStorage.setItem("left", "behind"); true`)
		if got := eval[string](tb, `document.cookie`); got == "" {
			t.Fatal("the page could not set a cookie, so this test shows nothing")
		}
	})
	t.Run("second", func(t *testing.T) {
		tb := startBrowser(t, h.srv.URL)
		tb.open("/login")
		got := eval[struct {
			Cookie, Local, Session string
			Width                  int
		}](tb, `({Cookie: document.cookie, Local: localStorage.getItem("left") || "", Session: sessionStorage.getItem("left") || "", Width: window.innerWidth})`)
		if got.Cookie != "" || got.Local != "" || got.Session != "" {
			t.Errorf("a new tab sees what the last test left: cookie %q, localStorage %q, sessionStorage %q", got.Cookie, got.Local, got.Session)
		}
		if got.Width != 1280 {
			t.Errorf("window is %d px wide, want 1280 (chromedp.WindowSize)", got.Width)
		}
	})
}
