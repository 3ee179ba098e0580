package catalog

import (
	"context"
	"fmt"
)

// Reload rereads the versions in force from the store. Another hub node
// sharing the store may have put or confirmed a version; without this the
// catalog would go on enforcing the one it loaded at start.
func (c *Catalog) Reload(ctx context.Context) error {
	recs, err := c.st.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("reload manifests: %w", err)
	}
	current := map[string]*Entry{}
	for _, r := range recs {
		if r.Draft {
			continue
		}
		e, err := entry(r)
		if err != nil {
			return fmt.Errorf("stored manifest %s version %d: %w", r.DeviceType, r.Version, err)
		}
		current[r.DeviceType] = e // records come oldest first: last wins
	}
	c.mu.Lock()
	c.current = current
	c.mu.Unlock()
	return nil
}
