package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/operator"
	problems "github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Advisories imports vulnerability advisories and matches them to devices.
type Advisories interface {
	Import(ctx context.Context, docs []advisories.Document) ([]*advisories.Advisory, error)
	Findings(ctx context.Context, householdID string) ([]advisories.Finding, error)
	DeviceFindings(ctx context.Context, deviceID string) ([]advisories.Finding, error)
	Views(ctx context.Context, fs []advisories.Finding) []advisories.View
	Count(ctx context.Context) (int, error)
}

// Firmware lists the versions a device reported.
type Firmware interface {
	History(ctx context.Context, deviceID string) ([]store.FirmwareReport, error)
}

// Operator reads and changes who runs the hub.
type Operator interface {
	Get(ctx context.Context) (operator.Settings, error)
	Set(ctx context.Context, in operator.Settings) (operator.Settings, error)
}

// maxAdvisoryBatch bounds one import request of several documents.
const maxAdvisoryBatch = 64 << 20

// errUnavailable answers for a part the hub was built without.
var errUnavailable = &problems.Kind{Status: http.StatusServiceUnavailable, Type: "unavailable", Text: "not available on this hub"}

// lifecycleRoutes registers firmware, advisory and operator endpoints.
func (s *Server) lifecycleRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/advisories", s.authed(s.listAdvisories))
	m.HandleFunc("POST /api/v1/advisories", s.authed(s.importAdvisories))
	m.HandleFunc("GET /api/v1/devices/{id}/advisories", s.authed(s.deviceAdvisories))
	m.HandleFunc("GET /api/v1/devices/{id}/firmware", s.authed(s.deviceFirmware))
	m.HandleFunc("GET /api/v1/operator", s.getOperator)
	m.HandleFunc("PUT /api/v1/operator", s.authed(s.putOperator))
	m.HandleFunc("GET /.well-known/security.txt", s.securityTxt)
}

// listAdvisories lists the open findings the caller may see (the operator
// and the admin: every household; a person: their own), worst first. The
// command line's "advisories list" reads the same.
func (s *Server) listAdvisories(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Advisories == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	hh := p.Account.HouseholdID
	if p.Operator {
		hh = ""
	}
	fs, err := s.cfg.Advisories.Findings(r.Context(), hh)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.cfg.Advisories.Count(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"advisories": n, "findings": nonNil(s.cfg.Advisories.Views(r.Context(), fs)), "staleFeeds": []advisories.FeedStatus{}}
	if s.cfg.Feeds != nil {
		// A feed that stopped refreshing makes an empty list mean less.
		all, err := s.cfg.Feeds.Feeds(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		stale := []advisories.FeedStatus{}
		for _, f := range all {
			if f.Stale {
				stale = append(stale, f)
			}
		}
		out["staleFeeds"] = stale
	}
	writeJSON(w, http.StatusOK, out)
}

// importAdvisories takes one OSV or CSAF document as the body, or
// {"documents": [{"source": "...", "document": {...}}, ...]} for several,
// imported all or nothing. Advisories apply hub-wide: admin only.
func (s *Server) importAdvisories(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Advisories == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdvisoryBatch))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, advisories.ErrTooLarge.Errorf("the request is over %d bytes; import fewer documents at once", maxAdvisoryBatch))
			return
		}
		s.fail(w, r, badRequest("body: %v", err))
		return
	}
	var batch struct {
		Documents []struct {
			Source   string          `json:"source"`
			Document json.RawMessage `json:"document"`
		} `json:"documents"`
	}
	var docs []advisories.Document
	if json.Unmarshal(body, &batch) == nil && batch.Documents != nil {
		for i, d := range batch.Documents {
			src := d.Source
			if src == "" {
				src = "documents[" + strconv.Itoa(i) + "]"
			}
			docs = append(docs, advisories.Document{Source: src, Data: d.Document})
		}
	} else {
		docs = []advisories.Document{{Source: cmp.Or(r.URL.Query().Get("source"), "the request body"), Data: body}}
	}
	got, err := s.cfg.Advisories.Import(r.Context(), docs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type imported struct {
		ID     string            `json:"id"`
		Format advisories.Format `json:"format"`
		Title  string            `json:"title,omitempty"`
	}
	out := make([]imported, 0, len(got))
	for _, a := range got {
		out = append(out, imported{a.ID, a.Format, a.Title})
	}
	writeJSON(w, http.StatusCreated, map[string]any{"imported": out})
}

func (s *Server) deviceAdvisories(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.Advisories == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	fs, err := s.cfg.Advisories.DeviceFindings(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"findings": nonNil(s.cfg.Advisories.Views(r.Context(), fs))})
}

type firmwareJSON struct {
	Firmware   string    `json:"firmware"`
	Hardware   string    `json:"hardware,omitempty"`
	ReportedAt time.Time `json:"reportedAt"`
}

// deviceFirmware gives the version a device runs and when it changed.
func (s *Server) deviceFirmware(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.Firmware == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	h, err := s.cfg.Firmware.History(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hist := make([]firmwareJSON, 0, len(h))
	for _, f := range h {
		hist = append(hist, firmwareJSON{f.Firmware, f.Hardware, f.ReportedAt})
	}
	var cur any
	if len(hist) > 0 {
		cur = hist[0]
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": d.ID, "current": cur, "history": hist})
}

// getOperator says who runs the hub. It is public, like security.txt:
// anyone may need to know whom to address.
func (s *Server) getOperator(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Operator == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	o, err := s.cfg.Operator.Get(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"operator": o, "displayName": o.DisplayName()})
}

func (s *Server) putOperator(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Operator == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	var in operator.Settings
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := s.cfg.Operator.Set(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"operator": o, "displayName": o.DisplayName()})
}

// securityTxt serves RFC 9116's file from the operator settings; 404 until
// the operator gives a contact, since the RFC requires one. Canonical is
// given only over TLS (the RFC wants an https URI).
func (s *Server) securityTxt(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Operator == nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "this hub names no security contact yet")
		return
	}
	o, err := s.cfg.Operator.Get(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	canonical := ""
	if r.TLS != nil && r.Host != "" {
		canonical = "https://" + r.Host + "/.well-known/security.txt"
	}
	body, ok := o.SecurityTxt(canonical, time.Now())
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "this hub names no security contact yet; the admin sets one in the settings")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, body)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
