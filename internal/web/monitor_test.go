package web

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

// monitorClock is the monitor's injected time, moved by the test.
type monitorClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *monitorClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *monitorClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startHubWithMonitor is the test hub with a real abuse monitor on an
// injected clock, recording in the hub's log; floodDevice makes it
// quarantine a device.
func startHubWithMonitor(t *testing.T) (*testHub, *monitor.Monitor, *monitorClock) {
	t.Helper()
	clk := &monitorClock{t: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	var mon *monitor.Monitor
	h := startHubRecording(t, nil, func(c *Config) {
		mon = monitor.New(monitor.Config{Now: clk.Now, Log: c.Log, Store: c.Store.(monitor.Store), Devices: c.Store.(monitor.Devices),
			History: c.Store.(monitor.History), Actions: c.Store.(monitor.ActionStore)})
		c.Monitor, c.Policies, c.Alerts = mon, mon, c.Store.(AlertPrefs)
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go mon.Run(ctx)
	return h, mon, clk
}

func floodDevice(t *testing.T, mon *monitor.Monitor, clk *monitorClock, id string) {
	t.Helper()
	for range 3 {
		for range 3000 {
			mon.Reading(monitor.Reading{Device: id, Type: "smart-meter", Stream: "power", Size: 40, PerMinute: 60, MaxBytes: 256})
		}
		clk.add(time.Minute)
		mon.Tick()
	}
	mon.Flush(context.Background())
	// Run applies the quarantine on its own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, ok := mon.Status(id); ok && st.Quarantined {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood was not quarantined")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The device page tells the owner, in plain words with the numbers, why
// the device is on hold, what the risk is and what to do; releasing it
// needs a reason and is logged.
func TestDevicePageExplainsHold(t *testing.T) {
	t.Parallel()
	h, mon, clk := startHubWithMonitor(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	floodDevice(t, mon, clk, d.ID)

	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	text := visibleText(p.body)
	for _, want := range []string{"This device is on hold", "3000 messages", "at most 120", "Release it", "Give it a new secret",
		"How it behaved lately", "What the hub counted in the last day", "9000", "keeps these counts for 30 days"} {
		if !strings.Contains(text, want) {
			t.Errorf("device page lacks %q", want)
		}
	}
	i := strings.Index(text, "This device is on hold")
	j := strings.Index(text, "Lock it out for good")
	if i < 0 || j < i {
		t.Fatal("no watch section")
	}
	if e := readability.Ease(text[i:j]); e < 60 {
		t.Errorf("watch section scores %.0f on Flesch reading ease; want at least 60:\n%s", e, text[i:j])
	}
	i = strings.Index(text, "How it behaved lately")
	j = strings.Index(text, "What the hub counted in the last day")
	if i < 0 || j < i {
		t.Fatal("no behaviour section")
	}
	if e := readability.Ease(text[i:j]); e < 60 {
		t.Errorf("behaviour section scores %.0f on Flesch reading ease; want at least 60:\n%s", e, text[i:j])
	}

	tests := []struct {
		reason string
		held   bool
		says   string
	}{
		{"  ", true, "Say why you trust the device again."},
		{"It had a firmware bug; I updated it.", false, "The device is released."},
	}
	for _, tc := range tests {
		b.get("/devices/" + d.ID)
		p := b.post("/devices/"+d.ID+"/release", url.Values{"reason": {tc.reason}})
		if !strings.Contains(visibleText(p.body), tc.says) {
			t.Errorf("release %q: page lacks %q", tc.reason, tc.says)
		}
		if _, held := mon.Status(d.ID); held != tc.held {
			t.Errorf("release %q: held = %v; want %v", tc.reason, held, tc.held)
		}
	}
	n := 0
	for e, err := range h.alog.Entries(context.Background(), 0, h.alog.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Event.Action == monitor.ActionRelease && e.Event.Subject.Device == d.ID && e.Event.Actor.ID == alex.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d release entries by alex in the log; want 1", n)
	}
}

// The device page with a hold passes the axe audit.
func TestBrowserDeviceOnHold(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h, mon, clk := startHubWithMonitor(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Meter", "smart-meter")
	floodDevice(t, mon, clk, d.ID)
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")
	tb.open("/devices/" + d.ID)
	tb.checkA11y("device on hold")
	tb.checkFocusVisible("device on hold")
}
