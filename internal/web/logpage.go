package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/auditlog/verify"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/monitor"
)

const (
	logShown = 200  // entries shown, newest first
	logChunk = 1024 // entries read at a time, from the end backwards
)

// inclusionURL is the API's inclusion proof of one entry (household-checked
// there too).
const inclusionURL = "/api/v1/log/proof/inclusion?index="

// verifyURL is the page that checks one entry's inclusion proof and
// explains it.
func verifyURL(index uint64) string {
	return "/log/entries/" + strconv.FormatUint(index, 10) + "/verify"
}

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
		names := s.deviceNames(r.Context(), v.Account.HouseholdID)
		for _, e := range evs {
			lv.Entries = append(lv.Entries, logEntryView{
				Index: e.Index, Time: e.Event.Time, Sentence: eventSentence(v, e.Event, names),
				Why: e.Event.Purpose, Proof: verifyURL(e.Index),
			})
		}
		lv.More = more
	}
	p := s.pageFor(r, v, "Who accessed my data", "log")
	p.Data = lv
	s.render(w, r, http.StatusOK, "log", p)
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
			if v.CanSeeEvent(&e.Event) {
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
	case history.ActionReadingsRefused:
		what = "could not see readings of " + dev + ": " + refusalWords(ev.Detail["reason"])
	case auditlog.ActionReadingsForward:
		what = "sent readings of " + dev + " to " + orWord(ev.Subject.Recipient, "a recipient")
	case auditlog.ActionReadingsExport:
		what = "downloaded a data export"
	case auditlog.ActionConsentChange:
		what = "changed a consent choice for " + dev + stream
	case consent.ActionConsentRequest:
		what = "asked for a consent choice to change for " + dev + stream
	case auditlog.ActionKeyChange:
		what = "changed who holds the keys to the data"
	case auditlog.ActionKeyRotate:
		what = "made a new key for the data"
	case forward.ActionRecipientChange:
		what = "changed where a recipient gets data"
	case "account.password.change":
		what = "changed a password"
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
		if ev.Detail["kind"] == string(monitor.KindAdvisory) {
			what = "put " + dev + " on hold until a security flaw is fixed"
		}
	case monitor.ActionRelease:
		what = "let " + dev + " off its hold"
		switch still := ev.Detail["still_held"]; {
		case still == string(monitor.KindAdvisory):
			what = "lifted the alarm's hold of " + dev + "; it stays on hold until a security flaw is fixed"
		case still != "":
			what = "ended the hold until fixed of " + dev + "; it stays cut off for how it behaved"
		}
	case advisories.ActionAdvisoryImport:
		what = "added news of a security flaw"
	case advisories.ActionFeedAdd:
		what = "added a source of news of security flaws"
	case advisories.ActionFeedRemove:
		what = "removed a source of news of security flaws"
	case auditlog.ActionSecurityFinding:
		what = "found a security problem with " + dev
	case auditlog.ActionAccountCreate:
		what = "made an account"
	case auditlog.ActionAccountDelete:
		what = "deleted an account"
	case auditlog.ActionAccountRole:
		what = "changed what an account may do"
	case identity.ActionSecondFactorOn:
		what = "turned on login codes from an app"
	case identity.ActionSecondFactorOff:
		what = "turned off login codes from an app"
	case identity.ActionSecondFactorReset:
		what = "turned off the login codes of a person who lost their phone"
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
		// A kind of entry this page has no words for yet: say so plainly
		// rather than show its code name.
		what = "made a change this page cannot describe yet"
		if ev.Subject.Device != "" {
			what += ", about " + dev
		}
	}
	return actorWords(v, ev.Actor, names) + " " + what + "."
}

// refusalWords says why a read was refused.
func refusalWords(reason string) string {
	switch reason {
	case "user-held":
		return "they are locked with the owner's own key"
	case "shredded":
		return "their key was destroyed"
	case "wrong-identity":
		return "the key given does not open them"
	}
	return "the hub could not open them"
}

func actorWords(v viewer, a auditlog.Actor, names map[string]string) string {
	switch a.Kind {
	case auditlog.ActorPerson:
		if a.ID == v.Account.ID {
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

// verifyView is the page that checks one line of the log: the hub's own
// check of its inclusion proof, explained step by step, and what the
// browser needs to check it again by itself (static/verify.js).
type verifyView struct {
	Index    uint64
	Time     time.Time
	Sentence string
	Why      string

	// Verified is the verdict of package verify, the code `candor log
	// verify` and auditors use: the checkpoint's signature holds, and the
	// proof leads from the line to the checkpoint's root hash.
	Verified bool
	// Problem says, in plain words, why the line could not be verified.
	Problem string
	// SignatureOK says the checkpoint's signature holds (it may, while
	// the proof fails).
	SignatureOK bool

	Size        uint64 // lines the checkpoint covers
	KeyName     string // the checkpoint's origin: the name of the hub's key
	KeyID       string // the key's short hash, 8 hex digits
	RootHash    string // the checkpoint's root hash, base64
	LeafHash    string // the line's RFC 6962 leaf hash, base64
	Leaf        string // the exact bytes that were hashed
	Steps       []proofStep
	Computed    string // the root hash the steps reach, base64
	Checkpoint  string // the signed checkpoint note
	VerifierKey string
	ProofURL    string // the API's proof as JSON
}

// proofStep is one step from the line's hash up to the root: a hash from
// the proof goes before (Left) or after the hash so far, and the two are
// hashed together into the next one.
type proofStep struct {
	N      int
	Hash   string
	Left   bool
	Result string
}

// verifyPage checks that one line is in the log, against the latest
// signed checkpoint, and explains it. The same people see it as see the
// line on the log page; for anyone else it does not exist.
func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Log == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	cp := s.cfg.Log.Checkpoint()
	index, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil || index >= cp.Size {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	e, err := s.cfg.Log.Entry(r.Context(), index)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !v.CanSeeEvent(&e.Event) {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	proof, err := s.cfg.Log.InclusionProof(r.Context(), index, cp.Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	vv := checkInclusion(cp.Signed, s.cfg.Log.VerifierKey(), cp.Size, index, e.Data, proof)
	vv.Time, vv.Why = e.Event.Time, e.Event.Purpose
	vv.Sentence = eventSentence(v, e.Event, s.deviceNames(r.Context(), v.Account.HouseholdID))
	p := s.pageFor(r, v, fmt.Sprintf("Check line %d of the log", index), "")
	p.Data = vv
	s.render(w, r, http.StatusOK, "verify", p)
}

// checkInclusion checks that leaf is line index of the tree that the
// signed checkpoint covers (size lines), with package verify, and lays
// the proof out step by step (RFC 9162 section 2.1.3.2) for the page.
func checkInclusion(signed []byte, verifierKey string, size, index uint64, leaf []byte, proof [][]byte) verifyView {
	b64 := base64.StdEncoding.EncodeToString
	leafHash := verify.LeafHash(leaf)
	vv := verifyView{
		Index: index, Size: size, Leaf: string(leaf), LeafHash: b64(leafHash),
		Checkpoint: string(signed), VerifierKey: verifierKey,
		ProofURL: inclusionURL + strconv.FormatUint(index, 10),
	}
	if nv, err := note.NewVerifier(verifierKey); err == nil {
		vv.KeyName, vv.KeyID = nv.Name(), fmt.Sprintf("%08x", nv.KeyHash())
	}
	var root []byte
	vv.Steps, root = proofPath(index, size, leafHash, proof)
	vv.Computed = b64(root)
	cp, err := verify.ParseCheckpoint(signed, verifierKey)
	if err != nil {
		vv.Problem = "the checkpoint's signature does not match the hub's verifier key, so nothing it says can be trusted"
		return vv
	}
	vv.SignatureOK, vv.RootHash = true, b64(cp.Root)
	if cp.Size != size {
		vv.Problem = fmt.Sprintf("the checkpoint covers %d lines, not the %d the proof was made for", cp.Size, size)
		return vv
	}
	if err := verify.Inclusion(cp, index, leaf, proof); err != nil {
		vv.Problem = "the proof does not lead from this line to the root hash that the checkpoint signs"
		return vv
	}
	vv.Verified = true
	return vv
}

// proofPath follows an inclusion proof from a leaf hash up to the root it
// implies (RFC 9162 section 2.1.3.2), recording each step. It explains a
// proof; whether the proof holds is verify.Inclusion's to say.
func proofPath(index, size uint64, leafHash []byte, proof [][]byte) ([]proofStep, []byte) {
	b64 := base64.StdEncoding.EncodeToString
	if index >= size {
		return nil, leafHash
	}
	h := rfc6962.DefaultHasher
	fn, sn, r := index, size-1, leafHash
	steps := make([]proofStep, 0, len(proof))
	for i, p := range proof {
		if sn == 0 {
			break // a proof too long for the tree: verify refuses it
		}
		st := proofStep{N: i + 1, Hash: b64(p)}
		if fn&1 == 1 || fn == sn {
			r, st.Left = h.HashChildren(p, r), true
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = h.HashChildren(r, p)
		}
		fn, sn = fn>>1, sn>>1
		st.Result = b64(r)
		steps = append(steps, st)
	}
	return steps, r
}
