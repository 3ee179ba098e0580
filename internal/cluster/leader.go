package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Leader elects one node of a deployment to run the background jobs
// (retention sweeps, erasure purges, the security audit, update checks,
// advisory feed refreshes), which would otherwise run on every node at
// once. The node that holds a PostgreSQL session advisory lock
// (pg_try_advisory_lock, on a connection of its own kept open while it
// leads) is the leader; the others try again every Options.Retry.
//
// When the leader stops, or its process dies, its session ends and the
// server releases the lock: another node leads within about one Retry.
// When the leader's machine or network fails instead, the server notices
// through TCP keepalives set on the session (after about 11s, see
// keepaliveIdle); the
// leader itself stops its jobs as soon as a ping of its session fails or
// takes longer than Retry, which is sooner, so two nodes do not run the
// jobs at once.
type Leader struct {
	url      string
	key      int64
	retry    time.Duration
	log      *slog.Logger
	onChange func(leading bool)

	mu      sync.Mutex
	term    context.Context // this node's current term; nil or done when not leading
	endTerm context.CancelFunc
	changed chan struct{} // closed and replaced when term changes
}

// LeaderOptions configure a Leader.
type LeaderOptions struct {
	// Retry is how often a follower tries for the lock and a leader
	// checks its session. Default 2s.
	Retry time.Duration
	// Logger receives the changes of leader. Default slog.Default().
	Logger *slog.Logger
	// OnChange is told each time this node starts or stops leading.
	OnChange func(leading bool)
}

// Session keepalives the leader's connection asks the server for, so a
// leader whose machine vanished loses the lock after about
// idle + interval*count seconds (PostgreSQL settings of those names).
const (
	keepaliveIdle     = 5
	keepaliveInterval = 2
	keepaliveCount    = 3
)

// NewLeader prepares the election of deployment's job leader on the
// PostgreSQL database at url; Run takes part in it.
func NewLeader(url, deployment string, o LeaderOptions) *Leader {
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Leader{url: url, key: LockKey(deployment), retry: o.Retry, log: o.Logger, onChange: o.OnChange,
		changed: make(chan struct{})}
}

// LockKey is the advisory lock key of deployment's job leader: a hash of
// a fixed prefix and the name, so deployments sharing a server do not
// elect one leader between them.
func LockKey(deployment string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("candor-jobs-leader:" + deployment))
	return int64(h.Sum64())
}

// Leading reports whether this node leads now.
func (l *Leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term != nil && l.term.Err() == nil
}

// Run takes part in the election until ctx ends, then gives up the lock
// (closing its session) if it holds it.
func (l *Leader) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := l.session(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("job leader election: session with the database ended; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(l.retry):
		}
	}
}

// session opens a connection of its own and tries for the lock every
// Retry; once it holds it, it leads until the connection fails or ctx
// ends.
func (l *Leader) session(ctx context.Context) error {
	// Parsed as the store parses it, so a URL with pool settings
	// (pool_max_conns) works here too.
	pc, err := pgxpool.ParseConfig(l.url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return errors.New("the --store URL cannot be parsed")
	}
	cc := pc.ConnConfig
	if _, set := cc.RuntimeParams["application_name"]; !set {
		cc.RuntimeParams["application_name"] = "candor-job-leader"
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the session ends, and with it the lock
	}()
	if err := l.exec(ctx, conn, fmt.Sprintf("SET tcp_keepalives_idle = %d; SET tcp_keepalives_interval = %d; SET tcp_keepalives_count = %d",
		keepaliveIdle, keepaliveInterval, keepaliveCount)); err != nil {
		return fmt.Errorf("set keepalives: %w", err)
	}
	t := time.NewTicker(l.retry)
	defer t.Stop()
	leading := false
	defer func() {
		if leading {
			l.setTerm(false)
		}
	}()
	for {
		if !leading {
			qctx, cancel := context.WithTimeout(ctx, l.retry)
			var got bool
			err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got)
			cancel()
			if err != nil {
				return fmt.Errorf("try the lock: %w", err)
			}
			if got {
				leading = true
				l.setTerm(true)
			}
		} else if err := l.exec(ctx, conn, "SELECT 1"); err != nil {
			return fmt.Errorf("check the session while leading: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// exec runs sql within one Retry.
func (l *Leader) exec(ctx context.Context, conn *pgx.Conn, sql string) error {
	qctx, cancel := context.WithTimeout(ctx, l.retry)
	defer cancel()
	_, err := conn.Exec(qctx, sql)
	return err
}

// setTerm begins or ends this node's term.
func (l *Leader) setTerm(leading bool) {
	l.mu.Lock()
	if l.endTerm != nil {
		l.endTerm()
		l.term, l.endTerm = nil, nil
	}
	if leading {
		l.term, l.endTerm = context.WithCancel(context.Background())
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	if leading {
		l.log.Info("this node now runs the deployment's background jobs")
	} else {
		l.log.Info("this node no longer runs the deployment's background jobs")
	}
	if l.onChange != nil {
		l.onChange(leading)
	}
}

// wait returns the current term once this node leads, or ctx's error.
func (l *Leader) wait(ctx context.Context) (context.Context, error) {
	for {
		l.mu.Lock()
		term, ch := l.term, l.changed
		l.mu.Unlock()
		if term != nil && term.Err() == nil {
			return term, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// Do runs fn each time this node starts leading, with a context that
// ends when it stops leading or ctx ends; it returns when ctx ends. A
// nil Leader (a single hub) runs fn once, with ctx.
func (l *Leader) Do(ctx context.Context, fn func(ctx context.Context)) {
	if l == nil {
		fn(ctx)
		return
	}
	for {
		term, err := l.wait(ctx)
		if err != nil {
			return
		}
		jctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(term, cancel)
		fn(jctx)
		stop()
		cancel()
		// A job that returned by itself is not restarted in this term.
		select {
		case <-ctx.Done():
			return
		case <-term.Done():
		}
	}
}
