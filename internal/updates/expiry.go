package updates

import (
	"sort"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RoleExpiry is when one role's verified metadata of one repository
// expires: for the security audit, which flags metadata past its expiry
// (devices then get no updates, and stale metadata is how a freeze attack
// holds fixes back).
type RoleExpiry struct {
	Repository string    // the repository's metadata URL
	Role       string    // root, timestamp, snapshot or targets
	Expires    time.Time // from the last metadata the hub verified
}

// Expiries returns the expiry of each top-level role of the metadata the
// last successful refresh verified; nil before one. A later refresh that
// was refused leaves these as they were, so a frozen repository shows its
// old timestamp running out.
func (c *Client) Expiries() []RoleExpiry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up == nil {
		return nil
	}
	t := c.up.GetTrustedMetadataSet()
	var out []RoleExpiry
	add := func(role string, exp time.Time) {
		out = append(out, RoleExpiry{Repository: c.src.MetadataURL, Role: role, Expires: exp})
	}
	if t.Root != nil {
		add(metadata.ROOT, t.Root.Signed.Expires)
	}
	if t.Timestamp != nil {
		add(metadata.TIMESTAMP, t.Timestamp.Signed.Expires)
	}
	if t.Snapshot != nil {
		add(metadata.SNAPSHOT, t.Snapshot.Signed.Expires)
	}
	if tg, ok := t.Targets[metadata.TARGETS]; ok && tg != nil {
		add(metadata.TARGETS, tg.Signed.Expires)
	}
	return out
}

// Repositories is the number of update repositories the manifests name.
func (s *Service) Repositories() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// MetadataExpiries lists, for every repository, when each role's verified
// metadata expires (repositories never refreshed successfully list
// nothing), soonest first.
func (s *Service) MetadataExpiries() []RoleExpiry {
	s.mu.Lock()
	clients := make([]*Client, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	var out []RoleExpiry
	for _, c := range clients {
		out = append(out, c.Expiries()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Expires.Before(out[j].Expires) })
	return out
}
