package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
)

const (
	logShown = 200  // entries shown, newest first
	logChunk = 1024 // entries read at a time, from the end backwards
)

// inclusionURL is the API's inclusion proof of one entry (household-checked
// there too).
const inclusionURL = "/api/v1/log/proof/inclusion?index="

type logView struct {
	Available   bool
	Entries     []logEntryView
	More        bool // there may be older entries than those shown
	Size        uint64
	Checkpoint  string
	VerifierKey string
}

type logEntryView struct {
	Index    uint64
	Time     time.Time
	Sentence string
	Why      string
	Proof    string
}

// logPage shows who did what with the household's data, newest first,
// from the transparency log, with what a person needs to check it.
func (s *Server) logPage(w http.ResponseWriter, r *http.Request, v viewer) {
	lv := logView{}
	if s.cfg.Log != nil {
		lv.Available = true
		cp := s.cfg.Log.Checkpoint()
		lv.Size, lv.Checkpoint, lv.VerifierKey = cp.Size, string(cp.Signed), s.cfg.Log.VerifierKey()
		evs, more, err := s.householdEntries(r.Context(), v, cp.Size)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		names := s.deviceNames(r.Context(), v.acc.HouseholdID)
		for _, e := range evs {
			lv.Entries = append(lv.Entries, logEntryView{
				Index: e.Index, Time: e.Event.Time, Sentence: eventSentence(v, e.Event, names),
				Why: e.Event.Purpose, Proof: inclusionURL + strconv.FormatUint(e.Index, 10),
			})
		}
		lv.More = more
	}
	p := s.pageFor(r, v, "Who accessed my data", "log")
	p.Data = lv
	s.render(w, r, http.StatusOK, "log", p)
}

// concerns reports whether an entry is the viewer's to see: their
// household's, or about their account (the API's rule for proofs).
func concerns(v viewer, ev *auditlog.Event) bool {
	return (ev.Household != "" && ev.Household == v.acc.HouseholdID) || ev.Subject.Account == v.acc.ID
}

// householdEntries reads the log from its end backwards, a chunk at a
// time, until it has the latest logShown entries that concern the viewer.
func (s *Server) householdEntries(ctx context.Context, v viewer, size uint64) ([]auditlog.Entry, bool, error) {
	var out []auditlog.Entry
	to := size
	for to > 0 && len(out) < logShown {
		from := uint64(0)
		if to > logChunk {
			from = to - logChunk
		}
		var chunk []auditlog.Entry
		for e, err := range s.cfg.Log.Entries(ctx, from, to) {
			if err != nil {
				return nil, false, fmt.Errorf("read the transparency log: %w", err)
			}
			if concerns(v, &e.Event) {
				chunk = append(chunk, auditlog.Entry{Index: e.Index, Event: e.Event})
			}
		}
		for i := len(chunk) - 1; i >= 0 && len(out) < logShown; i-- {
			out = append(out, chunk[i])
		}
		to = from
	}
	return out, len(out) == logShown && to > 0, nil
}

// deviceNames maps the household's device ids to their names.
func (s *Server) deviceNames(ctx context.Context, householdID string) map[string]string {
	m := map[string]string{}
	list, err := s.st.Devices(ctx, householdID)
	if err != nil {
		return m
	}
	for _, d := range list {
		m[d.ID] = d.Name
	}
	return m
}

// eventSentence says one entry in plain words: who did what, to what.
func eventSentence(v viewer, ev auditlog.Event, names map[string]string) string {
	dev := "a device"
	if id := ev.Subject.Device; id != "" {
		if n, ok := names[id]; ok {
			dev = fmt.Sprintf("%q (%s)", n, id)
		} else {
			dev = "device " + id
		}
	}
	stream := ""
	if ev.Subject.Stream != "" {
		stream = " (" + ev.Subject.Stream + ")"
	}
	var what string
	switch ev.Action {
	case auditlog.ActionReadingsRead:
		what = "viewed readings of " + dev
		if n, err := strconv.Atoi(ev.Detail["readings"]); err == nil {
			what = fmt.Sprintf("viewed %s of %s", count(n, "reading", "readings"), dev)
		}
	case auditlog.ActionReadingsForward:
		what = "sent readings of " + dev + " to " + orWord(ev.Subject.Recipient, "a recipient")
	case auditlog.ActionReadingsExport:
		what = "downloaded a data export"
	case auditlog.ActionConsentChange:
		what = "changed a consent choice for " + dev + stream
	case auditlog.ActionDataDelete:
		what = "deleted data of " + dev
	case auditlog.ActionDataShred:
		what = "destroyed the key to data of " + dev
	case auditlog.ActionManifestChange:
		what = "changed a data manifest"
	case auditlog.ActionDeviceCreate:
		what = "added " + dev
	case auditlog.ActionDeviceDelete:
		what = "removed " + dev
	case auditlog.ActionCredentialCreate:
		what = "made a credential for " + dev
	case auditlog.ActionCredentialRotate:
		what = "made a new credential for " + dev
	case auditlog.ActionCredentialRevoke:
		what = "revoked the credential of " + dev
	case auditlog.ActionDeviceQuarantine:
		what = "cut off " + dev + " for how it behaved"
	case auditlog.ActionSecurityFinding:
		what = "found a security problem with " + dev
	case auditlog.ActionAccountCreate:
		what = "made an account"
	case auditlog.ActionAccountDelete:
		what = "deleted an account"
	case auditlog.ActionAccountRole:
		what = "changed what an account may do"
	case auditlog.ActionAccountLogin:
		what = "logged in"
	case auditlog.ActionTokenCreate:
		what = "made an API token"
	case auditlog.ActionTokenRevoke:
		what = "ended an API token"
	case auditlog.ActionSessionRevoke:
		what = "ended a session"
	case auditlog.ActionHouseholdCreate:
		what = "made the household"
	case auditlog.ActionAuditExport:
		what = "downloaded a copy of this log"
	case auditlog.ActionAuditRecover:
		what = "repaired this log after a crash"
	default:
		what = "did " + ev.Action
		if ev.Subject.Device != "" {
			what += " to " + dev
		}
	}
	return actorWords(v, ev.Actor, names) + " " + what + "."
}

func actorWords(v viewer, a auditlog.Actor, names map[string]string) string {
	switch a.Kind {
	case auditlog.ActorPerson:
		if a.ID == v.acc.ID {
			return "You"
		}
		return "Account " + a.ID
	case auditlog.ActorToken:
		return "A program with API token " + a.ID
	case auditlog.ActorDevice:
		if n, ok := names[a.ID]; ok {
			return fmt.Sprintf("Your device %q (%s)", n, a.ID)
		}
		return "Device " + a.ID
	case auditlog.ActorOperator:
		return "The hub operator"
	case auditlog.ActorRecipient:
		return "Recipient " + a.ID
	}
	return "The hub"
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
