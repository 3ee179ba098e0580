package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster"
)

// TestGatherAsksEveryOtherLiveNode: a node gathers the parts of the other
// live nodes, each answering for the key asked only; a live node that
// does not answer is named, with the parts of the others; one that left
// is not waited for.
func TestGatherAsksEveryOtherLiveNode(t *testing.T) {
	nodes, _ := join(t, "a", "b", "c", "d")
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	jobs := map[string]map[string][]string{ // node → key → entries
		"a": {"acc_alex": {"a1"}},
		"b": {"acc_alex": {"b1", "b2"}, "acc_sam": {"b3"}},
		"c": {"acc_sam": {"c1"}},
	}
	for _, n := range []*cluster.Node{a, b, c} {
		if err := n.ServeList("export", func(key string) any { return jobs[n.Name()][key] }); err != nil {
			t.Fatal(err)
		}
	}
	parts := func(got map[string]json.RawMessage) map[string][]string {
		out := map[string][]string{}
		for node, raw := range got {
			var l []string
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("node %s's part %s: %v", node, raw, err)
			}
			out[node] = l
		}
		return out
	}

	// d serves no list: a node that does not answer.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	got, err := a.Gather(ctx, "export", "acc_alex")
	cancel()
	var ue *cluster.UnansweredError
	if !errors.As(err, &ue) || !slices.Equal(ue.Nodes, []string{"d"}) {
		t.Fatalf("Gather with node d silent: %v, want d named; got %s", err, got)
	}
	p := parts(got)
	if len(p) != 2 || !slices.Equal(p["b"], []string{"b1", "b2"}) || p["c"] != nil {
		t.Fatalf("alex's parts: %v; want b's two jobs and nothing from c (a lists its own)", p)
	}

	// Once d left, nobody keeps the request waiting.
	d.Leave()
	waitFor(t, func() bool { return len(a.Live()) == 3 }, func() string { return "node a to see node d leave" })
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err = b.Gather(ctx, "export", "acc_sam")
	if err != nil {
		t.Fatal(err)
	}
	if p := parts(got); len(p) != 2 || p["a"] != nil || !slices.Equal(p["c"], []string{"c1"}) {
		t.Fatalf("sam's parts asked by b: %v; want nothing from a and c's one job", p)
	}
}
