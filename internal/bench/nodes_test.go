package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/cluster/clustertest"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// TestRunNodes runs two nodes on a fresh database next to one SQLite hub,
// briefly, and checks that both sides acknowledged readings, that the
// load went to both nodes, that their CPU was measured, and that the
// bench dropped its database.
func TestRunNodes(t *testing.T) {
	admin := pgtest.AdminURL()
	pgtest.NewDatabase(t) // skips (or fails in CI) without a server
	natsURL := clustertest.URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := RunNodes(ctx, NodesOptions{Nodes: 2, Devices: 4, Duration: 500 * time.Millisecond,
		Postgres: admin, NATS: natsURL, HubArgv: testHubArgv(t), HubEnv: []string{hubEnv}, Out: &out, Progress: io.Discard})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.Sides) != 2 {
		t.Fatalf("%d sides, want 2", len(rep.Sides))
	}
	for _, s := range rep.Sides {
		if s.QoS1 == nil || s.QoS1.Acked == 0 || s.QoS1.CPUMicrosPerMsg <= 0 {
			t.Fatalf("%s: no acknowledged readings or no CPU measured: %+v", s.Name, s.QoS1)
		}
	}
	nodes := rep.Sides[1]
	if nodes.Database == "" {
		t.Fatal("the report does not name the bench's database")
	}
	if len(nodes.PerNodeAcked) != 2 || nodes.PerNodeAcked[0] == 0 || nodes.PerNodeAcked[1] == 0 {
		t.Fatalf("readings per node %v: the load did not reach both nodes", nodes.PerNodeAcked)
	}
	if !strings.Contains(out.String(), "2 nodes, PostgreSQL + NATS") {
		t.Fatalf("table lacks the nodes' row:\n%s", out.String())
	}
	// The latency at the client socket, merged over the nodes' loads, is
	// in the report and the table (Linux: elsewhere it is n/a, why said).
	for _, s := range rep.Sides {
		r := s.QoS1
		sock := fmt.Sprintf("%.2f / %.2f", r.SockAckP50Ms, r.SockAckP99Ms)
		if runtime.GOOS != "linux" {
			sock = "n/a (" + r.SockAckNA + ")"
		} else if r.SockAckNA != "" || r.SockAckP99Ms <= 0 || r.SockAckP99Ms > r.AckP99Ms {
			t.Errorf("%s: PUBACK latency at the client socket p99 %v ms (client-observed %v), %q", s.Name, r.SockAckP99Ms, r.AckP99Ms, r.SockAckNA)
		}
		if !strings.Contains(out.String(), sock) {
			t.Errorf("%s: the table lacks the socket latency %q:\n%s", s.Name, sock, out.String())
		}
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, nodes.Database).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("the bench left its database %s behind", nodes.Database)
	}
}

func TestMergeLoads(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := &loadResult{Start: t0.Add(time.Second), SendEnd: t0.Add(3 * time.Second), End: t0.Add(4 * time.Second),
		Sent: []int64{5}, Acked: []int64{5}, LoadCPU: time.Second}
	b := &loadResult{Start: t0, SendEnd: t0.Add(2 * time.Second), End: t0.Add(5 * time.Second),
		Sent: []int64{7, 1}, Acked: []int64{6, 1}, LoadCPU: 2 * time.Second}
	a.AckLat.Record(1)
	b.AckLat.Record(2)
	m := mergeLoads([]*loadResult{a, nil, b})
	if !m.Start.Equal(t0) || !m.SendEnd.Equal(t0.Add(3*time.Second)) || !m.End.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("span %v %v %v", m.Start, m.SendEnd, m.End)
	}
	if sum(m.Sent) != 13 || sum(m.Acked) != 12 || len(m.Acked) != 3 || m.AckLat.Count() != 2 || m.LoadCPU != 2*time.Second {
		t.Fatalf("merged %+v", m)
	}
	if mergeLoads([]*loadResult{nil}) != nil {
		t.Fatal("nothing merged is not nil")
	}
}
