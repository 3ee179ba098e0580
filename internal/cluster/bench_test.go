package cluster_test

import (
	"context"
	"testing"

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
