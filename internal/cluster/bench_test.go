package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster"
)

// BenchmarkSync measures one confirmed change round with three nodes on
// the test NATS server: what a person waits for on top of the change
// itself.
func BenchmarkSync(b *testing.B) {
	nodes, _ := joinB(b, "a", "b", "c")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		nodes[0].Note(cluster.Change{Kind: cluster.KindConsent, ID: "dev"})
		if err := nodes[0].Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGatherWithAnOlderNode measures one list gathered (a person's
// export jobs, "My data") with three nodes live, one of which never
// answers such requests, as a node of an older version during a rolling
// upgrade. deadline-hits/op counts the lists that waited for the whole
// second: each is a page that took a second longer than it needed.
func BenchmarkGatherWithAnOlderNode(b *testing.B) {
	nodes, _ := joinB(b, "a", "b", "old")
	if err := nodes[1].ServeList("export", func(string) any { return []string{"b1"} }); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a heartbeat saying b answers reaches a
	hits := 0
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = nodes[0].Gather(ctx, "export", "acc_alex")
		if ctx.Err() != nil {
			hits++
		}
		cancel()
	}
	b.ReportMetric(float64(hits)/float64(b.N), "deadline-hits/op")
}
