package assess

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Check names, stable: they are part of finding ids and of the API.
const (
	checkPlainListener       = "plain-listener"
	checkCertCoverage        = "certificate-coverage"
	checkCertExpiry          = "certificate-expiry"
	checkDeviceCredentialAge = "credential-age"
	checkUnseen              = "unseen-device"
	checkChosenSecret        = "chosen-secret"
	checkRecipientTerms      = "recipient-terms"
	checkPlaceholders        = "manifest-placeholder"
	checkMetrics             = "open-metrics"
	checkFilePermissions     = "file-permissions"
	checkCheckpoint          = "checkpoint-kept-local"
	checkSupport             = "support-ended"
	checkAdvisories          = "open-advisories"
	checkFeeds               = "stale-advisory-feeds"
	checkUpdates             = "expired-update-metadata"
	checkQuarantine          = "quarantined-device"
	checkSecondFactor        = "admin-second-factor"
)

// placeholderContact is what importers write where the maker's contact
// is not known (internal/manifest/importer); a confirmed manifest should
// not keep it.
const placeholderContact = "unknown@invalid.invalid"

// certExpiryWarning is how long before expiry a certificate is flagged.
const certExpiryWarning = 30 * 24 * time.Hour

type check struct {
	name, title string
	// available returns why the check cannot run here ("" when it can).
	available func(*Service) string
	run       func(*run, context.Context) error
}

// checks is every audit check, in the order reports list them.
var checks = []check{
	{name: checkPlainListener, title: "No unencrypted listener on the network", run: (*run).plainListeners},
	{name: checkCertCoverage, title: "The TLS certificate covers the names devices use", available: needCert, run: (*run).certCoverage},
	{name: checkCertExpiry, title: "The TLS certificate is not about to expire", available: needCert, run: (*run).certExpiry},
	{name: checkDeviceCredentialAge, title: "Device credentials are rotated in time", available: needRotation, run: (*run).credentialAge},
	{name: checkUnseen, title: "Silent devices do not keep a working credential", run: (*run).unseen},
	{name: checkChosenSecret, title: "Device secrets are generated, not chosen", run: (*run).chosenSecrets},
	{name: checkRecipientTerms, title: "Every recipient in a manifest in force has a contact and terms", run: (*run).recipientTerms},
	{name: checkPlaceholders, title: "No confirmed manifest keeps an import placeholder", run: (*run).placeholders},
	{name: checkMetrics, title: "Metrics need a login on the network", available: needMetrics, run: (*run).metrics},
	{name: checkFilePermissions, title: "Data files are private to the hub's user", run: (*run).filePermissions},
	{name: checkCheckpoint, title: "The log's checkpoint is kept somewhere besides the hub", available: needLogSize, run: (*run).checkpoint},
	{name: checkSupport, title: "Devices are within their support period", available: optional(func(s *Service) bool { return s.cfg.Support != nil }), run: (*run).support},
	{name: checkAdvisories, title: "No device has an open security advisory", available: optional(func(s *Service) bool { return s.cfg.Advisories != nil }), run: (*run).advisories},
	{name: checkFeeds, title: "Advisory feeds are refreshed", available: optional(func(s *Service) bool { return present(s.cfg.Feeds) }), run: (*run).feeds},
	{name: checkUpdates, title: "Update metadata has not expired", available: optional(func(s *Service) bool { return present(s.cfg.Updates) }), run: (*run).updates},
	{name: checkQuarantine, title: "No device is in quarantine", available: optional(func(s *Service) bool { return s.cfg.Quarantine != nil }), run: (*run).quarantine},
	{name: checkSecondFactor, title: "Admin accounts have a second factor", available: optional(func(s *Service) bool { return s.cfg.SecondFA != nil }), run: (*run).secondFactor},
}

// NotAvailable is the note of a check whose part this hub does not have.
const NotAvailable = "not available on this hub"

func optional(has func(*Service) bool) func(*Service) string {
	return func(s *Service) string {
		if has(s) {
			return ""
		}
		return NotAvailable
	}
}

func needCert(s *Service) string {
	if s.cfg.Certificate == nil {
		return "the hub serves no TLS certificate (see the unencrypted-listener check)"
	}
	return ""
}

func needRotation(s *Service) string {
	if s.cfg.RotationPeriod <= 0 {
		return "no rotation period is set (--credential-rotation)"
	}
	return ""
}

func needMetrics(s *Service) string {
	if s.metricsURLNow() == "" {
		return NotAvailable
	}
	return ""
}

func needLogSize(s *Service) string {
	if s.cfg.LogSize == nil {
		return NotAvailable
	}
	return ""
}

// run is one audit run: what it has found so far.
type run struct {
	s     *Service
	now   time.Time
	found []Finding
	devs  []store.Device // loaded once, on first use
}

func (r *run) add(f Finding) {
	f.ID = f.Check + ":" + f.Subject
	if f.Household != "" {
		f.ID = f.Check + ":" + f.Household + ":" + f.Subject
	}
	r.found = append(r.found, f)
}

// devices are the devices whose credential still works.
func (r *run) devices(ctx context.Context) ([]store.Device, error) {
	if r.devs == nil {
		all, err := r.s.cfg.Store.AllDevices(ctx)
		if err != nil {
			return nil, err
		}
		r.devs = []store.Device{}
		for _, d := range all {
			if !d.Revoked() {
				r.devs = append(r.devs, d)
			}
		}
	}
	return r.devs, nil
}

// Loopback reports whether a listen address (host:port) is reachable from
// this machine only. An empty host or an unspecified address (0.0.0.0,
// ::) listens on every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (r *run) plainListeners(context.Context) error {
	for _, l := range r.s.cfg.Listeners {
		if l.TLS || l.Addr == "" || Loopback(l.Addr) {
			continue
		}
		r.add(Finding{Check: checkPlainListener, Severity: High, Subject: l.Name,
			Title:    "The " + l.Name + " listener is not encrypted and faces the network",
			Evidence: fmt.Sprintf("%s listens on %s (set by %s) without TLS.", l.Name, l.Addr, l.Flag),
			Why:      "Anyone on the same network can read what passes through it, including device secrets and readings. They can also change it on the way.",
			Fix:      fmt.Sprintf("Use the TLS listener for the network (--tls-self-signed or --tls-cert), and move %s to 127.0.0.1 or turn it off.", l.Flag),
		})
	}
	return nil
}

func (r *run) certCoverage(context.Context) error {
	missing := r.s.cfg.Hosts.MissingFrom(r.s.cfg.Certificate)
	if len(missing) == 0 {
		return nil
	}
	r.add(Finding{Check: checkCertCoverage, Severity: Medium, Subject: "tls",
		Title:    "The TLS certificate does not cover every name devices may use",
		Evidence: fmt.Sprintf("Not in the certificate: %s.", strings.Join(missing, ", ")),
		Why:      "A device that reaches the hub by a name the certificate lacks must either fail or stop checking who it talks to. A device that stops checking can be fooled.",
		Fix:      "With --tls-self-signed, add the names with --tls-names and restart; with your own certificate, get one that lists them.",
	})
	return nil
}

func (r *run) certExpiry(context.Context) error {
	c := r.s.cfg.Certificate
	left := c.NotAfter.Sub(r.now)
	if left > certExpiryWarning {
		return nil
	}
	sev, title := Medium, "The TLS certificate expires soon"
	if left <= 0 {
		sev, title = Critical, "The TLS certificate has expired"
	}
	r.add(Finding{Check: checkCertExpiry, Severity: sev, Subject: "tls", Title: title,
		Evidence: fmt.Sprintf("The certificate (serial %s) is valid until %s, %d days from now.", c.SerialNumber.Text(16), c.NotAfter.UTC().Format(time.DateOnly), days(left+12*time.Hour)),
		Why:      "Once it expires, devices that check it can no longer connect. Some will stop checking, and then anyone can pose as the hub.",
		Fix:      "Renew it. A hub started with --tls-self-signed renews its own certificate when it restarts.",
	})
	return nil
}

func (r *run) credentialAge(ctx context.Context) error {
	devs, err := r.devices(ctx)
	if err != nil {
		return err
	}
	limit := r.s.cfg.RotationPeriod
	for _, d := range devs {
		age := r.now.Sub(d.CredentialSetAt)
		if age <= limit {
			continue
		}
		r.add(Finding{Check: checkDeviceCredentialAge, Severity: Medium, Household: d.HouseholdID, Subject: d.ID,
			Title:    "This device has had the same secret for too long",
			Evidence: fmt.Sprintf("Device %s got its secret %d days ago; the limit is %d days.", d.ID, days(age), days(limit)),
			Why:      "The longer a secret lives, the more time someone has to copy it. A copied secret lets them send data as this device.",
			Fix:      "Give the device a new secret, then put it on the device.",
			FixURL:   "/devices/" + d.ID + "/rotate",
		})
	}
	return nil
}

func days(d time.Duration) int { return int(d.Hours() / 24) }

func (r *run) unseen(ctx context.Context) error {
	devs, err := r.devices(ctx)
	if err != nil {
		return err
	}
	for _, d := range devs {
		// A device is seen no earlier than it got its secret, so a recent
		// secret settles it without a query. Whether it is connected is
		// asked last, for the few that look silent: the broker answers by
		// walking every connection, which for every device of a large
		// fleet cost O(n²) (4 s of CPU for 10,000 devices after a
		// restart; issue #19).
		if r.now.Sub(d.CredentialSetAt) <= r.s.cfg.UnseenAfter {
			continue
		}
		last, err := r.s.cfg.Store.LastReadingAt(ctx, d.ID)
		if err != nil {
			return err
		}
		seen, what := last, "sent its last reading"
		if seen.IsZero() || d.CredentialSetAt.After(seen) {
			seen, what = d.CredentialSetAt, "got its secret and has sent nothing since"
		}
		if r.now.Sub(seen) <= r.s.cfg.UnseenAfter {
			continue
		}
		if r.s.cfg.Presence != nil && r.s.cfg.Presence.Connected(d.ID) {
			continue
		}
		r.add(Finding{Check: checkUnseen, Severity: Low, Household: d.HouseholdID, Subject: d.ID,
			Title:    "A silent device still has a working secret",
			Evidence: fmt.Sprintf("Device %s %s %d days ago; the limit is %d days.", d.ID, what, days(r.now.Sub(seen)), days(r.s.cfg.UnseenAfter)),
			Why:      "A device you no longer use may be lost, sold or thrown away with its secret inside. Whoever has it can still send data as you.",
			Fix:      "If you no longer use it, revoke its secret. If you do, check that it still works.",
			FixURL:   "/devices/" + d.ID + "/revoke",
		})
	}
	return nil
}

func (r *run) chosenSecrets(ctx context.Context) error {
	ids, err := r.s.cfg.Store.ChosenSecretDevices(ctx)
	if err != nil {
		return err
	}
	devs, err := r.devices(ctx)
	if err != nil {
		return err
	}
	live := make(map[string]store.Device, len(devs))
	for _, d := range devs {
		live[d.ID] = d
	}
	for _, id := range ids {
		d, ok := live[id]
		if !ok {
			continue
		}
		r.add(Finding{Check: checkChosenSecret, Severity: Low, Household: d.HouseholdID, Subject: d.ID,
			Title:    "A device uses a secret a person chose",
			Evidence: fmt.Sprintf("Device %s uses a secret that was typed in, not made by the hub.", d.ID),
			Why:      "People pick secrets that are easier to guess than the long random ones the hub makes.",
			Fix:      "Let the hub make a new secret, then put it on the device.",
			FixURL:   "/devices/" + d.ID + "/rotate",
		})
	}
	return nil
}
