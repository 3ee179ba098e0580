package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster/clustertest"
	"github.com/candor-iot/candor/internal/hub"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// jobsLeader reads candor_jobs_leader from a node's metrics over its
// control socket: 1 while it runs the background jobs, 0 when not, -1
// when the node does not answer.
func jobsLeader(dir string) float64 {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, hub.SocketName))
	}}}
	resp, err := c.Get("http://candor/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "candor_jobs_leader "); ok {
			if v == "1" {
				return 1
			}
			return 0
		}
	}
	return 0
}

// TestKillJobLeaderOtherTakesOver runs two `candor serve` nodes on one
// database: exactly one runs the background jobs; it is killed with
// SIGKILL, and the other takes over.
func TestKillJobLeaderOtherTakesOver(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	natsURL := clustertest.URL(t)
	dep := clustertest.Deployment(t, natsURL)
	dirs := []string{tempDataDir(t), tempDataDir(t)}
	first, _ := serveNode(t, dirs[0], dbURL, natsURL, dep)
	for _, name := range hub.SharedKeyFiles {
		b, err := os.ReadFile(filepath.Join(dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dirs[1], name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirs[1], name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	second, _ := serveNode(t, dirs[1], dbURL, natsURL, dep)
	procs := []*os.Process{first.Process, second.Process}

	leader := -1
	for deadline := time.Now().Add(30 * time.Second); leader < 0; {
		a, b := jobsLeader(dirs[0]), jobsLeader(dirs[1])
		switch {
		case a == 1 && b == 1:
			t.Fatal("both nodes run the background jobs")
		case a == 1:
			leader = 0
		case b == 1:
			leader = 1
		case time.Now().After(deadline):
			t.Fatalf("no node runs the background jobs after 30s (%v, %v)", a, b)
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	other := 1 - leader
	if err := procs[leader].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for jobsLeader(dirs[other]) != 1 {
		if time.Since(killed) > 30*time.Second {
			t.Fatal("the surviving node did not take the background jobs over within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the surviving node took over %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
}
