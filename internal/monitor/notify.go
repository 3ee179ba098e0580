package monitor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Notice is one alarm on its way out of the hub.
type Notice struct {
	Household string
	Alarm     Alarm
	Action    Action
}

// Notifier sends notices outside the hub and says how many messages went
// out.
type Notifier interface {
	Notify(ctx context.Context, n Notice) (sent int, err error)
}

// Prefs reads each person's choice of which alarms reach them.
type Prefs interface {
	AlertPrefs(ctx context.Context, householdID string) ([]store.AlertPrefs, error)
}

// Dispatch sends notices by webhook (hub-wide, set by the admin) and by
// e-mail (to each person of the household whose chosen severity the alarm
// reaches).
type Dispatch struct {
	Webhook *Webhook // nil: no webhook
	// WebhookMin is the lowest severity sent to the webhook (default Info).
	WebhookMin Severity
	Mail       *Mailer // nil: no e-mail
	Prefs      Prefs
}

// Notify sends n on every channel that wants it.
func (d *Dispatch) Notify(ctx context.Context, n Notice) (int, error) {
	var (
		sent int
		errs []error
	)
	if d.Webhook != nil && n.Alarm.Severity >= max(d.WebhookMin, Info) {
		if err := d.Webhook.Send(ctx, n); err != nil {
			errs = append(errs, err)
		} else {
			sent++
		}
	}
	if d.Mail != nil && d.Prefs != nil && n.Household != "" {
		ps, err := d.Prefs.AlertPrefs(ctx, n.Household)
		if err != nil {
			errs = append(errs, fmt.Errorf("alert choices of household %s: %w", n.Household, err))
		}
		for _, p := range ps {
			min, err := ParseSeverity(p.MinSeverity)
			if err != nil || p.Email == "" || n.Alarm.Severity < min {
				continue
			}
			if err := d.Mail.Send(ctx, p.Email, n); err != nil {
				errs = append(errs, err)
			} else {
				sent++
			}
		}
	}
	return sent, errors.Join(errs...)
}

// webhookBody is what the webhook receives: ids, counts and the plain
// explanation, never reading values.
type webhookBody struct {
	Device    string    `json:"device,omitempty"`
	Type      string    `json:"type,omitempty"`
	Household string    `json:"household,omitempty"`
	Kind      Kind      `json:"kind"`
	Severity  string    `json:"severity"`
	Stream    string    `json:"stream,omitempty"`
	Observed  float64   `json:"observed"`
	Limit     float64   `json:"limit"`
	Window    string    `json:"window"`
	Raised    time.Time `json:"raised"`
	Action    Action    `json:"action"`
	Why       string    `json:"why"`
	Risk      string    `json:"risk"`
	Next      string    `json:"next"`
}

// Webhook posts signed notices. The signature is Ed25519 over the
// timestamp, a full stop and the body, so a receiver can check with the
// hub's public key alone that the notice came from the hub and is fresh.
type Webhook struct {
	URL    string
	Key    ed25519.PrivateKey
	Client *http.Client // nil: a client with a 10 s timeout
	Now    func() time.Time
}

// Signature headers of a webhook request.
const (
	HeaderTimestamp = "Candor-Timestamp" // Unix seconds
	HeaderSignature = "Candor-Signature" // base64 (std) Ed25519 signature
)

// Send posts one notice.
func (w *Webhook) Send(ctx context.Context, n Notice) error {
	a := n.Alarm
	ex := a.Explain()
	body, err := json.Marshal(webhookBody{Device: a.Device, Type: a.Type, Household: n.Household, Kind: a.Kind,
		Severity: a.Severity.String(), Stream: a.Stream, Observed: a.Observed, Limit: a.Limit,
		Window: a.Window.String(), Raised: a.Raised.UTC(), Action: n.Action, Why: ex.Why, Risk: ex.Risk, Next: ex.Next})
	if err != nil {
		return fmt.Errorf("webhook body: %w", err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	sig := ed25519.Sign(w.Key, signedMessage(ts, body))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func signedMessage(ts string, body []byte) []byte {
	return append([]byte(ts+"."), body...)
}

// VerifyWebhook reports whether sig (the Candor-Signature header) signs
// ts (the Candor-Timestamp header) and body under the hub's public key,
// and whether ts is within maxAge of now. Receivers should also refuse a
// timestamp they have seen before.
func VerifyWebhook(pub ed25519.PublicKey, ts, sig string, body []byte, now time.Time, maxAge time.Duration) bool {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return false
	}
	return ed25519.Verify(pub, signedMessage(ts, body), raw)
}

// Mailer sends notices over SMTP.
type Mailer struct {
	Addr string // host:port of the SMTP server
	From string
	// Auth, when set, logs in (net/smtp refuses PLAIN auth without TLS
	// except to localhost).
	Auth smtp.Auth
}

// Send mails one notice to one person.
func (ml *Mailer) Send(ctx context.Context, to string, n Notice) error {
	if strings.ContainsAny(to, "\r\n") || strings.ContainsAny(ml.From, "\r\n") {
		return errors.New("mail: address with a line break")
	}
	a := n.Alarm
	ex := a.Explain()
	subject := "Candor: a device needs your attention"
	if a.Kind == KindWave {
		subject = "Candor: many devices of one type need your attention"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", ml.From, to, subject)
	if a.Device != "" {
		fmt.Fprintf(&b, "Device: %s\r\n", a.Device)
	}
	fmt.Fprintf(&b, "What we saw: %s\r\nThe risk: %s\r\nWhat you can do: %s\r\nWhat the hub did: %s\r\n", ex.Why, ex.Risk, ex.Next, actionWords(n.Action))
	// net/smtp takes no context; the send runs on the monitor's own
	// goroutine, and the server's own timeouts bound it.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := smtp.SendMail(ml.Addr, ml.Auth, ml.From, []string{to}, []byte(b.String())); err != nil {
		return fmt.Errorf("mail to a household member: %w", err)
	}
	return nil
}

func actionWords(a Action) string {
	switch a {
	case ActRateLimit:
		return "It slowed the device down. Messages over the limit are not kept."
	case ActQuarantine:
		return "It put the device on hold. The hub keeps nothing it sends until you release it."
	case ActRevoke:
		return "It turned off the device's secret. Set the device up again to use it."
	}
	return "Nothing yet. It only told you."
}
