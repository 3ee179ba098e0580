package erasure

import (
	"context"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Kick asks the background purger to run now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run removes queued rows until ctx ends: at once when kicked, and every
// interval otherwise (which also finishes purges whose grace has passed
// and returns pages freed by the retention job to the file system).
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.PurgePass(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("purge", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// PurgePass works through the queue once: removes every queued reading in
// bounded chunks, drops purges that are complete, and reclaims space. It
// reports how many readings it removed.
func (s *Service) PurgePass(ctx context.Context) (int64, error) {
	ps, err := s.cfg.Store.Purges(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range ps {
		n, err := s.purge(ctx, p)
		total += n
		if err != nil {
			return total, err
		}
	}
	if s.cfg.Reclaim != nil {
		// Bounded steps, each its own short transaction.
		for range 200 {
			freed, err := s.cfg.Reclaim(ctx, 2000)
			if err != nil {
				return total, fmt.Errorf("reclaim space: %w", err)
			}
			if freed == 0 || ctx.Err() != nil {
				break
			}
		}
	}
	if total > 0 {
		s.log.Info("purged readings", "readings", total, "purges", len(ps))
	}
	return total, nil
}

func (s *Service) purge(ctx context.Context, p store.Purge) (int64, error) {
	var total int64
	for {
		n, err := s.cfg.Store.PurgeReadings(ctx, p, chunk)
		total += n
		if err != nil {
			return total, err
		}
		if n < chunk {
			break
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
	// A bounded purge is complete once its range is empty: later readings
	// have higher seqs. A full purge waits out the grace period, for
	// readings of the device that were in flight when it was erased.
	if p.UntilSeq > 0 || s.cfg.Now().Sub(p.RequestedAt) >= s.cfg.Grace {
		if err := s.cfg.Store.FinishPurge(ctx, p); err != nil {
			return total, err
		}
	}
	return total, nil
}

// Pending lists the queued purges (what is still to be removed).
func (s *Service) Pending(ctx context.Context) ([]store.Purge, error) {
	return s.cfg.Store.Purges(ctx)
}
