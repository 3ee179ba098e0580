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

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// consentView is "Can I control it?" for one device: a switch per use of
// each stream, the routing of each stream, and the person's records.
type consentView struct {
	// Available is false when the hub has no consent service: the page
	// then says so instead of showing switches.
	Available bool
	DeviceID  string
	CSRF      string
	CanStop   bool
	// CanChange is true for whoever decides for the device (see
	// access.Principal.CanDecide); everyone else sees the choices
	// read-only, is told who decides (WhoDecides) and may ask them.
	CanChange  bool
	WhoDecides string
	// Learns is true when a stream is marked for learning or automated
	// decisions: their switches are on the machine-learning register.
	Learns  bool
	Streams []consentStream
	Records []recordView
}

type consentStream struct {
	Name    string
	Title   string
	Effect  string
	Uses    []useView
	Keep    bool
	Kept    string // how long it is kept now, in words
	Why     string // where the routing comes from
	Choices []retentionChoice
}

// useView is one use (purpose × recipient) of a stream with its switch.
type useView struct {
	ID        string // for aria-describedby
	Purpose   string
	Recipient string
	On        bool
	Sentence  string // what the use is, in plain words
	Short     string // the use in a few words, for the button's name
	Why       string
}

// retentionChoice is one "keep for" option, never longer than the
// manifest allows.
type retentionChoice struct {
	Value    string // ISO 8601, as SetRouting takes it
	Words    string
	Selected bool
}

// recordView is one of the person's consent records about the device.
type recordView struct {
	ID     string
	Time   time.Time
	Stream string
	What   string
}

// retentionSteps are the "keep for" choices offered, where the manifest
// allows them; the manifest's own limit is always offered too.
var retentionSteps = []string{"P1D", "P7D", "P30D", "P90D", "P1Y"}

// consentView builds the switches of a device from consent's state.
func (s *Server) consentView(ctx context.Context, v viewer, d store.Device, m *manifest.Manifest) (*consentView, error) {
	cv := &consentView{DeviceID: d.ID}
	if s.cfg.Consent == nil {
		return cv, nil
	}
	cv.Available = true
	cv.CanChange = v.CanDecide(d)
	cv.WhoDecides = s.whoDecides(ctx, v, d)
	st, err := s.cfg.Consent.State(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("consent state of %s: %w", d.ID, err)
	}
	cv.CanStop = st.DeviceCanStop
	if uses, err := s.cfg.Consent.Learning(ctx, d.ID); err == nil && len(uses) > 0 {
		cv.Learns = true
	}
	for si, ss := range st.Streams {
		cs := consentStream{Name: ss.Stream, Title: ss.Title, Effect: ss.Effect, Keep: ss.Routing.KeepOnHub,
			Kept: ss.Routing.Retention.Human(), Why: ss.Routing.Why}
		if cs.Title == "" {
			cs.Title = ss.Stream
		}
		for ui, u := range ss.Uses {
			cs.Uses = append(cs.Uses, useView{
				ID: fmt.Sprintf("use-%d-%d", si, ui), Purpose: u.Purpose, Recipient: u.Recipient, On: u.On,
				Sentence: useSentence(u), Short: useShort(cs.Title, u), Why: u.Why,
			})
		}
		cs.Choices = retentionChoices(ss.Routing.Max, ss.Routing.Retention)
		cv.Streams = append(cv.Streams, cs)
	}
	recs, err := s.cfg.Consent.History(ctx, consent.HistoryQuery{AccountID: v.Account.ID, DeviceID: d.ID})
	if err != nil {
		return nil, err
	}
	// Newest first, at most 50: the export has them all.
	for i := len(recs) - 1; i >= 0 && len(cv.Records) < 50; i-- {
		cv.Records = append(cv.Records, recordOf(recs[i], m))
	}
	return cv, nil
}

// whoDecides says in plain words who makes a device's choices.
func (s *Server) whoDecides(ctx context.Context, v viewer, d store.Device) string {
	person, owners := access.Deciders(d)
	switch {
	case v.CanDecide(d):
		return "You decide for this device."
	case owners:
		return "The owners of your household decide for this shared device. You can see the choices, and ask them to change one."
	}
	name := "the person who added it"
	if acc, err := s.st.Account(ctx, person); err == nil {
		name = acc.Username
	}
	return "Only " + name + " decides for this device, since its data is locked with their keys. You can see the choices, and ask them to change one."
}

// useSentence says what a use is: for the hub, "Kept and used on this hub
// to …"; for a recipient, consent's own sentence about them.
func useSentence(u consent.UseState) string {
	if u.Recipient == consent.RecipientHub {
		return "Kept and used on this hub " + lowerFirst(u.PurposeText) + "."
	}
	return sentence(u.RecipientText)
}

func useShort(title string, u consent.UseState) string {
	if u.Recipient == consent.RecipientHub {
		return title + ", " + lowerFirst(u.PurposeText)
	}
	return title + ", for " + nameInSentence(u.Recipient)
}

func retentionChoices(maxD, cur manifest.Duration) []retentionChoice {
	var out []retentionChoice
	add := func(d manifest.Duration) {
		for _, c := range out {
			if c.Value == d.Text {
				return
			}
		}
		out = append(out, retentionChoice{Value: d.Text, Words: d.Human(), Selected: d.Text == cur.Text})
	}
	for _, t := range retentionSteps {
		d, err := manifest.ParseDuration(t)
		if err != nil || (!maxD.IsZero() && d.D > maxD.D) {
			continue
		}
		if !maxD.IsZero() && d.D == maxD.D {
			d = maxD
		}
		add(d)
	}
	if !maxD.IsZero() {
		add(maxD)
	}
	if !cur.IsZero() && !slices.ContainsFunc(out, func(c retentionChoice) bool { return c.Selected }) {
		add(cur)
	}
	slices.SortStableFunc(out, func(a, b retentionChoice) int {
		da, _ := manifest.ParseDuration(a.Value)
		db, _ := manifest.ParseDuration(b.Value)
		return int((da.D - db.D) / 1e9)
	})
	return out
}

// recordOf says what one record decided.
func recordOf(rec consent.Record, m *manifest.Manifest) recordView {
	rv := recordView{ID: rec.RecordID, Time: rec.Timestamp, Stream: rec.Stream.Title}
	if rv.Stream == "" {
		rv.Stream = rec.Stream.Name
	}
	onOff := "Turned off"
	if rec.On() {
		onOff = "Turned on"
	}
	switch rec.Kind {
	case consent.KindStorage:
		if !rec.On() {
			rv.What = "Not kept on this hub."
		} else if d, err := manifest.ParseDuration(rec.Storage.Duration); err == nil {
			rv.What = "Kept on this hub for " + d.Human() + "."
		} else {
			rv.What = "Kept on this hub."
		}
	default:
		purpose := ""
		if len(rec.Purposes) > 0 {
			p := rec.Purposes[0]
			purpose = strings.TrimSuffix(strings.TrimSpace(p.Description), ".")
			if purpose == "" {
				purpose = manifest.PurposeWords(p.Term)
			}
		}
		switch {
		case len(rec.Purposes) > 0 && consent.IsLearningPurpose(rec.Purposes[0].Term):
			rv.What = onOff + ": " + lowerFirst(purpose) + ". What is kept and shared did not change."
		case rec.Storage.Location != consent.StoredByRecipient:
			rv.What = onOff + ": kept and used on this hub " + lowerFirst(purpose) + "."
		default:
			rv.What = onOff + ": shared with " + nameInSentence(rec.Recipient.Name) + " " + lowerFirst(purpose) + "."
		}
	}
	return rv
}

// consentDevice loads the device a consent form is about: 404 outside
// the household, and "not available" without a consent service.
func (s *Server) consentDevice(w http.ResponseWriter, r *http.Request, v viewer) (store.Device, bool) {
	d, err := s.ownDevice(r.Context(), v, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return store.Device{}, false
	}
	if s.cfg.Consent == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return store.Device{}, false
	}
	if err := v.Decide(d); err != nil {
		s.fail(w, r, err)
		return store.Device{}, false
	}
	return d, true
}

// postAsk stores a request that whoever decides for a device turn one use
// of a stream on or off; it is listed on their home page until they do.
func (s *Server) postAsk(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.ownDevice(r.Context(), v, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.Consent == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	recipient := r.PostFormValue("recipient")
	if recipient == "" {
		recipient = consent.RecipientHub
	}
	stream := r.PostFormValue("stream")
	_, err = s.cfg.Consent.Ask(r.Context(), consent.Change{AccountID: v.Account.ID, DeviceID: d.ID, Stream: stream,
		Purpose: r.PostFormValue("purpose"), Recipient: recipient, On: r.PostFormValue("on") == "1"})
	if err != nil {
		s.consentRefused(w, r, v, d, err)
		return
	}
	s.flash(v, "Your request is sent. It is listed for whoever decides for this device, until they choose.")
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"?done="+flashDone+"#consent-"+url.PathEscape(stream), http.StatusSeeOther)
}

// requestView is one open request, as its decider's home page lists it.
type requestView struct {
	DeviceID, Device, Who, What string
}

// openRequests lists the requests v decides, in plain words. It is best
// effort: the home page matters more than this list.
func (s *Server) openRequests(ctx context.Context, v viewer) []requestView {
	if s.cfg.Consent == nil {
		return nil
	}
	list, err := s.cfg.Consent.Requests(ctx, v.Account.HouseholdID)
	if err != nil {
		s.log.Error("consent requests not listed", "household", v.Account.HouseholdID, "err", err)
		return nil
	}
	var out []requestView
	for _, rq := range list {
		d, err := s.st.Device(ctx, rq.DeviceID)
		if err != nil || !v.CanDecide(d) {
			continue
		}
		who := "Someone in your household"
		if acc, err := s.st.Account(ctx, rq.AccountID); err == nil {
			who = acc.Username
		}
		onOff := "off"
		if rq.On {
			onOff = "on"
		}
		what := "asks you to turn " + onOff + " a use of " + rq.Stream
		if rq.Recipient != consent.RecipientHub {
			what += " by " + nameInSentence(rq.Recipient)
		}
		out = append(out, requestView{DeviceID: d.ID, Device: d.Name, Who: who, What: what + "."})
	}
	return out
}

// postConsent turns one use of a stream on or off for the person who is
// logged in: every member of the household may decide.
func (s *Server) postConsent(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.consentDevice(w, r, v)
	if !ok {
		return
	}
	stream, purpose, recipient := r.PostFormValue("stream"), r.PostFormValue("purpose"), r.PostFormValue("recipient")
	on := r.PostFormValue("on") == "1"
	if recipient == "" {
		recipient = consent.RecipientHub
	}
	if on && recipient != consent.RecipientHub && r.PostFormValue("confirm") != "yes" {
		s.confirmSharing(w, r, v, d, stream, purpose, recipient)
		return
	}
	rec, err := s.cfg.Consent.Set(r.Context(), consent.Change{AccountID: v.Account.ID, DeviceID: d.ID, Stream: stream,
		Purpose: purpose, Recipient: recipient, On: on})
	if err != nil {
		s.consentRefused(w, r, v, d, err)
		return
	}
	title := rec.Stream.Title
	if title == "" {
		title = stream
	}
	dec := s.cfg.Consent.Allowed(d.ID, stream)
	var msg string
	switch {
	case recipient != consent.RecipientHub && on:
		msg = fmt.Sprintf("From the next reading on, %s may go to %s. It is sent once an owner has set where they get it, on the page Where your data goes.", lowerFirst(title), nameInSentence(recipient))
	case recipient != consent.RecipientHub:
		msg = fmt.Sprintf("From the next reading on, %s is not sent to %s.", lowerFirst(title), nameInSentence(recipient))
	case !dec.StoreOnHub:
		msg = fmt.Sprintf("From the next reading on, %s is not stored on this hub.", lowerFirst(title))
	case on:
		msg = fmt.Sprintf("From the next reading on, %s is kept on this hub for %s.", lowerFirst(title), dec.Retention.Human())
	default:
		msg = fmt.Sprintf("From the next reading on, %s is no longer used for this. It is still kept for the uses that are on.", lowerFirst(title))
	}
	s.flash(v, msg+" Your receipt is below.")
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"?done="+flashDone+"#consent-"+url.PathEscape(stream), http.StatusSeeOther)
}

// shareView is the page that shows what turning on a use would send out
// of the hub, before it is turned on.
type shareView struct {
	Device  store.Device
	Sharing consent.Sharing
	// Together is what the recipient could learn from the household,
	// with this stream and what it already gets, that neither shows alone.
	Together []togetherView
	To       string // the recipient, as a sentence names it
	Contact  string // the contact, without its scheme
}

// confirmSharing shows what would leave, to whom, linked or not, on
// what terms and for how long, with a yes that turns the use on.
func (s *Server) confirmSharing(w http.ResponseWriter, r *http.Request, v viewer, d store.Device, stream, purpose, recipient string) {
	sh, err := s.cfg.Consent.Sharing(r.Context(), d.ID, stream, purpose, recipient)
	if err != nil {
		s.consentRefused(w, r, v, d, err)
		return
	}
	names := s.deviceNames(r.Context(), d.HouseholdID)
	sh.AlreadyGets = s.cfg.Consent.Receiving(r.Context(), names, sh.Recipient)
	contact := strings.TrimPrefix(strings.TrimPrefix(sh.Contact, "mailto:"), "tel:")
	p := s.pageFor(r, v, "Send "+lowerFirst(sh.Title)+" out of this hub?", "")
	p.Data = shareView{Device: d, Sharing: sh, To: nameInSentence(sh.Recipient), Contact: contact,
		Together: s.sharedTogether(r.Context(), d, sh.Stream, sh.Recipient)}
	s.render(w, r, http.StatusOK, "share", p)
}

// postRouting chooses whether a stream is kept on the hub and for how
// long; consent refuses anything longer than the manifest allows.
func (s *Server) postRouting(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.consentDevice(w, r, v)
	if !ok {
		return
	}
	stream := r.PostFormValue("stream")
	var keep bool
	switch r.PostFormValue("keep") {
	case "yes":
		keep = true
	case "no":
	default:
		s.consentRefused(w, r, v, d, &consent.Error{Field: "keep", Err: consent.ErrInvalid, Msg: "choose whether to keep it on this hub"})
		return
	}
	var ret manifest.Duration
	if t := r.PostFormValue("retention"); t != "" {
		var err error
		if ret, err = manifest.ParseDuration(t); err != nil {
			s.consentRefused(w, r, v, d, &consent.Error{Field: "retention", Err: consent.ErrInvalid, Msg: "choose one of the times listed"})
			return
		}
	}
	rec, err := s.cfg.Consent.SetRouting(r.Context(), v.Account.ID, d.ID, stream, consent.StreamRouting{KeepOnHub: keep, Retention: ret})
	if err != nil {
		s.consentRefused(w, r, v, d, err)
		return
	}
	title := rec.Stream.Title
	if title == "" {
		title = stream
	}
	dec := s.cfg.Consent.Allowed(d.ID, stream)
	msg := fmt.Sprintf("From the next reading on, %s is not stored on this hub.", lowerFirst(title))
	if dec.StoreOnHub {
		msg = fmt.Sprintf("From the next reading on, %s is kept on this hub for %s.", lowerFirst(title), dec.Retention.Human())
	}
	s.flash(v, msg+" Your receipt is below.")
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"?done="+flashDone+"#consent-"+url.PathEscape(stream), http.StatusSeeOther)
}

// consentRefused shows the device page again with consent's reason.
func (s *Server) consentRefused(w http.ResponseWriter, r *http.Request, v viewer, d store.Device, err error) {
	var ce *consent.Error
	if !errors.As(err, &ce) {
		s.fail(w, r, err)
		return
	}
	s.showDevice(w, r, v, d, http.StatusUnprocessableEntity, []formError{{Message: upperFirst(sentence(ce.Msg))}})
}

// consentReceipt serves one record as a receipt signed by the hub, to a
// member of the household of the record's device.
func (s *Server) consentReceipt(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Consent == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	rec, err := s.cfg.Consent.Record(r.Context(), r.PathValue("id"))
	if err != nil {
		if errors.Is(err, consent.ErrUnknownRecord) {
			err = errors.Join(store.ErrNotFound, err)
		}
		s.fail(w, r, err)
		return
	}
	if _, err := s.ownDevice(r.Context(), v, rec.Device.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.cfg.Consent.Receipt(r.Context(), rec.RecordID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Disposition", `attachment; filename="consent-receipt-`+rec.RecordID+`.json"`)
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
