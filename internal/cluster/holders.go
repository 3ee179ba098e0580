package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// Some things live on one node only: an export job's encrypted file and
// the key to it, held in memory. A node asked about one it does not hold
// asks the others which holds it (candor.<deployment>.holds.<kind>), and
// sends the request there.

// ServeHolder answers for this node: when holds(id) is true, the node
// replies with url, the base URL other nodes reach it at.
func (n *Node) ServeHolder(kind string, holds func(id string) bool, url string) error {
	return n.subscribe(n.subjHolds(kind), func(m *nats.Msg) {
		if holds(string(m.Data)) {
			_ = m.Respond([]byte(url))
		}
	})
}

// Holder returns the base URL of the node holding the kind's id, or ""
// when no node answers before ctx ends (nobody holds it).
func (n *Node) Holder(ctx context.Context, kind, id string) (string, error) {
	m, err := n.nc.RequestWithContext(ctx, n.subjHolds(kind), []byte(id))
	switch {
	case err == nil:
		return string(m.Data), nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders):
		return "", nil
	}
	return "", fmt.Errorf("cluster: ask who holds %s %s: %w", kind, id, err)
}

func (n *Node) subjHolds(kind string) string {
	return n.subject("holds." + kind)
}

// Some lists are whole only with every node's part: a person's export
// jobs are each on the node that runs them. A node asks the other live
// nodes for their part (candor.<deployment>.list.<kind>, the key in the
// request) and merges the answers. It waits only for the nodes whose
// heartbeats say they answer (heartbeat.Answers, set by ServeList): a
// node of an older version never answers, and during a rolling upgrade
// waiting for it would hold up every list for the full time.

// listRequest asks for the entries of a kind under key (an account id).
type listRequest struct {
	Node string `json:"node"`
	Key  string `json:"key"`
}

// listReply is one node's part.
type listReply struct {
	Node    string          `json:"node"`
	Entries json.RawMessage `json:"entries"`
}

// listRequestName is what a heartbeat's Answers holds for a node that
// answers list requests of kind.
func (n *Node) listRequestName(kind string) string { return "list." + kind }

// ServeList answers the other nodes' requests for this node's entries of
// kind under a key with list(key), encoded as JSON. list decides what a
// key may see: for export jobs, the jobs of that account and no other.
// Once it returns, the node answers, and its heartbeats say so.
func (n *Node) ServeList(kind string, list func(key string) any) error {
	err := n.subscribe(n.subjList(kind), func(m *nats.Msg) {
		var req listRequest
		if json.Unmarshal(m.Data, &req) != nil || req.Node == n.opts.Name || req.Key == "" || m.Reply == "" {
			return // the asking node lists its own part itself
		}
		entries, err := json.Marshal(list(req.Key))
		if err != nil {
			n.log.Error("cluster: encode a list", "kind", kind, "err", err)
			return
		}
		b, _ := json.Marshal(listReply{Node: n.opts.Name, Entries: entries})
		_ = m.Respond(b)
	})
	if err != nil {
		return err
	}
	// Serving before it says so: a node that learns from a heartbeat
	// that this one answers sends its requests after the server has the
	// subscription (NATS keeps one connection's messages in order).
	if err := n.nc.Flush(); err != nil {
		return fmt.Errorf("cluster: NATS: %w", err)
	}
	return n.addAnswers(n.listRequestName(kind))
}

// Gathered is what Gather found: the parts it got and the live nodes
// whose parts it lacks. The list is whole when both lists of nodes are
// empty.
type Gathered struct {
	// Parts holds each answering node's part (as its ServeList encoded
	// it) by node name.
	Parts map[string]json.RawMessage
	// Unanswered names the live nodes that answer such requests but did
	// not before the context ended (or could not be asked), sorted.
	Unanswered []string
	// NotAsked names the live nodes whose heartbeats do not say they
	// answer (an older version during a rolling upgrade, or a node still
	// starting), sorted. Nobody waited for them.
	NotAsked []string
}

// Complete reports whether every other live node's part is in Parts.
func (g Gathered) Complete() bool { return len(g.Unanswered) == 0 && len(g.NotAsked) == 0 }

// Gather asks the other live nodes for their entries of kind under key.
// It waits for those that say they answer (Answering), as they were when
// it asked, and returns as soon as each of them answered or stopped
// beating (one that left has no part any more). When ctx ends first, the
// rest are in Unanswered. An error (NATS failed) comes with every node
// asked in Unanswered.
func (n *Node) Gather(ctx context.Context, kind, key string) (Gathered, error) {
	awaited, notAsked := n.liveAnswering(n.listRequestName(kind))
	got := Gathered{Parts: map[string]json.RawMessage{}, NotAsked: notAsked}
	if len(awaited) == 0 {
		return got, nil
	}
	fail := func(err error) (Gathered, error) {
		got.Unanswered = awaited
		return got, err
	}
	body, err := json.Marshal(listRequest{Node: n.opts.Name, Key: key})
	if err != nil {
		return fail(fmt.Errorf("cluster: encode a list request: %w", err))
	}
	inbox := n.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return fail(fmt.Errorf("cluster: subscribe to list answers: %w", err))
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(n.subjList(kind), inbox, body); err != nil {
		return fail(fmt.Errorf("cluster: ask for lists: %w", err))
	}
	recheck := time.NewTicker(n.opts.Heartbeat)
	defer recheck.Stop()
	for {
		live := n.Live()
		var missing []string
		for _, name := range awaited {
			if _, ok := got.Parts[name]; !ok && slices.Contains(live, name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return got, nil
		}
		select {
		case m := <-ch:
			got.take(m, n.opts.Name)
		case <-recheck.C:
		case <-ctx.Done():
			// Answers that came with the end count: select picks
			// among ready cases at random.
			for len(ch) > 0 {
				got.take(<-ch, n.opts.Name)
			}
			got.Unanswered = slices.DeleteFunc(missing, func(s string) bool { _, ok := got.Parts[s]; return ok })
			return got, nil
		}
	}
}

// take keeps the part one answer carries, unless it is unreadable or
// this node's (self).
func (g *Gathered) take(m *nats.Msg, self string) {
	var r listReply
	if json.Unmarshal(m.Data, &r) != nil || r.Node == "" || r.Node == self {
		return
	}
	g.Parts[r.Node] = r.Entries
	// A node not awaited may answer all the same (one of a version that
	// answered before heartbeats said so): its part is had.
	g.NotAsked = slices.DeleteFunc(g.NotAsked, func(s string) bool { return s == r.Node })
}

func (n *Node) subjList(kind string) string {
	return n.subject("list." + kind)
}
