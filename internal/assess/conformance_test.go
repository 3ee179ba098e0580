package assess

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
)

type fakeLive struct{ accepted bool }

func (f fakeLive) DefaultCredentials(context.Context) []LiveResult {
	return []LiveResult{{Name: "MQTT login with a known default credential is refused", Passed: !f.accepted, Detail: "admin/***** on MQTT"}}
}

func row(c *Conformance, clause string) Row {
	for _, r := range c.Rows {
		if r.Clause == clause {
			return r
		}
	}
	return Row{}
}

func confEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Key, e.cfg.Live = key, fakeLive{}
	e.rebuild()
	return e
}

func TestConformanceCoversEveryClause(t *testing.T) {
	e := confEnv(t)
	v, c, err := e.svc.Conformance(t.Context(), operator)
	if err != nil {
		t.Fatal(err)
	}
	for _, clause := range []string{"2A", "2B(a)", "2B(b)", "2B(c)", "2B(d)", "2B(e)", "2C passwords", "2C updates", "2D", "3 accountability", "3 abuse", "4",
		"5.1-1", "5.1-5", "5.2-3", "5.3-16", "5.4-4", "5.5-8", "5.6-9", "5.7-2", "5.8-3", "5.9-3", "5.10-1", "5.11-4", "5.12-3", "5.13-1", "6-1", "6-5"} {
		r := row(c, clause)
		if r.Status == "" || r.Evidence == "" || r.Title == "" {
			t.Errorf("clause %s: %+v", clause, r)
		}
		if r.Status != Met && r.Status != NotApplicable && r.Missing == "" {
			t.Errorf("clause %s is %s but says nothing is missing", clause, r.Status)
		}
	}
	// Parts this hub does not have are not met, never met by default.
	if r := row(c, "2C updates"); r.Status != NotMet || !strings.Contains(r.Evidence, NotAvailable) {
		t.Errorf("updates without the part: %+v", r)
	}
	if r := row(c, "5.1-1"); r.Status != Met || !strings.Contains(r.Evidence, "Live") {
		t.Errorf("default passwords with the live test passing: %+v", r)
	}
	if _, err := Verify(e.svc.PublicKey(), v.Document, v.Signature); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(logActions(t, e.alog), ActionReportSign) {
		t.Fatal("the report is not in the transparency log")
	}
	// Only the admin's.
	if _, _, err := e.svc.Conformance(t.Context(), access0Person()); err == nil {
		t.Fatal("a person who is not the admin got the report")
	}
	// A default credential accepted fails the row.
	e.cfg.Live = fakeLive{accepted: true}
	e.rebuild()
	if _, c, err := e.svc.Conformance(t.Context(), operator); err != nil || row(c, "5.1-1").Status != NotMet {
		t.Fatalf("accepted default: %+v %v", row(c, "5.1-1"), err)
	}
}

// Moving the plain listener onto the network opens an audit finding and
// turns the related conformance row; moving it back reverses both. The
// addresses are only configured, never bound: the check reads the
// configuration, as it does on a hub whose LAN address is one of these.
func TestPlainListenerChangesFindingAndRow(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", ":1883", "192.168.1.20:1883", "10.0.0.7:1883", "[fd00::20]:1883", "hub.lan:1883"} {
		t.Run(addr, func(t *testing.T) {
			e := confEnv(t)
			e.cfg.Listeners = []Listener{{Name: "MQTT", Flag: "--mqtt-addr", Addr: "127.0.0.1:1883"}}
			e.rebuild()
			_, before, err := e.svc.Conformance(t.Context(), operator)
			if err != nil {
				t.Fatal(err)
			}
			if row(before, "5.5-1").Status == NotMet || len(open(e.run(), checkPlainListener)) != 0 {
				t.Fatalf("loopback listener: %+v", row(before, "5.5-1"))
			}
			e.cfg.Listeners = []Listener{{Name: "MQTT", Flag: "--mqtt-addr", Addr: addr}}
			e.rebuild()
			v, after, err := e.svc.Conformance(t.Context(), operator)
			if err != nil {
				t.Fatal(err)
			}
			r := row(after, "5.5-1")
			if r.Status != NotMet || !strings.Contains(r.Evidence, addr) {
				t.Fatalf("row 5.5-1 on the network: %+v", r)
			}
			f := open(e.run(), checkPlainListener)
			if len(f) != 1 || !strings.Contains(f[0].Evidence, addr) || f[0].Fix == "" {
				t.Fatalf("audit finding for the listener: %+v", f)
			}
			if !slices.ContainsFunc(v.Changes, func(c string) bool { return strings.Contains(c, "ETSI EN 303 645 5.5-1 is not met") }) {
				t.Fatalf("changes do not name the row: %q", v.Changes)
			}
			// Back on loopback: the finding closes and the row turns back.
			e.cfg.Listeners = []Listener{{Name: "MQTT", Flag: "--mqtt-addr", Addr: "127.0.0.1:1883"}}
			e.rebuild()
			_, back, err := e.svc.Conformance(t.Context(), operator)
			if err != nil {
				t.Fatal(err)
			}
			if row(back, "5.5-1").Status == NotMet {
				t.Fatalf("row 5.5-1 back on loopback: %+v", row(back, "5.5-1"))
			}
			e.mustClose(checkPlainListener, f[0].ID)
		})
	}
}
