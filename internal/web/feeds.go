package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/store"
)

// Feeds lists the advisory feeds and whether each is stale, and lets the
// admin add, remove and read them now (the advisories service, which
// records additions and removals; the actor comes from the context).
type Feeds interface {
	Feeds(ctx context.Context) ([]advisories.FeedStatus, error)
	AddFeedWith(ctx context.Context, url, kind, origin string, sig advisories.FeedSignatures) (advisories.FeedStatus, error)
	RemoveFeed(ctx context.Context, url string) error
	RefreshFeed(ctx context.Context, url string) (advisories.RefreshResult, error)
}

// feedForm is the admin's "add a feed" form.
type feedForm struct {
	URL  string
	Kind string
	// A CSAF feed's pinned key and whether unsigned files are let in.
	Fingerprint     string
	UnsignedAllowed bool
}

func (s *Server) feedRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /admin/feeds", s.authed(s.postFeed))
	m.HandleFunc("POST /admin/feeds/remove", s.authed(s.postFeedRemove))
	m.HandleFunc("POST /admin/feeds/refresh", s.authed(s.postFeedRefresh))
}

// feedAdmin answers 404 to anyone but the admin, as the admin page does.
func (s *Server) feedAdmin(w http.ResponseWriter, r *http.Request, v viewer) bool {
	if !v.Admin() || s.cfg.Feeds == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return false
	}
	return true
}

func (s *Server) postFeed(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.feedAdmin(w, r, v) {
		return
	}
	in := feedForm{URL: strings.TrimSpace(r.PostFormValue("url")), Kind: r.PostFormValue("kind"),
		Fingerprint: strings.TrimSpace(r.PostFormValue("fingerprint")), UnsignedAllowed: r.PostFormValue("unsigned") == "on"}
	f, err := s.cfg.Feeds.AddFeedWith(r.Context(), in.URL, in.Kind, advisories.OriginOperator,
		advisories.FeedSignatures{Fingerprint: in.Fingerprint, UnsignedAllowed: in.UnsignedAllowed})
	if err != nil {
		if !errors.Is(err, advisories.ErrFeedURL) {
			s.fail(w, r, err)
			return
		}
		s.renderAdminWith(w, r, v, http.StatusUnprocessableEntity, householdForm{}, in,
			[]formError{{Field: "feed-url", Message: upperFirst(sentence(detail(err)))}})
		return
	}
	s.flash(v, "The feed "+f.URL+" is added. The hub reads it every six hours. Use Read now to read it at once.")
	http.Redirect(w, r, "/admin?done="+flashDone+"#feeds-title", http.StatusSeeOther)
}

func (s *Server) postFeedRemove(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.feedAdmin(w, r, v) {
		return
	}
	if err := s.cfg.Feeds.RemoveFeed(r.Context(), r.PostFormValue("url")); err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, "The feed is removed. The flaws it told the hub about stay.")
	http.Redirect(w, r, "/admin?done="+flashDone+"#feeds-title", http.StatusSeeOther)
}

func (s *Server) postFeedRefresh(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.feedAdmin(w, r, v) {
		return
	}
	res, err := s.cfg.Feeds.RefreshFeed(r.Context(), r.PostFormValue("url"))
	msg := fmt.Sprintf("The hub read the feed. %d new or changed, %d refused.", len(res.Imported), len(res.Refused))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, err)
		return
	case err != nil:
		// The outcome is kept on the feed and shown in its row.
		msg = "The hub could not read the feed. Its row says why."
	}
	s.flash(v, msg)
	http.Redirect(w, r, "/admin?done="+flashDone+"#feeds-title", http.StatusSeeOther)
}

// feeds lists every feed, best effort: the page matters more.
func (s *Server) feeds(ctx context.Context) []advisories.FeedStatus {
	if s.cfg.Feeds == nil {
		return nil
	}
	fs, err := s.cfg.Feeds.Feeds(ctx)
	if err != nil {
		s.log.Error("list advisory feeds", "err", err)
		return nil
	}
	return fs
}

// staleFeeds are the feeds not read for a week.
func (s *Server) staleFeeds(ctx context.Context) []advisories.FeedStatus {
	var out []advisories.FeedStatus
	for _, f := range s.feeds(ctx) {
		if f.Stale {
			out = append(out, f)
		}
	}
	return out
}
