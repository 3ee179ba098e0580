package api

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
)

// logCheckpoint serves the latest signed checkpoint (a signed note): public,
// so anyone can save it and later check that the log only grew.
func (s *Server) logCheckpoint(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(s.cfg.Log.Checkpoint().Signed)
	s.checkpointLeft(r.Context())
}

// logKey serves the hub's public verifier key for checkpoints.
func (s *Server) logKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(s.cfg.Log.VerifierKey() + "\n"))
}

func uintParam(r *http.Request, name string, required bool, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if required {
			return 0, badRequest("%s: required", name)
		}
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("%s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

func encodeProof(p [][]byte) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

// logInclusion proves that entry ?index= is in the tree of size ?size=
// (default: the latest checkpoint).
func (s *Server) logInclusion(w http.ResponseWriter, r *http.Request, p access.Principal) {
	cp := s.cfg.Log.Checkpoint()
	idx, err := uintParam(r, "index", true, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	size, err := uintParam(r, "size", false, cp.Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if idx >= size || size > cp.Size {
		s.fail(w, r, badRequest("index must be below size, and size at most the checkpoint's %d", cp.Size))
		return
	}
	e, err := s.cfg.Log.Entry(r.Context(), idx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ev, err := auditlog.ParseEvent(e.Data)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !p.CanSeeEvent(&ev) {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	proof, err := s.cfg.Log.InclusionProof(r.Context(), idx, size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"index": idx, "tree_size": size, "leaf": string(e.Data),
		"proof": encodeProof(proof), "checkpoint": string(cp.Signed)})
}

// logConsistency proves that the tree of size ?from= is a prefix of the
// tree of size ?to= (default: the latest checkpoint).
func (s *Server) logConsistency(w http.ResponseWriter, r *http.Request, p access.Principal) {
	cp := s.cfg.Log.Checkpoint()
	from, err := uintParam(r, "from", true, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	to, err := uintParam(r, "to", false, cp.Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if from > to || to > cp.Size {
		s.fail(w, r, badRequest("need from ≤ to ≤ %d (the latest checkpoint)", cp.Size))
		return
	}
	proof, err := s.cfg.Log.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "proof": encodeProof(proof), "checkpoint": string(cp.Signed)})
}

// logEntries lists raw entries ?from= to ?to= (exclusive) for the admin:
// the hub-level ones and their own household's (access.CanSeeEvent), so
// the numbering has gaps where other households' entries are.
func (s *Server) logEntries(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	cp := s.cfg.Log.Checkpoint()
	from, err := uintParam(r, "from", false, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	to, err := uintParam(r, "to", false, min(cp.Size, from+1000))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if from > to || to > cp.Size || to-from > 10000 {
		s.fail(w, r, badRequest("need from ≤ to ≤ %d and at most 10000 entries", cp.Size))
		return
	}
	type entryJSON struct {
		Index uint64         `json:"index"`
		Event auditlog.Event `json:"event"`
	}
	out := make([]entryJSON, 0, to-from)
	for e, err := range s.cfg.Log.Entries(r.Context(), from, to) {
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ev, err := auditlog.ParseEvent(e.Data)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !p.CanSeeEvent(&ev) {
			continue
		}
		out = append(out, entryJSON{Index: e.Index, Event: ev})
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "checkpoint": string(cp.Signed)})
}

// logExport streams the entries that concern the caller ("who accessed
// my data, when and why") with an inclusion proof each and the signed
// checkpoint, in the format `candor log verify` checks offline. A person
// gets their household's entries and those about their account; the
// operator gets the whole log (complete export). ?since=N adds a
// consistency proof from a tree size the person saved before.
func (s *Server) logExport(w http.ResponseWriter, r *http.Request, p access.Principal) {
	since, err := uintParam(r, "since", false, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	opts := auditlog.ExportOptions{ConsistencyFrom: since, Proofs: true}
	if !p.Operator {
		opts.Match = p.CanSeeEvent
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="candor-transparency-log.jsonl"`)
	if _, err := s.cfg.Log.Export(r.Context(), w, opts); err != nil {
		// Headers are gone; the truncated body fails verification, which
		// is the honest outcome. Log it for the operator.
		s.log.Error("log export failed", "err", err)
		return
	}
	s.checkpointLeft(r.Context())
}
