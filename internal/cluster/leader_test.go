package cluster

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// waitLeading waits until exactly one of ls leads and returns its index.
func waitLeading(t *testing.T, ls []*Leader, skip int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n, who := 0, -1
		for i, l := range ls {
			if i != skip && l.Leading() {
				n, who = n+1, i
			}
		}
		if n > 1 {
			t.Fatalf("%d nodes lead at once", n)
		}
		if n == 1 {
			return who
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no node leads after 20s")
	return -1
}

func TestLeaderOneAtATimeAndTakeover(t *testing.T) {
	db := pgtest.NewDatabase(t)
	const retry = 100 * time.Millisecond
	var (
		ls      []*Leader
		cancels []context.CancelFunc
		runs    = make(chan int, 16) // index of the leader whose job started
	)
	for i := range 2 {
		l := NewLeader(withParam(db, "pool_max_conns=4"), "dep", LeaderOptions{Retry: retry, Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		jobDone := make(chan struct{})
		go func() {
			defer close(jobDone)
			l.Do(ctx, func(jctx context.Context) {
				runs <- i
				<-jctx.Done()
			})
		}()
		t.Cleanup(func() { cancel(); <-done; <-jobDone })
		ls, cancels = append(ls, l), append(cancels, cancel)
	}
	first := waitLeading(t, ls, -1)
	if got := <-runs; got != first {
		t.Fatalf("the job started on node %d, but node %d leads", got, first)
	}

	// The leader's session is ended by the server (as when its process
	// dies): it stops its job, and one node (perhaps the same one, on a
	// new session) leads again.
	admin, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(),
		`SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		 WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
		   AND a.application_name = 'candor-job-leader'`); err != nil {
		t.Fatal(err)
	}
	again := waitAfterLoss(t, ls, runs)
	t.Logf("after the session was ended, node %d leads", again)

	// The leader stops: the other takes over and runs the job.
	cancels[again]()
	other := 1 - again
	if got := waitLeading(t, ls, again); got != other {
		t.Fatalf("node %d leads, want %d", got, other)
	}
	select {
	case got := <-runs:
		if got != other {
			t.Fatalf("the job started on node %d, want %d", got, other)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not start on the new leader")
	}
}

// waitAfterLoss waits for the job to start again after a lost session
// and returns the node it started on, which must be the one leading.
func waitAfterLoss(t *testing.T, ls []*Leader, runs chan int) int {
	t.Helper()
	select {
	case got := <-runs:
		if !ls[got].Leading() {
			t.Fatalf("the job started again on node %d, which does not lead", got)
		}
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not start again after the leader's session ended")
		return -1
	}
}

func TestLockKeyDiffersByDeployment(t *testing.T) {
	if LockKey("a") == LockKey("b") {
		t.Fatal("two deployments share a lock key")
	}
}

// withParam adds a query parameter to a URL (a pool setting, which the
// election's own connection must accept as the store does).
func withParam(u, p string) string {
	if strings.Contains(u, "?") {
		return u + "&" + p
	}
	return u + "?" + p
}
