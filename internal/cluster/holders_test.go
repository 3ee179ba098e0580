package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster"
)

// parts decodes Gather's parts, lists of strings in these tests.
func parts(t *testing.T, got cluster.Gathered) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for node, raw := range got.Parts {
		var l []string
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("node %s's part %s: %v", node, raw, err)
		}
		out[node] = l
	}
	return out
}

// serveJobs has each node answer with its entries in jobs (node → key →
// entries), and waits until every node knows the others answer.
func serveJobs(t *testing.T, nodes []*cluster.Node, jobs map[string]map[string][]string) {
	t.Helper()
	var names []string
	for _, n := range nodes {
		if err := n.ServeList("export", func(key string) any { return jobs[n.Name()][key] }); err != nil {
			t.Fatal(err)
		}
		names = append(names, n.Name())
	}
	for _, n := range nodes {
		want := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n.Name() })
		waitFor(t, func() bool { return slices.Equal(n.Answering("export"), want) },
			func() string {
				return fmt.Sprintf("node %s to hear that %v answer (heard %v)", n.Name(), want, n.Answering("export"))
			})
	}
}

// TestGatherAsksEveryOtherLiveNode: a node gathers the parts of the other
// live nodes, each answering for the key asked only; a live node that
// says it answers but does not in time is named as unanswered, with the
// parts of the others; one that left is not waited for.
func TestGatherAsksEveryOtherLiveNode(t *testing.T) {
	nodes, _ := join(t, "a", "b", "c", "d")
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	jobs := map[string]map[string][]string{ // node → key → entries
		"a": {"acc_alex": {"a1"}},
		"b": {"acc_alex": {"b1", "b2"}, "acc_sam": {"b3"}},
		"c": {"acc_sam": {"c1"}},
	}
	serveJobs(t, []*cluster.Node{a, b, c}, jobs)
	// d says it answers but hangs (a node too busy to answer in time).
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	if err := d.ServeList("export", func(string) any { <-hang; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return slices.Contains(a.Answering("export"), "d") }, func() string { return "node a to hear that d answers" })

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	got, err := a.Gather(ctx, "export", "acc_alex")
	cancel()
	if err != nil || !slices.Equal(got.Unanswered, []string{"d"}) || len(got.NotAsked) != 0 || got.Complete() {
		t.Fatalf("Gather with node d silent: %v, unanswered %v, not asked %v; want d unanswered", err, got.Unanswered, got.NotAsked)
	}
	p := parts(t, got)
	if len(p) != 2 || !slices.Equal(p["b"], []string{"b1", "b2"}) || p["c"] != nil {
		t.Fatalf("alex's parts: %v; want b's two jobs and nothing from c (a lists its own)", p)
	}

	// Once d left, nobody keeps the request waiting.
	d.Leave()
	waitFor(t, func() bool { return len(a.Live()) == 3 }, func() string { return "node a to see node d leave" })
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err = b.Gather(ctx, "export", "acc_sam")
	if err != nil || !got.Complete() {
		t.Fatalf("Gather: %v, unanswered %v, not asked %v; want every part", err, got.Unanswered, got.NotAsked)
	}
	if p := parts(t, got); len(p) != 2 || p["a"] != nil || !slices.Equal(p["c"], []string{"c1"}) {
		t.Fatalf("sam's parts asked by b: %v; want nothing from a and c's one job", p)
	}
}

// TestGatherDoesNotWaitForNodesThatDoNotAnswer: during a rolling upgrade
// a node of an older version is live but never answers list requests
// (its heartbeats do not say it does). Gather names it as not asked and
// returns once the nodes that answer did, not when its context ends;
// once the node answers (upgraded), it is asked and waited for.
func TestGatherDoesNotWaitForNodesThatDoNotAnswer(t *testing.T) {
	nodes, _ := join(t, "a", "b", "old")
	a, old := nodes[0], nodes[2]
	jobs := map[string]map[string][]string{"b": {"acc_alex": {"b1"}}, "old": {"acc_alex": {"o1"}}}
	serveJobs(t, nodes[:2], jobs)

	// The bound only keeps a broken Gather from hanging the test: one
	// that waits for node old returns when it ends, and fails below.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := a.Gather(ctx, "export", "acc_alex")
	if ctx.Err() != nil {
		t.Fatalf("Gather waited until its context ended for a node that does not answer (%v, unanswered %v)", err, got.Unanswered)
	}
	if err != nil || !slices.Equal(got.NotAsked, []string{"old"}) || len(got.Unanswered) != 0 || got.Complete() {
		t.Fatalf("Gather with node old not answering: %v, unanswered %v, not asked %v; want old not asked", err, got.Unanswered, got.NotAsked)
	}
	if p := parts(t, got); len(p) != 1 || !slices.Equal(p["b"], []string{"b1"}) {
		t.Fatalf("parts %v, want b's only", p)
	}

	if err := old.ServeList("export", func(key string) any { return jobs["old"][key] }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return slices.Contains(a.Answering("export"), "old") }, func() string { return "node a to hear that old answers" })
	got, err = a.Gather(ctx, "export", "acc_alex")
	if err != nil || !got.Complete() {
		t.Fatalf("Gather once old answers: %v, unanswered %v, not asked %v; want every part", err, got.Unanswered, got.NotAsked)
	}
	if p := parts(t, got); len(p) != 2 || !slices.Equal(p["old"], []string{"o1"}) {
		t.Fatalf("parts %v, want b's and old's", p)
	}
}
