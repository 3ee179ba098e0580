package hub

import (
	"context"
	"testing"
	"time"
)

// leaderJobs is how many background jobs wait for the job leader lock:
// retention sweeps, erasure purges, the security audit, update checks and
// advisory feed refreshes.
const leaderJobs = 5

// waitJobsOn waits until exactly one of nodes (skipping skip) leads and
// has started every background job, and returns it. The others have
// started none: they cannot, without the lock the leader holds.
func waitJobsOn(t *testing.T, nodes []*testHub, skip int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, th := range nodes {
			if i == skip || !th.leader.Leading() || th.jobStarts.Load() < leaderJobs {
				continue
			}
			for j, o := range nodes {
				if j != i && j != skip && (o.leader.Leading() || o.jobStarts.Load() != 0) {
					t.Fatalf("node %d runs the background jobs, and node %d too (leading %v, %d jobs started)",
						i, j, o.leader.Leading(), o.jobStarts.Load())
				}
			}
			return i
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no node runs the background jobs after 30s")
	return -1
}

func TestBackgroundJobsRunOnOneNode(t *testing.T) {
	nodes := startNodes(t, 2)
	leader := waitJobsOn(t, nodes, -1)
	if got := nodes[leader].jobStarts.Load(); got != leaderJobs {
		t.Fatalf("the leader started %d background jobs, want %d", got, leaderJobs)
	}

	// The leader stops: its session ends, and the other node takes over.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := nodes[leader].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if next := waitJobsOn(t, nodes, leader); next == leader {
		t.Fatal("the stopped node still leads")
	}
}

// TestSingleHubRunsJobsItself: without --nats there is no election.
func TestSingleHubRunsJobsItself(t *testing.T) {
	th := startHubIn(t, shortTempDir(t))
	if th.leader != nil {
		t.Fatal("a single hub takes part in a job leader election")
	}
	deadline := time.Now().Add(10 * time.Second)
	for th.jobStarts.Load() < leaderJobs {
		if time.Now().After(deadline) {
			t.Fatalf("a single hub started %d of %d background jobs", th.jobStarts.Load(), leaderJobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
