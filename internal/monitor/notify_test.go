package monitor

import (
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// smtpReceiver is a minimal SMTP server (RFC 5321's HELO/EHLO, MAIL, RCPT,
// DATA, QUIT), enough for net/smtp to deliver to it.
type smtpReceiver struct {
	addr string
	got  chan mail
}

type mail struct {
	to   []string
	data string
}

func startSMTP(t *testing.T) *smtpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &smtpReceiver{addr: ln.Addr().String(), got: make(chan mail, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { r.serve(c) })
		}
	})
	return r
}

func (r *smtpReceiver) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	_ = tp.PrintfLine("220 test ESMTP")
	var m mail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch cmd {
		case "EHLO", "HELO":
			_ = tp.PrintfLine("250 test")
		case "MAIL":
			m = mail{}
			_ = tp.PrintfLine("250 ok")
		case "RCPT":
			to := strings.TrimSuffix(strings.TrimPrefix(line[len("RCPT TO:"):], "<"), ">")
			m.to = append(m.to, to)
			_ = tp.PrintfLine("250 ok")
		case "DATA":
			_ = tp.PrintfLine("354 go on")
			b, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.data = string(b)
			r.got <- m
			_ = tp.PrintfLine("250 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("250 ok")
		}
	}
}

type hook struct {
	ts, sig string
	body    []byte
}

func startWebhook(t *testing.T) (string, chan hook) {
	got := make(chan hook, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- hook{r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), b}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// Notices reach a real webhook receiver, signed so that the hub's public
// key verifies them, and a real SMTP receiver for each person whose
// chosen severity the alarm reaches.
func TestDispatch(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	for _, a := range []struct{ id, sev, email string }{
		{"a1", "info", "ann@example.org"},
		{"a2", "critical", "bob@example.org"},
		{"a3", "warning", ""}, // chose no e-mail
	} {
		if err := p.st.CreateAccount(ctx, store.Account{ID: a.id, HouseholdID: "h1", Username: a.id,
			PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$x", Role: store.RoleOwner, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := p.st.PutAlertPrefs(ctx, store.AlertPrefs{AccountID: a.id, MinSeverity: a.sev, Email: a.email}); err != nil {
			t.Fatal(err)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	url, hooks := startWebhook(t)
	smtpd := startSMTP(t)
	d := &Dispatch{
		Webhook: &Webhook{URL: url, Key: priv}, WebhookMin: Warning,
		Mail:  &Mailer{Addr: smtpd.addr, From: "hub@candor.test"},
		Prefs: p.st,
	}
	tests := []struct {
		sev     Severity
		hook    bool
		mailTo  []string
		wantSum int
	}{
		{Info, false, []string{"ann@example.org"}, 1},
		{Warning, true, []string{"ann@example.org"}, 2},
		{Critical, true, []string{"ann@example.org", "bob@example.org"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.sev.String(), func(t *testing.T) {
			a := Alarm{Device: "d1", Kind: KindDeclaredRate, Severity: tc.sev, Stream: "power", Observed: 5400, Limit: 120, Window: time.Minute, Raised: t0}
			sent, err := d.Notify(ctx, Notice{Household: "h1", Alarm: a, Action: ActQuarantine})
			if err != nil || sent != tc.wantSum {
				t.Fatalf("Notify = %d, %v; want %d sent", sent, err, tc.wantSum)
			}
			if tc.hook {
				h := <-hooks
				if !VerifyWebhook(pub, h.ts, h.sig, h.body, time.Now(), time.Minute) {
					t.Fatalf("signature does not verify: %s", h.body)
				}
				if !strings.Contains(string(h.body), `"kind":"declared_rate"`) || !strings.Contains(string(h.body), "5400") {
					t.Errorf("webhook body %s", h.body)
				}
				tampered := append([]byte(nil), h.body...)
				tampered[len(tampered)-2] ^= 1
				if VerifyWebhook(pub, h.ts, h.sig, tampered, time.Now(), time.Minute) {
					t.Error("a changed body still verifies")
				}
				if VerifyWebhook(pub, h.ts, h.sig, h.body, time.Now().Add(time.Hour), time.Minute) {
					t.Error("an old notice still verifies")
				}
			}
			var to []string
			for range tc.mailTo {
				m := <-smtpd.got
				to = append(to, m.to...)
				if !strings.Contains(m.data, "5400") || !strings.Contains(m.data, "put the device on hold") {
					t.Errorf("mail body:\n%s", m.data)
				}
			}
			slices.Sort(to)
			if !slices.Equal(to, tc.mailTo) {
				t.Errorf("mailed %v; want %v", to, tc.mailTo)
			}
		})
	}
	select {
	case h := <-hooks:
		t.Errorf("unexpected webhook %s", h.body)
	case m := <-smtpd.got:
		t.Errorf("unexpected mail to %v", m.to)
	default:
	}
}

// A notice sent is recorded in the log, with how many went out.
func TestNoticeLogged(t *testing.T) {
	ctx := t.Context()
	p := newParts(t)
	url, hooks := startWebhook(t)
	_, priv, _ := ed25519.GenerateKey(nil)
	m, c := p.monitor(t, Config{Notifier: &Dispatch{Webhook: &Webhook{URL: url, Key: priv}}})
	flood(m, c, "d1", 3)
	applyAll(ctx, m)
	<-hooks
	got := p.actions(t, "d1")
	if !slices.Contains(got, ActionAlarmNotify) {
		t.Fatalf("log %v lacks %s", got, ActionAlarmNotify)
	}
}
