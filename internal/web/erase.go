package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// The "My data" actions: deleting readings by device, stream
// and dates (/my-data/delete), unlinking history into anonymised
// aggregates (/my-data/unlink), deleting the account by crypto-shredding
// (/my-data/leave), and the key settings (/my-data/keys). They follow the
// API's rules (package api, erasure.go and devices.go):
//   - deleting a device's readings is for an owner of its household;
//   - a device's history is unlinked by its key owner (the person who
//     added it) or, for a shared device, by an owner of the household;
//   - the household's keys are changed by its owners only;
//   - account deletion asks for the password again.
//
// Each page says plainly when the hub runs without the part it needs.

func init() {
	pageNames = append(pageNames, "delete", "unlink", "leave", "keys", "newkey")
	// The login page greets whoever just deleted their account.
	statusMessages["account-deleted"] = "Your account was deleted."
}

// Eraser deletes people's data (*erasure.Service does).
type Eraser interface {
	DeleteRange(ctx context.Context, d store.Device, q store.ReadingQuery) (int64, error)
	Unlink(ctx context.Context, acc store.Account, opt erasure.UnlinkOptions) (erasure.Report, error)
	// Households counts the hub's households: fewer than
	// erasure.MinCellHouseholds and nothing can be kept anonymously.
	Households(ctx context.Context) (int, error)
	DeleteAccount(ctx context.Context, acc store.Account, opt erasure.DeleteOptions) (erasure.Report, error)
}

// Keys manages key owners' encryption settings (*vault.Vault does).
type Keys interface {
	Status(ownerID string) (vault.Status, error)
	Enroll(ctx context.Context, ownerID string, s vault.Settings) (vault.Enrollment, error)
	Rotate(ctx context.Context, ownerID string) (string, error)
	Rewrap(ctx context.Context, ownerID string, identity age.Identity) (vault.Rewrapped, error)
}

// refusal is the human part of an erasure.ErrRefused error: its detail.
func refusal(err error) string {
	return sentence(upperFirst(detail(err)))
}

// --- deleting readings -------------------------------------------------

// dateLayouts are the ways a day may be written in the date fields: the
// ISO form the hints ask for, and the form the pages show days in.
var dateLayouts = []string{"2006-01-02", "2006-1-2", "2 Jan 2006", "2 January 2006"}

// parseDay reads a day (UTC) as typed in a date field.
func parseDay(v string) (time.Time, error) {
	var err error
	for _, l := range dateLayouts {
		var t time.Time
		if t, err = time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

type deviceChoice struct {
	ID, Name string
	Selected bool
}

type streamChoice struct {
	Name, Title string
	Selected    bool
}

type deleteView struct {
	Available bool
	CanManage bool // an owner of the household: may delete readings
	Devices   []deviceChoice
	// Device is the chosen one (second step), with its streams.
	Device  *store.Device
	Streams []streamChoice
	From    string
	To      string
}

// getDelete is the first step (choose a device) or, with ?device=, the
// second (what to delete of it).
func (s *Server) getDelete(w http.ResponseWriter, r *http.Request, v viewer) {
	var d *store.Device
	if id := r.URL.Query().Get("device"); id != "" && s.cfg.Erasure != nil {
		dev, err := s.deletableDevice(r.Context(), v, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		d = &dev
	}
	s.renderDelete(w, r, v, http.StatusOK, d, "", "", "", nil)
}

// deletableDevice loads a device whose readings the viewer may delete:
// another household's is not found, and a member may not (403).
func (s *Server) deletableDevice(ctx context.Context, v viewer, id string) (store.Device, error) {
	d, err := s.ownDevice(ctx, v, id)
	if err != nil {
		return store.Device{}, err
	}
	if !v.CanManage(d.HouseholdID) {
		return store.Device{}, fmt.Errorf("%w: only an owner of the household can delete readings", identity.ErrForbidden)
	}
	return d, nil
}

func (s *Server) renderDelete(w http.ResponseWriter, r *http.Request, v viewer, status int, d *store.Device, stream, from, to string, errs []formError) {
	title := "Delete readings"
	if d != nil {
		title = "Delete readings of " + d.Name
	}
	p := s.pageFor(r, v, title, "my-data")
	p.Errors = errs
	dv := deleteView{Available: s.cfg.Erasure != nil, CanManage: v.CanManage(v.Account.HouseholdID), Device: d, From: from, To: to}
	if dv.Available && dv.CanManage {
		list, err := s.st.Devices(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, x := range list {
			if v.CanManage(x.HouseholdID) {
				dv.Devices = append(dv.Devices, deviceChoice{ID: x.ID, Name: x.Name, Selected: d != nil && d.ID == x.ID})
			}
		}
	}
	if d != nil {
		dv.Streams = s.deviceStreams(*d, stream)
	}
	p.Data = dv
	s.render(w, r, status, "delete", p)
}

// deviceStreams lists the streams the device's manifest declares.
func (s *Server) deviceStreams(d store.Device, selected string) []streamChoice {
	e, err := s.cfg.Catalog.Current(d.Type)
	if err != nil || e == nil || e.Manifest == nil {
		return nil
	}
	var out []streamChoice
	for _, st := range e.Manifest.Streams {
		t := st.Title
		if t == "" {
			t = st.Name
		}
		out = append(out, streamChoice{Name: st.Name, Title: t, Selected: st.Name == selected})
	}
	return out
}

// postDelete deletes the chosen readings and says how many went.
func (s *Server) postDelete(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Erasure == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	d, err := s.deletableDevice(r.Context(), v, r.PostFormValue("device"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stream := r.PostFormValue("stream")
	from, to := strings.TrimSpace(r.PostFormValue("from")), strings.TrimSpace(r.PostFormValue("to"))
	var errs []formError
	q := store.ReadingQuery{DeviceID: d.ID}
	if stream != "" {
		streams := s.deviceStreams(d, "")
		i := slices.IndexFunc(streams, func(c streamChoice) bool { return c.Name == stream })
		if i < 0 {
			errs = append(errs, formError{Field: "stream", Message: "Choose a kind of data from the list."})
			stream = ""
		} else {
			q.Stream = stream
		}
	}
	var since, until time.Time
	if from != "" {
		if since, err = parseDay(from); err != nil {
			errs = append(errs, formError{Field: "from", Message: "Enter the first day as year, month and day, like 2026-03-01."})
			from = ""
		}
	}
	if to != "" {
		if until, err = parseDay(to); err != nil {
			errs = append(errs, formError{Field: "to", Message: "Enter the last day as year, month and day, like 2026-03-31."})
			to = ""
		}
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		errs = append(errs, formError{Field: "to", Message: "The last day is before the first day. Swap them."})
	}
	if r.PostFormValue("confirm") != "yes" {
		errs = append(errs, formError{Field: "confirm", Message: "Tick the box to show that you know this cannot be undone."})
	}
	if len(errs) > 0 {
		s.renderDelete(w, r, v, http.StatusUnprocessableEntity, &d, stream, from, to, errs)
		return
	}
	q.Since = since
	if !until.IsZero() {
		q.Until = until.AddDate(0, 0, 1) // to the end of the last day
	}
	n, err := s.cfg.Erasure.DeleteRange(r.Context(), d, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	what := d.Name
	for _, c := range s.deviceStreams(d, "") {
		if c.Name == q.Stream {
			what += " (" + lowerFirst(c.Title) + ")"
		}
	}
	when := ""
	switch {
	case from != "" && to != "":
		when = fmt.Sprintf(" from %s to %s (UTC)", dayWords(since), dayWords(until))
	case from != "":
		when = fmt.Sprintf(" from %s (UTC) on", dayWords(since))
	case to != "":
		when = fmt.Sprintf(" up to the end of %s (UTC)", dayWords(until))
	}
	if n == 0 {
		s.flash(v, fmt.Sprintf("There were no readings of %s%s, so nothing was deleted.", what, when))
	} else {
		s.flash(v, fmt.Sprintf("The hub deleted %s of %s%s. They are gone for good.", countWords(n, "reading", "readings"), what, when))
	}
	http.Redirect(w, r, "/my-data/delete?device="+url.QueryEscape(d.ID)+"&done="+flashDone, http.StatusSeeOther)
}

func dayWords(t time.Time) string { return t.UTC().Format("2 Jan 2006") }

func countWords(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// --- unlinking -----------------------------------------------------------

type unlinkDevice struct {
	ID, Name string
	Shared   bool // the household's, not the person's own
	Checked  bool
}

type unlinkView struct {
	Available bool
	Owner     bool
	Devices   []unlinkDevice
	MinCell   int
	Confirm   bool
	// Households is how many the hub has; TooFew says it has fewer than
	// MinHouseholds, so nothing can be kept anonymously.
	Households    int
	MinHouseholds int
	TooFew        bool
}

// unlinkable lists the devices whose history the viewer may unlink: the
// ones sealed under their keys, and, for an owner, the shared ones (the
// rule of erasure.Service.Unlink).
func (s *Server) unlinkable(ctx context.Context, v viewer) ([]store.Device, error) {
	list, err := s.st.Devices(ctx, v.Account.HouseholdID)
	if err != nil {
		return nil, err
	}
	var out []store.Device
	for _, d := range list {
		if v.CanUnlink(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *Server) getUnlink(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderUnlink(w, r, v, http.StatusOK, nil, nil)
}

// renderUnlink shows the unlink page; checked, when not nil, are the
// devices the person ticked (else all are ticked).
func (s *Server) renderUnlink(w http.ResponseWriter, r *http.Request, v viewer, status int, checked []string, errs []formError) {
	p := s.pageFor(r, v, "Unlink your history", "my-data")
	p.Errors = errs
	uv := unlinkView{Available: s.cfg.Erasure != nil, Owner: v.Owner(), MinCell: erasure.MinCellCount, MinHouseholds: erasure.MinCellHouseholds}
	if uv.Available {
		n, err := s.cfg.Erasure.Households(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		uv.Households, uv.TooFew = n, n < erasure.MinCellHouseholds
		devs, err := s.unlinkable(r.Context(), v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, d := range devs {
			uv.Devices = append(uv.Devices, unlinkDevice{ID: d.ID, Name: d.Name, Shared: d.KeyOwner == "",
				Checked: checked == nil || slices.Contains(checked, d.ID)})
		}
	}
	p.Data = uv
	s.render(w, r, status, "unlink", p)
}

func (s *Server) postUnlink(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Erasure == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	ids := r.PostForm["device"]
	var errs []formError
	if len(ids) == 0 {
		errs = append(errs, formError{Field: "devices", Message: "Choose at least one device."})
	}
	if r.PostFormValue("confirm") != "yes" {
		errs = append(errs, formError{Field: "confirm", Message: "Tick the box to show that you know this cannot be undone."})
	}
	if len(errs) > 0 {
		if ids == nil {
			ids = []string{}
		}
		s.renderUnlink(w, r, v, http.StatusUnprocessableEntity, ids, errs)
		return
	}
	rep, err := s.cfg.Erasure.Unlink(r.Context(), v.Account, erasure.UnlinkOptions{DeviceIDs: ids})
	if errors.Is(err, erasure.ErrRefused) {
		s.renderUnlink(w, r, v, http.StatusUnprocessableEntity, ids, []formError{{Message: refusal(err)}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg := fmt.Sprintf("Your history is unlinked. The hub summed up %s into %s.",
		countWords(rep.ReadingsUnlinked, "reading", "readings"), countWords(int64(rep.CellsKept), "hourly summary", "hourly summaries"))
	if rep.CellsSuppressed > 0 {
		msg += fmt.Sprintf(" It dropped %s with fewer than %d readings or %d households.", countWords(int64(rep.CellsSuppressed), "hour", "hours"),
			erasure.MinCellCount, erasure.MinCellHouseholds)
	}
	for _, sk := range rep.Skipped {
		name := sk.DeviceID
		if d, err := s.st.Device(r.Context(), sk.DeviceID); err == nil {
			name = d.Name
		}
		msg += " " + name + " was skipped: " + sentence(sk.Reason)
	}
	msg += " It now removes the exact readings. Your devices keep sending."
	s.flash(v, msg)
	http.Redirect(w, r, "/my-data/unlink?done="+flashDone, http.StatusSeeOther)
}

// --- deleting the account ---------------------------------------------

type leaveView struct {
	Available bool
	// Known: the hub could tell who else is in the household.
	Known   bool
	Last    bool     // the person is the household's last member
	Own     []string // names of the devices the person added
	Shared  []string // names of the household's shared devices (go if Last)
	Unlink  bool
	MinCell int
}

func (s *Server) getLeave(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderLeave(w, r, v, http.StatusOK, false, nil)
}

func (s *Server) renderLeave(w http.ResponseWriter, r *http.Request, v viewer, status int, unlink bool, errs []formError) {
	p := s.pageFor(r, v, "Delete your account", "my-data")
	p.Errors = errs
	lv := leaveView{Available: s.cfg.Erasure != nil, Unlink: unlink, MinCell: erasure.MinCellCount}
	if lv.Available {
		if ps, ok := s.people(); ok {
			accs, err := ps.Accounts(r.Context(), v.Account.HouseholdID)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			lv.Known, lv.Last = true, len(accs) <= 1
		}
		devs, err := s.st.Devices(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, d := range devs {
			switch {
			case d.KeyOwner == v.Account.ID:
				lv.Own = append(lv.Own, d.Name)
			case lv.Last:
				lv.Shared = append(lv.Shared, d.Name)
			}
		}
	}
	p.Data = lv
	s.render(w, r, status, "leave", p)
}

// postLeave deletes the person's account (erasure.Service.DeleteAccount),
// ends the browser's session and sends it to the login page.
func (s *Server) postLeave(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Erasure == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	unlink := r.PostFormValue("unlink") == "yes"
	password := r.PostFormValue("password")
	if password == "" {
		s.renderLeave(w, r, v, http.StatusUnprocessableEntity, unlink, []formError{{Field: "leave-password",
			Message: "Enter your password, to show that it is you."}})
		return
	}
	if err := s.id.ConfirmPassword(r.Context(), v.Account.ID, password); err != nil {
		if !errors.Is(err, identity.ErrInvalid) {
			s.fail(w, r, err)
			return
		}
		msg := "This is not your password."
		if errors.Is(err, identity.ErrTooManyAttempts) {
			msg = "There were too many wrong tries. Wait a few minutes, then try again."
		}
		s.renderLeave(w, r, v, http.StatusUnprocessableEntity, unlink, []formError{{Field: "leave-password", Message: msg}})
		return
	}
	_, err := s.cfg.Erasure.DeleteAccount(r.Context(), v.Account, erasure.DeleteOptions{Unlink: unlink})
	if errors.Is(err, erasure.ErrRefused) {
		s.renderLeave(w, r, v, http.StatusUnprocessableEntity, unlink, []formError{{Message: refusal(err)}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The account's sessions are gone with it; the cookie goes too.
	s.endSession(w, r)
	http.Redirect(w, r, "/login?done=account-deleted", http.StatusSeeOther)
}

// --- keys ----------------------------------------------------------------

// keyOwnerView is one key owner's setting as the keys page shows it.
type keyOwnerView struct {
	Owner      string // "me" or "household", as in the form paths
	Heading    string
	Intro      string
	UserHeld   bool
	Recipient  string
	HubCanRead string
	Keys       int64
	InUseSince time.Time
	CanChange  bool
	// Choice is the user-held form's choice to show again: "new" or "own".
	Choice string
}

type keysView struct {
	Available bool
	Owners    []keyOwnerView // the person's own keys, then the household's
}

// keyOwnerID resolves "me" or "household" to a vault owner id. Changing
// the household's keys is for its owners only.
func keyOwnerID(v viewer, owner string, change bool) (string, error) {
	switch owner {
	case "me":
		return v.Account.ID, nil
	case "household":
		if change && !v.CanManage(v.Account.HouseholdID) {
			return "", fmt.Errorf("%w: only an owner changes the household's keys", identity.ErrForbidden)
		}
		return v.Account.HouseholdID, nil
	}
	return "", fmt.Errorf("key owner %q: %w", owner, store.ErrNotFound)
}

// keyStatus returns an owner's setting, enrolling the default
// (hub-assisted) first for an owner that has none yet, as the API does.
func (s *Server) keyStatus(ctx context.Context, ownerID string) (vault.Status, error) {
	st, err := s.cfg.Keys.Status(ownerID)
	if errors.Is(err, vault.ErrUnknownOwner) {
		if _, err := s.cfg.Keys.Enroll(ctx, ownerID, vault.Settings{Mode: vault.HubAssisted}); err != nil {
			return vault.Status{}, keyErr(err)
		}
		st, err = s.cfg.Keys.Status(ownerID)
	}
	return st, keyErr(err)
}

// keyErr makes destroyed keys a page that is not found.
func keyErr(err error) error {
	if errors.Is(err, vault.ErrShredded) {
		return fmt.Errorf("%w: these keys were destroyed", store.ErrNotFound)
	}
	return err
}

func (s *Server) keysPage(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderKeys(w, r, v, http.StatusOK, "", "", nil)
}

// renderKeys shows the keys page; formOwner and choice give the form that
// was refused its choice back.
func (s *Server) renderKeys(w http.ResponseWriter, r *http.Request, v viewer, status int, formOwner, choice string, errs []formError) {
	p := s.pageFor(r, v, "Your keys", "my-data")
	p.Errors = errs
	kv := keysView{Available: s.cfg.Keys != nil}
	if kv.Available {
		view := func(owner string) (keyOwnerView, error) {
			id, _ := keyOwnerID(v, owner, false)
			st, err := s.keyStatus(r.Context(), id)
			if err != nil {
				return keyOwnerView{}, err
			}
			_, cerr := keyOwnerID(v, owner, true)
			ov := keyOwnerView{Owner: owner, UserHeld: st.Mode == vault.UserHeld, Recipient: st.Recipient,
				HubCanRead: st.HubCanRead, Keys: int64(len(st.Keys)), CanChange: cerr == nil, Choice: "new"}
			for _, k := range st.Keys {
				if k.InUse {
					ov.InUseSince = k.CreatedAt
				}
			}
			if owner == formOwner && choice != "" {
				ov.Choice = choice
			}
			return ov, nil
		}
		for _, o := range []struct{ owner, heading, intro string }{
			{"me", "Your own devices", "The devices you added are locked with these keys."},
			{"household", "Shared devices", "The devices the household shares, and the devices added before anyone had an account, are locked with the household's keys."},
		} {
			ov, err := view(o.owner)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			ov.Heading, ov.Intro = o.heading, o.intro
			kv.Owners = append(kv.Owners, ov)
		}
	}
	p.Data = kv
	s.render(w, r, status, "keys", p)
}

// keyAction starts a POST on the keys page: the hub must have keys, and
// the viewer must be allowed to change the owner's. The owner is enrolled
// with the default first if needed.
func (s *Server) keyAction(w http.ResponseWriter, r *http.Request, v viewer) (owner, ownerID string, ok bool) {
	if s.cfg.Keys == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return "", "", false
	}
	owner = r.PathValue("owner")
	ownerID, err := keyOwnerID(v, owner, true)
	if err == nil {
		_, err = s.keyStatus(r.Context(), ownerID)
	}
	if err != nil {
		s.fail(w, r, err)
		return "", "", false
	}
	return owner, ownerID, true
}

// whose names an owner's data in a sentence.
func whose(owner string) string {
	if owner == "household" {
		return "the household's shared devices"
	}
	return "your devices"
}

func (s *Server) postRotateKey(w http.ResponseWriter, r *http.Request, v viewer) {
	owner, id, ok := s.keyAction(w, r, v)
	if !ok {
		return
	}
	if _, err := s.cfg.Keys.Rotate(r.Context(), id); err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	s.flash(v, "A new key is in use. New readings of "+whose(owner)+" are locked with it. The readings from before stay readable.")
	http.Redirect(w, r, "/my-data/keys?done="+flashDone, http.StatusSeeOther)
}

// identityKey names a generated identity held for the page that shows it.
func identityKey(owner string) string { return "\x00age-identity:" + owner }

// postUserHeld switches to user-held mode, with the person's own age
// recipient or a key pair the hub generates (shown once, then forgotten).
func (s *Server) postUserHeld(w http.ResponseWriter, r *http.Request, v viewer) {
	owner, id, ok := s.keyAction(w, r, v)
	if !ok {
		return
	}
	choice := r.PostFormValue("key")
	recipient := strings.TrimSpace(r.PostFormValue("recipient"))
	field := owner + "-recipient"
	set := vault.Settings{Mode: vault.UserHeld}
	var msg string
	switch choice {
	case "new":
		set.GenerateIdentity = true
	case "own":
		switch {
		case recipient == "":
			msg = "Enter your age recipient. It starts with age1."
		case strings.HasPrefix(strings.ToUpper(recipient), "AGE-SECRET-KEY-"):
			// Not echoed, not kept: a secret key pasted in the wrong place.
			msg = "This is a secret key: keep it to yourself. Enter its public half here instead. It starts with age1."
		default:
			set.Recipient = recipient
		}
	default:
		msg = "Choose a new key made by the hub, or your own."
		field = owner + "-key-new"
	}
	if msg != "" {
		s.renderKeys(w, r, v, http.StatusUnprocessableEntity, owner, choice, []formError{{Field: field, Message: msg}})
		return
	}
	en, err := s.cfg.Keys.Enroll(r.Context(), id, set)
	if errors.Is(err, vault.ErrBadRecipient) {
		// The input is not shown again: it may be a secret.
		s.renderKeys(w, r, v, http.StatusUnprocessableEntity, owner, choice, []formError{{Field: field,
			Message: "This is not an age recipient. A recipient starts with age1 and is the public half of your key."}})
		return
	}
	if err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	msg = "Done. Only your own key can now open the stored readings of " + whose(owner) + ". The hub cannot read them."
	if n := len(en.NotRewrapped); n > 0 {
		msg += fmt.Sprintf(" %s stayed as before: only the key you used before opens them.", countWords(int64(n), "older key", "older keys"))
	}
	s.flash(v, msg)
	if en.Identity != "" {
		s.secrets.put(s.now(), v.Session.ID, identityKey(owner), en.Identity)
		http.Redirect(w, r, "/my-data/keys/new?owner="+owner+"&done="+flashDone, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/my-data/keys?done="+flashDone, http.StatusSeeOther)
}

// postHubAssisted switches back to hub-assisted mode. With the person's
// identity, the keys only it opens are rewrapped too, so the hub can read
// the history made in user-held mode. The identity is used once and never
// kept, logged or shown again.
func (s *Server) postHubAssisted(w http.ResponseWriter, r *http.Request, v viewer) {
	owner, id, ok := s.keyAction(w, r, v)
	if !ok {
		return
	}
	var old age.Identity
	if text := strings.TrimSpace(r.PostFormValue("identity")); text != "" {
		var err error
		if old, err = vault.ParseIdentity(text); err != nil {
			s.renderKeys(w, r, v, http.StatusUnprocessableEntity, owner, "", []formError{{Field: owner + "-identity",
				Message: "This is not an age identity. It starts with AGE-SECRET-KEY-1. You can also leave the box empty."}})
			return
		}
	}
	en, err := s.cfg.Keys.Enroll(r.Context(), id, vault.Settings{Mode: vault.HubAssisted})
	if err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	left := len(en.NotRewrapped)
	if old != nil {
		rw, err := s.cfg.Keys.Rewrap(r.Context(), id, old)
		if err != nil {
			s.fail(w, r, keyErr(err))
			return
		}
		left = len(rw.Skipped)
	}
	msg := "Done. The hub helps with the keys of " + whose(owner) + " again. It can read their new readings."
	switch {
	case left == 0:
		msg += " It can read all the readings from before too."
	case old != nil:
		msg += fmt.Sprintf(" The key you gave does not open %s, so the hub still cannot read the readings locked with them.", countWords(int64(left), "older key", "older keys"))
	default:
		msg += fmt.Sprintf(" %s still open only with your own key. To let the hub read those readings too, give your key below.", upperFirst(countWords(int64(left), "older key is", "older keys are")))
	}
	s.flash(v, msg)
	http.Redirect(w, r, "/my-data/keys?done="+flashDone, http.StatusSeeOther)
}

type newKeyView struct {
	Owner     string
	Shown     bool
	Identity  string
	Recipient string
}

// newKeyPage shows a generated age identity exactly once: the POST that
// made it left it for this session, and showing it forgets it.
func (s *Server) newKeyPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Keys == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	owner := r.URL.Query().Get("owner")
	id, err := keyOwnerID(v, owner, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	nv := newKeyView{Owner: owner}
	if secret, ok := s.secrets.take(s.now(), v.Session.ID, identityKey(owner)); ok {
		nv.Shown, nv.Identity = true, secret
		if st, err := s.cfg.Keys.Status(id); err == nil {
			nv.Recipient = st.Recipient
		}
	}
	title := "Your new key"
	if !nv.Shown {
		title = "This key was shown once"
	}
	p := s.pageFor(r, v, title, "my-data")
	p.Data = nv
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "newkey", p)
}
