package apps

import "context"

// Reload rereads apps and their grants from the store, for a change made
// by another hub node sharing it (a grant switched, an app revoked).
func (s *Service) Reload(ctx context.Context) error { return s.reload(ctx) }
