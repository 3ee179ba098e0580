package assess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

// typesInUse maps each household to the device types of its live devices.
func (r *run) typesInUse(ctx context.Context) (map[string][]string, error) {
	devs, err := r.devices(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, d := range devs {
		if !slices.Contains(out[d.HouseholdID], d.Type) {
			out[d.HouseholdID] = append(out[d.HouseholdID], d.Type)
		}
	}
	return out, nil
}

// inForce returns the confirmed manifest in force for a type, or nil.
func (r *run) inForce(deviceType string) *manifest.Manifest {
	e, err := r.s.cfg.Manifests.Current(deviceType)
	if err != nil || e == nil || e.Draft || e.Manifest == nil {
		return nil
	}
	return e.Manifest
}

func (r *run) recipientTerms(ctx context.Context) error {
	types, err := r.typesInUse(ctx)
	if err != nil {
		return err
	}
	for hh, ts := range types {
		for _, t := range ts {
			m := r.inForce(t)
			if m == nil {
				continue
			}
			seen := map[string]bool{}
			for _, st := range m.Streams {
				for _, rc := range st.Recipients {
					var lacks []string
					if strings.TrimSpace(rc.Contact) == "" {
						lacks = append(lacks, "a contact")
					}
					if strings.TrimSpace(rc.Terms) == "" {
						lacks = append(lacks, "terms")
					}
					if len(lacks) == 0 || seen[rc.Name] {
						continue
					}
					seen[rc.Name] = true
					r.add(Finding{Check: checkRecipientTerms, Severity: Medium, Household: hh, Subject: t + "/" + rc.Name,
						Title:    "A recipient of your data has no " + strings.Join(lacks, " or "),
						Evidence: fmt.Sprintf("The manifest of %s (version in force) names the recipient %q without %s.", t, rc.Name, strings.Join(lacks, " or ")),
						Why:      "You cannot know what they do with your data, or whom to ask, if they give no terms or contact.",
						Fix:      "Ask the maker for a manifest that gives them. Until then, keep sharing with this recipient off.",
						FixURL:   "/recipients",
					})
				}
			}
		}
	}
	return nil
}

func hasPlaceholder(m *manifest.Manifest) []string {
	var where []string
	add := func(what, v string) {
		if strings.Contains(strings.ToLower(v), placeholderContact) {
			where = append(where, what)
		}
	}
	add("maker contact", m.Maker.Contact)
	add("support contact", m.Support.Contact)
	add("security contact", m.Support.VulnerabilityDisclosure)
	for _, st := range m.Streams {
		for _, rc := range st.Recipients {
			add("contact of recipient "+rc.Name, rc.Contact)
		}
	}
	return where
}

func (r *run) placeholders(ctx context.Context) error {
	types, err := r.typesInUse(ctx)
	if err != nil {
		return err
	}
	for hh, ts := range types {
		for _, t := range ts {
			m := r.inForce(t)
			if m == nil {
				continue
			}
			where := hasPlaceholder(m)
			if len(where) == 0 {
				continue
			}
			r.add(Finding{Check: checkPlaceholders, Severity: Medium, Household: hh, Subject: t,
				Title:    "The device's label still has a fake contact in it",
				Evidence: fmt.Sprintf("The manifest of %s in force still holds %s in: %s.", t, placeholderContact, strings.Join(where, ", ")),
				Why:      "When something goes wrong with this device, you will not know whom to tell.",
				Fix:      "Find the real contact of the maker, put it in the manifest and confirm the new version.",
			})
		}
	}
	return nil
}

func (r *run) metrics(ctx context.Context) error {
	var httpL *Listener
	for i := range r.s.cfg.Listeners {
		if r.s.cfg.Listeners[i].Name == "HTTP" {
			httpL = &r.s.cfg.Listeners[i]
		}
	}
	if httpL == nil || Loopback(httpL.Addr) {
		return nil
	}
	url := r.s.metricsURLNow()
	status, err := r.fetch(ctx, url)
	if err != nil {
		return err
	}
	if status != 200 {
		return nil
	}
	r.add(Finding{Check: checkMetrics, Severity: Medium, Subject: "metrics",
		Title:    "Metrics are open to anyone on the network",
		Evidence: fmt.Sprintf("GET %s without a login answered %d; the HTTP listener is on %s.", url, status, httpL.Addr),
		Why:      "Metrics show how many devices there are and when they are busy. That tells a stranger when people are home.",
		Fix:      "Put the metrics behind the admin's token, or move " + httpL.Flag + " to 127.0.0.1.",
	})
	return nil
}

// fetch asks for url without credentials and returns the status.
func (r *run) fetch(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := r.s.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// privatePaths are the data directory's entries that must stay private,
// relative to it. The directory itself comes first.
var privatePaths = []string{".", "candor.db", "candor.db-wal", "candor.db-shm", "vault.key", "audit", "consent", "forward", "tls", "exports", "assess"}

func (r *run) filePermissions(context.Context) error {
	dir := r.s.cfg.DataDir
	if dir == "" {
		return nil
	}
	top, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", dir, err)
	}
	// What lies inside is reachable by others only through a directory
	// they may enter; SQLite makes its files 0644, which is fine inside a
	// 0700 directory, so only entries others can actually reach count.
	reachable := top.Mode().Perm()&0o011 != 0
	for _, rel := range privatePaths {
		p := filepath.Join(dir, rel)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("inspect %s: %w", p, err)
		}
		mode := fi.Mode().Perm()
		exposed := mode&0o077 != 0
		if rel != "." {
			exposed = reachable && mode&0o044 != 0
		}
		if !exposed {
			continue
		}
		want := "0600"
		if fi.IsDir() {
			want = "0700"
		}
		r.add(Finding{Check: checkFilePermissions, Severity: High, Subject: rel,
			Title:    "Other users of this computer can open the hub's data",
			Evidence: fmt.Sprintf("%s has mode %#o; other users or the group may read or enter it.", p, mode),
			Why:      "Anyone with an account on this computer could copy the database, the keys or the log.",
			Fix:      fmt.Sprintf("Run: chmod %s %s", want, p),
		})
	}
	return nil
}

func (r *run) checkpoint(ctx context.Context) error {
	if r.s.cfg.LogSize() == 0 {
		return nil
	}
	last, err := r.s.cfg.Store.AuditMark(ctx, MarkCheckpoint)
	if err != nil {
		return err
	}
	if !last.IsZero() && r.now.Sub(last) <= r.s.cfg.CheckpointMaxAge {
		return nil
	}
	ev := "No one has fetched the log's signed checkpoint or exported the log."
	if !last.IsZero() {
		ev = fmt.Sprintf("The log's signed checkpoint last left the hub %d days ago; the limit is %d days.", days(r.now.Sub(last)), days(r.s.cfg.CheckpointMaxAge))
	}
	r.add(Finding{Check: checkCheckpoint, Severity: Low, Subject: "log",
		Title:    "Only the hub holds the log's checkpoint",
		Evidence: ev,
		Why:      "The log proves what the hub did. If only the hub keeps its checkpoint, a hub that rewrote its past could not be caught.",
		Fix:      "Save the checkpoint elsewhere now and then: candor log export, or fetch /api/v1/log/checkpoint from another machine.",
		FixURL:   "/log",
	})
	return nil
}

func (r *run) support(ctx context.Context) error {
	devs, err := r.devices(ctx)
	if err != nil {
		return err
	}
	for _, d := range devs {
		until, ended, ok, err := r.s.cfg.Support.SupportEnded(ctx, d)
		if err != nil {
			return err
		}
		if !ok || !ended {
			continue
		}
		r.add(Finding{Check: checkSupport, Severity: High, Household: d.HouseholdID, Subject: d.ID,
			Title:    "The maker no longer fixes flaws in this device",
			Evidence: fmt.Sprintf("Device %s (type %s) had security support until %s.", d.ID, d.Type, until.UTC().Format(time.DateOnly)),
			Why:      "Flaws found from now on will not be fixed. The device gets easier to break into over time.",
			Fix:      "Plan to replace it. Until then, share as little of its data as you can.",
			FixURL:   "/devices/" + d.ID,
		})
	}
	return nil
}

func (r *run) advisories(ctx context.Context) error {
	devs, err := r.devices(ctx)
	if err != nil {
		return err
	}
	for _, d := range devs {
		ids, err := r.s.cfg.Advisories.OpenAdvisories(ctx, d)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			continue
		}
		r.add(Finding{Check: checkAdvisories, Severity: High, Household: d.HouseholdID, Subject: d.ID,
			Title:    "A device has a known security flaw",
			Evidence: fmt.Sprintf("Device %s is affected by %s.", d.ID, strings.Join(ids, ", ")),
			Why:      "The flaw is public, so people know how to use it against this device.",
			Fix:      "Update the device when a fix is offered. Until then, follow the advice on its page.",
			FixURL:   "/devices/" + d.ID,
		})
	}
	return nil
}

func (r *run) feeds(ctx context.Context) error {
	fs, err := r.s.cfg.Feeds.StaleFeeds(ctx)
	if err != nil {
		return err
	}
	for _, f := range fs {
		ev := fmt.Sprintf("The advisory feed %s was never refreshed.", f.Name)
		if !f.LastRefreshed.IsZero() {
			ev = fmt.Sprintf("The advisory feed %s was last refreshed %d days ago.", f.Name, days(r.now.Sub(f.LastRefreshed)))
		}
		r.add(Finding{Check: checkFeeds, Severity: Medium, Subject: f.Name,
			Title: "An advisory feed is out of date", Evidence: ev,
			Why: "New flaws in your devices will not be noticed while the feed is old.",
			Fix: "Check that the hub can reach the feed, then refresh it.",
		})
	}
	return nil
}

func (r *run) updates(ctx context.Context) error {
	ms, err := r.s.cfg.Updates.ExpiredMetadata(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		r.add(Finding{Check: checkUpdates, Severity: High, Subject: m.Repository + "/" + m.Role,
			Title:    "Signed update data has expired",
			Evidence: fmt.Sprintf("The %s metadata of update repository %s expired on %s.", m.Role, m.Repository, m.Expired.UTC().Format(time.DateOnly)),
			Why:      "Devices cannot get updates until the maker signs fresh data. Old data could be used to hold back fixes.",
			Fix:      "Refresh the repository, and tell its maker if the data stays expired.",
		})
	}
	return nil
}

// reasonUntilFixed is the Reason of a hold until fixed with no alarm.
const reasonUntilFixed = "advisory"

func (r *run) quarantine(ctx context.Context) error {
	qs, err := r.s.cfg.Quarantine.Quarantined(ctx)
	if err != nil {
		return err
	}
	devs, err := r.devices(ctx)
	if err != nil {
		return err
	}
	hh := map[string]string{}
	for _, d := range devs {
		hh[d.ID] = d.HouseholdID
	}
	for _, q := range qs {
		if q.Reason == reasonUntilFixed {
			// The owner's own protective choice, not a sign of an attack.
			r.add(Finding{Check: checkQuarantine, Severity: Info, Household: hh[q.DeviceID], Subject: q.DeviceID,
				Title: "A device is on hold until a security flaw is fixed",
				Evidence: fmt.Sprintf("Device %s has been on hold since %s, by its owner's choice, until advisory %s is fixed: it only gets messages from the hub.",
					q.DeviceID, q.Since.UTC().Format(time.RFC3339), q.Advisory),
				Why:    "Its owner chose this to protect the home while a known flaw has no fix installed. It is not a sign of an attack.",
				Fix:    "Install the firmware that fixes the flaw: the hold ends by itself when the device reports it.",
				FixURL: "/devices/" + q.DeviceID,
			})
			continue
		}
		what := "is held back"
		if q.RateLimited {
			what = "is slowed down"
		}
		ev := fmt.Sprintf("Device %s %s since %s, after a %s alarm (%s", q.DeviceID, what, q.Since.UTC().Format(time.RFC3339), q.Severity, q.Reason)
		if q.Stream != "" {
			ev += " on " + q.Stream
		}
		if q.Limit > 0 {
			ev += fmt.Sprintf(": %g seen where %g is the limit", q.Observed, q.Limit)
		}
		ev += ")."
		if q.Advisory != "" {
			ev += " It is also on hold until advisory " + q.Advisory + " is fixed."
		}
		r.add(Finding{Check: checkQuarantine, Severity: quarantineSeverity(q), Household: hh[q.DeviceID], Subject: q.DeviceID,
			Title:    "A device is in quarantine",
			Evidence: ev,
			Why:      "It acted in a way that suggests someone else controls it.",
			Fix:      "Reset the device, give it a new secret, then release it from its page.",
			FixURL:   "/devices/" + q.DeviceID,
		})
	}
	return nil
}

// quarantineSeverity ranks a hold by the alarm behind it: a critical
// alarm is a critical finding, a warning high, anything milder medium;
// a rate limit, which still lets the device work, one step lower.
func quarantineSeverity(q Quarantine) Severity {
	sev := Medium
	switch q.Severity {
	case "critical":
		sev = Critical
	case "warning":
		sev = High
	}
	if q.RateLimited {
		switch sev {
		case Critical:
			sev = High
		case High:
			sev = Medium
		default:
			sev = Low
		}
	}
	return sev
}

func (r *run) secondFactor(ctx context.Context) error {
	hhs, err := r.s.cfg.Store.Households(ctx)
	if err != nil {
		return err
	}
	// The login is the HTTP listener's: reachable from the network, a
	// password alone is a high risk; on loopback only someone already on
	// this machine can try it.
	sev, where := Medium, "only from this machine"
	for _, l := range r.s.cfg.Listeners {
		if l.Name == "HTTP" && l.Addr != "" && !Loopback(l.Addr) {
			sev, where = High, "from the network ("+l.Addr+")"
		}
	}
	for _, h := range hhs {
		accs, err := r.s.cfg.Store.Accounts(ctx, h.ID)
		if err != nil {
			return err
		}
		for _, a := range accs {
			if !a.Admin {
				continue
			}
			ok, err := r.s.cfg.SecondFA.HasSecondFactor(ctx, a.ID)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
			f := Finding{Check: checkSecondFactor, Severity: sev, Subject: a.ID,
				Title:    "The admin account has no second factor",
				Evidence: fmt.Sprintf("Admin account %s (%s) logs in with a password only; the login page is reachable %s.", a.ID, a.Username, where),
				Why:      "Whoever learns the admin's password controls the whole hub.",
				Fix:      "Log in as this admin and turn on login codes from an app on the Security page, or start the hub with --require-second-factor-for-admin so the admin must add them before anything else.",
				FixURL:   "/security",
			}
			if r.s.cfg.AdminSecondFactorRequired {
				// The password still opens a session, but one that can
				// do nothing but add the codes: lower, not gone.
				f.Severity = Low
				f.Evidence = fmt.Sprintf("Admin account %s (%s) has no second factor yet. The hub requires one for the admin (--require-second-factor-for-admin), so after the password the admin can do nothing but add it; the login page is reachable %s.", a.ID, a.Username, where)
				f.Why = "Until the codes are added, whoever learns the admin's password first can add their own app and lock the admin out."
				f.Fix = "Log in as this admin now and add login codes from an app; the hub will ask for nothing else first."
			}
			r.add(f)
		}
	}
	return nil
}
