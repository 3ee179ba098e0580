package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/cluster/clustertest"
)

// recorder is a node's applier: it remembers what it applied, and can be
// told to fail or to hang.
type recorder struct {
	mu      sync.Mutex
	applied []cluster.Change
	calls   int // applier calls: one a round
	fail    error
	hang    chan struct{} // non-nil: apply waits for it to close
}

func (r *recorder) apply(ctx context.Context, cs []cluster.Change) error {
	r.mu.Lock()
	hang, fail := r.hang, r.fail
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, cs...)
	r.calls++
	return fail
}

func (r *recorder) got() []cluster.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied)
}

func (r *recorder) nCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// join starts n nodes of one fresh deployment, closed when t ends.
func join(t *testing.T, names ...string) ([]*cluster.Node, []*recorder) {
	t.Helper()
	return joinB(t, names...)
}

func joinB(t testing.TB, names ...string) ([]*cluster.Node, []*recorder) {
	t.Helper()
	url := clustertest.URL(t)
	dep := clustertest.Deployment(t, url)
	var nodes []*cluster.Node
	var recs []*recorder
	for _, name := range names {
		r := &recorder{}
		n, err := cluster.Join(context.Background(), cluster.Options{URL: url, Deployment: dep, Name: name,
			Confirm: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, r.apply)
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes = append(nodes, n)
		recs = append(recs, r)
	}
	// Every node must know every other before the test starts: the last
	// one heard the others while joining, the first ones hear it within
	// a heartbeat or two.
	for _, n := range nodes {
		waitFor(t, func() bool { return len(n.Live()) == len(names) }, func() string {
			return fmt.Sprintf("node %s to see all %d nodes (sees %v)", n.Name(), len(names), n.Live())
		})
	}
	return nodes, recs
}

// waitFor polls cond until it holds; it fails the test after 10 s with
// what, which is called then, so it tells the state at the failure (not
// at the call). It measures nothing: the bound only keeps a broken test
// from hanging.
func waitFor(t testing.TB, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSyncWaitsForEveryLiveNode(t *testing.T) {
	nodes, recs := join(t, "a", "b", "c")
	change := cluster.Change{Kind: cluster.KindConsent, ID: "dev-1"}
	nodes[0].Note(change)
	if err := nodes[0].Sync(context.Background()); err != nil {
		t.Fatalf("sync: %v", err)
	}
	// Sync has returned: every node has applied the change already.
	for i, r := range recs {
		if got := r.got(); !slices.Contains(got, change) {
			t.Errorf("node %s applied %v by the time Sync returned, want %v", nodes[i].Name(), got, change)
		}
	}
	// Nothing new noted: no round, nobody applies anything again.
	if err := nodes[0].Sync(context.Background()); err != nil {
		t.Fatalf("empty sync: %v", err)
	}
	if got := recs[1].got(); len(got) != 1 {
		t.Errorf("node b applied %v after an empty Sync, want the one change", got)
	}
}

// The changes of one round reach each node's applier together, in one
// call, so a kind applied by rereading a whole table (a monitor's holds:
// many devices held in one window) is reread once, not once per id.
func TestOneRoundIsAppliedInOneCall(t *testing.T) {
	nodes, recs := join(t, "a", "b")
	want := []cluster.Change{{Kind: cluster.KindHold, ID: "dev-1"}, {Kind: cluster.KindHold, ID: "dev-2"},
		{Kind: cluster.KindHold, ID: "dev-3"}}
	for _, c := range want {
		nodes[0].Note(c)
	}
	if err := nodes[0].Sync(context.Background()); err != nil {
		t.Fatalf("sync: %v", err)
	}
	for i, r := range recs {
		if got, calls := r.got(), r.nCalls(); !slices.Equal(got, want) || calls != 1 {
			t.Errorf("node %s applied %v in %d calls; want %v in one", nodes[i].Name(), got, calls, want)
		}
	}
}

func TestSyncFailsWhenANodeDoesNotConfirm(t *testing.T) {
	tests := []struct {
		name       string
		break_     func(r *recorder)
		wantReason string
	}{
		{"apply fails", func(r *recorder) { r.fail = errors.New("database gone") }, "database gone"},
		{"apply hangs", func(r *recorder) { r.hang = make(chan struct{}) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, recs := join(t, "a", "b")
			recs[1].mu.Lock()
			tt.break_(recs[1])
			hang := recs[1].hang
			recs[1].mu.Unlock()
			nodes[0].Note(cluster.Change{Kind: cluster.KindDevice, ID: "dev-2"})
			err := nodes[0].Sync(context.Background())
			var ue *cluster.UnconfirmedError
			if !errors.As(err, &ue) {
				t.Fatalf("sync = %v, want an *UnconfirmedError", err)
			}
			if !slices.Equal(ue.Nodes, []string{"b"}) || !strings.Contains(ue.Reason, tt.wantReason) {
				t.Fatalf("unconfirmed %+v, want node b with reason %q", ue, tt.wantReason)
			}
			// The change is kept for the next round rather than lost.
			recs[1].mu.Lock()
			recs[1].fail, recs[1].hang = nil, nil
			recs[1].mu.Unlock()
			if hang != nil {
				close(hang)
			}
			if err := nodes[0].Sync(context.Background()); err != nil {
				t.Fatalf("sync once b works again: %v", err)
			}
		})
	}
}

func TestSyncDoesNotWaitForANodeThatLeft(t *testing.T) {
	nodes, recs := join(t, "a", "b", "c")
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(nodes[0].Live()) == 2 }, func() string {
		return fmt.Sprintf("node a to drop c (sees %v)", nodes[0].Live())
	})
	nodes[0].Note(cluster.Change{Kind: cluster.KindManifest, ID: "thermostat"})
	if err := nodes[0].Sync(context.Background()); err != nil {
		t.Fatalf("sync without c: %v", err)
	}
	if got := recs[1].got(); len(got) != 1 {
		t.Fatalf("node b applied %v", got)
	}
}

func TestTakeoverReachesOtherNodesOnly(t *testing.T) {
	nodes, _ := join(t, "a", "b")
	ended := make(chan string, 4)
	for _, n := range nodes {
		n.OnTakeover(func(clientID string) { ended <- n.Name() + ":" + clientID })
	}
	nodes[1].Connected("sensor-7")
	select {
	case got := <-ended:
		if got != "a:sensor-7" {
			t.Fatalf("takeover heard as %q, want a:sensor-7", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node a never heard that sensor-7 connected to b")
	}
	// b's own announcement is not a takeover at b: a second message, from
	// a, is the next thing anyone hears.
	nodes[0].Connected("sensor-8")
	if got := <-ended; got != "b:sensor-8" {
		t.Fatalf("next takeover %q, want b:sensor-8", got)
	}
}

func TestConfirmingHoldsTheAnswerUntilEveryNodeApplied(t *testing.T) {
	nodes, recs := join(t, "a", "b")
	// The handler stands for the services: a request that changes
	// something notes it (as the hub's hooks do), one that fails or only
	// reads notes nothing.
	h := nodes[0].Confirming(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refused" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.URL.Path != "/unchanged" {
			nodes[0].Note(cluster.Change{Kind: cluster.KindGrants, ID: r.URL.Path})
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "done")
	}))
	tests := []struct {
		method, path string
		wantStatus   int
		wantApplied  bool
	}{
		{http.MethodGet, "/read", http.StatusCreated, false},
		{http.MethodPost, "/refused", http.StatusForbidden, false},
		{http.MethodPut, "/changed", http.StatusCreated, true},
		{http.MethodDelete, "/deleted", http.StatusCreated, true},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, tt.wantStatus)
			}
			applied := slices.Contains(recs[1].got(), cluster.Change{Kind: cluster.KindGrants, ID: tt.path})
			if applied != tt.wantApplied {
				t.Fatalf("node b applied the change when the answer came: %v, want %v", applied, tt.wantApplied)
			}
		})
	}
	// A request that succeeded but changed nothing starts no round: b
	// applies nothing more.
	before := len(recs[1].got())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/unchanged", nil))
	if w.Code != http.StatusCreated {
		t.Fatalf("unchanged: status %d", w.Code)
	}
	if got := recs[1].got(); len(got) != before {
		t.Fatalf("node b applied %v after a request that noted nothing", got[before:])
	}
	// A node that cannot apply turns "done" into a 503 naming it.
	recs[1].mu.Lock()
	recs[1].fail = errors.New("boom")
	recs[1].mu.Unlock()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/again", nil))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "not confirmed by hub node(s) b") {
		t.Fatalf("with b failing: %d %s", w.Code, w.Body)
	}
}
