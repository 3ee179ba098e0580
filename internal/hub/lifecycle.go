package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// A part is one piece of a running hub. start opens or begins it and, when
// it fails, leaves nothing of the part open; stop undoes a start that
// succeeded (nil: nothing to undo, such as a service that only holds
// references to other parts).
type part struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// parts starts parts in order and stops the started ones in reverse, so a
// part is always stopped before the parts it was built on: whatever takes
// new work (listeners, background jobs) is listed after what that work
// needs (ingest, the store), and therefore stops first.
type parts struct {
	log     *slog.Logger
	started []part
}

// start starts ps in order. When one fails, the parts already started are
// stopped in reverse order and the failure is returned, so a hub that
// could not start holds no file, lock or port.
func (p *parts) start(ctx context.Context, ps []part) error {
	for _, pt := range ps {
		p.log.Debug("starting", "part", pt.name)
		if err := pt.start(ctx); err != nil {
			// The caller's context may be what failed; the cleanup must
			// still run to the end.
			if serr := p.stop(context.WithoutCancel(ctx)); serr != nil {
				p.log.Error("clean up after a failed start", "part", pt.name, "err", serr)
			}
			return err
		}
		p.started = append(p.started, pt)
	}
	return nil
}

// stop stops the started parts in reverse order, each once, and returns
// their failures joined. Every part is stopped even if an earlier one
// fails, so one stuck part does not keep the store or the log open.
func (p *parts) stop(ctx context.Context) error {
	var errs []error
	for i := len(p.started) - 1; i >= 0; i-- {
		pt := p.started[i]
		if pt.stop == nil {
			continue
		}
		if err := pt.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", pt.name, err))
		}
	}
	p.started = nil
	return errors.Join(errs...)
}

// job is a goroutine that belongs to a part: run starts fn, and wait
// cancels fn's context and returns once fn has returned.
type job struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// run starts fn with a context that is cancelled by wait only: a job runs
// for the hub's life, not for the life of the Start call that began it.
func (j *job) run(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel, j.done = cancel, make(chan struct{})
	go func() {
		defer close(j.done)
		fn(ctx)
	}()
}

// wait stops the job and waits for it without a deadline: what comes
// after (closing the store) must not happen under a job still using it.
func (j *job) wait(context.Context) error {
	if j.cancel == nil {
		return nil
	}
	j.cancel()
	<-j.done
	return nil
}
