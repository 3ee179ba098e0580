package api

import (
	"context"
	"net/http"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/identity"
)

// AdvisoryFeeds keeps the HTTPS feeds advisories come from.
type AdvisoryFeeds interface {
	Feeds(ctx context.Context) ([]advisories.FeedStatus, error)
	AddFeedWith(ctx context.Context, url, kind, origin string, sig advisories.FeedSignatures) (advisories.FeedStatus, error)
	RemoveFeed(ctx context.Context, url string) error
	RefreshFeed(ctx context.Context, url string) (advisories.RefreshResult, error)
	RefreshFeeds(ctx context.Context) ([]advisories.RefreshResult, error)
}

// feedRoutes registers the advisory feed endpoints. Anyone signed in may
// see the feeds and whether they are stale (a stale feed means "no known
// flaws" can be wrong); only the admin changes or refreshes them.
func (s *Server) feedRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/advisories/feeds", s.authed(s.listFeeds))
	m.HandleFunc("POST /api/v1/advisories/feeds", s.authed(s.addFeed))
	m.HandleFunc("DELETE /api/v1/advisories/feeds", s.authed(s.removeFeed))
	m.HandleFunc("POST /api/v1/advisories/feeds/refresh", s.authed(s.refreshFeeds))
	m.HandleFunc("POST /api/v1/devices/{id}/restrict", s.authed(s.restrictDevice))
}

func (s *Server) listFeeds(w http.ResponseWriter, r *http.Request, _ access.Principal) {
	if s.cfg.Feeds == nil {
		s.fail(w, r, errUnavailable)
		return
	}
	fs, err := s.cfg.Feeds.Feeds(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stale := 0
	for _, f := range fs {
		if f.Stale {
			stale++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"feeds": nonNil(fs), "stale": stale})
}

// feedAdmin answers for the checks every changing feed endpoint shares.
func (s *Server) feedAdmin(w http.ResponseWriter, r *http.Request, p access.Principal) bool {
	if s.cfg.Feeds == nil {
		s.fail(w, r, errUnavailable)
		return false
	}
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return false
	}
	return true
}

func (s *Server) addFeed(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.feedAdmin(w, r, p) {
		return
	}
	var in struct {
		URL  string `json:"url"`
		Kind string `json:"kind"`
		// A CSAF feed's pinned key fingerprint and whether unsigned
		// documents are let in (default: signatures required).
		advisories.FeedSignatures
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := s.cfg.Feeds.AddFeedWith(r.Context(), in.URL, in.Kind, advisories.OriginOperator, in.FeedSignatures)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"feed": f})
}

func (s *Server) removeFeed(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.feedAdmin(w, r, p) {
		return
	}
	url := r.URL.Query().Get("url")
	if url == "" {
		s.fail(w, r, badRequest("name the feed with ?url="))
		return
	}
	if err := s.cfg.Feeds.RemoveFeed(r.Context(), url); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// refreshFeeds reads one feed (?url=) or all of them now. A feed that
// fails is reported in its result and the answer is still 200 for all;
// for one named feed its error is the answer.
func (s *Server) refreshFeeds(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.feedAdmin(w, r, p) {
		return
	}
	if url := r.URL.Query().Get("url"); url != "" {
		res, err := s.cfg.Feeds.RefreshFeed(r.Context(), url)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": []advisories.RefreshResult{res}})
		return
	}
	res, err := s.cfg.Feeds.RefreshFeeds(r.Context())
	if err != nil && r.Context().Err() != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": nonNil(res)})
}
