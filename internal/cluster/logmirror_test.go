package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/cluster"
)

func openLog(t *testing.T, dir string, key *auditlog.Key) *auditlog.Log {
	t.Helper()
	l, err := auditlog.Open(context.Background(), dir, key, auditlog.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Two nodes record at once through the deployment's log; both copies end
// up as the same signed tree, and a copy holding an entry the deployment
// never had is refused.
func TestOneLogForTheDeployment(t *testing.T) {
	ctx := context.Background()
	nodes, _ := join(t, "a", "b")
	key, err := auditlog.GenerateKey("candor-test")
	if err != nil {
		t.Fatal(err)
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	logs := []*auditlog.Log{openLog(t, dirA, key), openLog(t, dirB, key)}
	var mirrors []*cluster.LogMirror
	for i, n := range nodes {
		m, err := n.Log(ctx, logs[i])
		if err != nil {
			t.Fatal(err)
		}
		mirrors = append(mirrors, m)
	}
	const each = 50
	var wg sync.WaitGroup
	for i, m := range mirrors {
		wg.Go(func() {
			for j := range each {
				ev := auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}, Action: auditlog.ActionReadingsRead,
					Subject: auditlog.Subject{Device: []string{"dev_a", "dev_b"}[i]}, Purpose: "test"}
				if err := m.Record(ctx, ev); err != nil {
					t.Errorf("node %d record %d: %v", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Each Record returned once its own node held the entry; the other
	// node may still be appending.
	for i, l := range logs {
		waitFor(t, func() bool { return l.Size() == 2*each }, func() string {
			return fmt.Sprintf("node %d's log to hold %d entries (has %d)", i, 2*each, l.Size())
		})
	}
	rootA, err := logs[0].RootHash(ctx, 2*each)
	if err != nil {
		t.Fatal(err)
	}
	rootB, err := logs[1].RootHash(ctx, 2*each)
	if err != nil || string(rootA) != string(rootB) {
		t.Fatalf("the copies differ: %x and %x (%v)", rootA, rootB, err)
	}
	for i, l := range logs {
		if _, err := l.Verify(ctx); err != nil {
			t.Errorf("node %d's copy: %v", i, err)
		}
	}

	// Node B's copy gets an entry of its own (as a crash repair appends):
	// following the deployment's log again is refused.
	mirrors[1].Close()
	if _, err := logs[1].Append(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub},
		Action: auditlog.ActionAuditRecover, Purpose: "crash recovery"}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Log(ctx, logs[1]); !errors.Is(err, cluster.ErrDiverged) {
		t.Fatalf("following with a diverged copy: %v, want ErrDiverged", err)
	}
	// An invalid event never reaches the stream.
	if err := mirrors[0].Record(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}}); !errors.Is(err, auditlog.ErrInvalidEvent) {
		t.Fatalf("recording an event without an action: %v", err)
	}
	mirrors[0].Close()

	// A node given another log key is refused: its copy would be signed
	// by a key the deployment's verifiers do not know.
	other, err := auditlog.GenerateKey("candor-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Log(ctx, openLog(t, t.TempDir(), other)); !errors.Is(err, cluster.ErrWrongLogKey) {
		t.Fatalf("following with another log key: %v, want ErrWrongLogKey", err)
	}
}
