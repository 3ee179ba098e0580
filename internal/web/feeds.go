package web

import (
	"context"

	"github.com/candor-iot/candor/internal/advisories"
)

// Feeds lists the advisory feeds and whether each is stale.
type Feeds interface {
	Feeds(ctx context.Context) ([]advisories.FeedStatus, error)
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
