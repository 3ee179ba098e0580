package hub

import (
	"context"
	"time"

	"github.com/candor-iot/candor/internal/assess"
)

// staleFeeds gives the security audit the advisory feeds not refreshed
// for a week. Its check is available once a feed exists.
type staleFeeds struct{ h *Hub }

func (f staleFeeds) StaleFeeds(ctx context.Context) ([]assess.StaleFeed, error) {
	fs, err := f.h.advisories.StaleFeeds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]assess.StaleFeed, 0, len(fs))
	for _, x := range fs {
		out = append(out, assess.StaleFeed{Name: x.URL, LastRefreshed: x.LastSuccess})
	}
	return out, nil
}

// Present is true when the hub has a feed, or cannot tell (the check then
// runs and reports the store's error).
func (f staleFeeds) Present() bool {
	fs, err := f.h.advisories.Feeds(context.Background())
	return err != nil || len(fs) > 0
}

// expiredMetadata gives the security audit the update metadata past its
// expiry. Its check is available once a manifest names a repository.
type expiredMetadata struct{ h *Hub }

func (m expiredMetadata) ExpiredMetadata(context.Context) ([]assess.ExpiredMetadata, error) {
	now := time.Now()
	var out []assess.ExpiredMetadata
	for _, e := range m.h.upd.MetadataExpiries() {
		if e.Expires.Before(now) {
			out = append(out, assess.ExpiredMetadata{Repository: e.Repository, Role: e.Role, Expired: e.Expires})
		}
	}
	return out, nil
}

func (m expiredMetadata) Present() bool { return m.h.upd != nil && m.h.upd.Repositories() > 0 }
