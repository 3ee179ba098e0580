package hub

import (
	"context"
	"time"

	"github.com/candor-iot/candor/internal/advisories"
)

// feedRefreshInterval is how often the hub reads the advisory feeds.
// Makers publish a few advisories a month; four reads a day notice a new
// one the same day without loading their servers.
const feedRefreshInterval = 6 * time.Hour

// startFeedRefresh reads every advisory feed at start and on the
// schedule, after naming the feeds the manifests in force point to.
func (h *Hub) startFeedRefresh(context.Context) error {
	h.feedJob.run(h.onLeader(func(ctx context.Context) {
		t := time.NewTicker(feedRefreshInterval)
		defer t.Stop()
		for {
			h.refreshFeeds(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}))
	return nil
}

func (h *Hub) refreshFeeds(ctx context.Context) {
	h.addManifestFeeds(ctx)
	if _, err := h.advisories.RefreshFeeds(ctx); err != nil && ctx.Err() == nil {
		// Each failure is already logged and kept on its feed.
		h.log.Debug("advisory feeds refreshed with errors", "err", err)
	}
}

// addManifestFeeds adds the feeds a manifest in force names
// (candor:advisories). A feed stays when its manifest changes: the
// operator removes it, so a maker cannot silently stop being watched.
func (h *Hub) addManifestFeeds(ctx context.Context) {
	for _, typ := range h.cat.Types() {
		e, err := h.cat.Current(typ)
		if err != nil || e == nil || e.Manifest == nil || e.Manifest.Advisories == nil || e.Manifest.Draft {
			continue
		}
		a := e.Manifest.Advisories
		for _, f := range []struct{ url, kind string }{{a.CSAFProviderMetadata, advisories.FeedCSAF}, {a.OSVFeed, advisories.FeedOSV}} {
			if f.url == "" {
				continue
			}
			if _, err := h.advisories.AddFeed(ctx, f.url, f.kind, "manifest:"+typ); err != nil {
				h.log.Warn("advisory feed named by a manifest", "type", typ, "url", f.url, "err", err)
			}
		}
	}
}
