package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
// jobs are each on the node that runs them. A node asks every live node
// for its part (candor.<deployment>.list.<kind>, the key in the request)
// and merges the answers.

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

// ServeList answers the other nodes' requests for this node's entries of
// kind under a key with list(key), encoded as JSON. list decides what a
// key may see: for export jobs, the jobs of that account and no other.
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
	// Serving once it returns: a request sent right after is answered.
	if err := n.nc.Flush(); err != nil {
		return fmt.Errorf("cluster: NATS: %w", err)
	}
	return nil
}

// UnansweredError is returned by Gather when live nodes did not answer
// before its context ended: the parts it returns lack theirs.
type UnansweredError struct {
	Nodes []string // sorted
}

func (e *UnansweredError) Error() string {
	return "cluster: no answer from hub node(s) " + strings.Join(e.Nodes, ", ")
}

// Gather asks every other live node for its entries of kind under key
// and returns each node's answer (as its ServeList encoded it) by node
// name. It returns as soon as every other live node answered; a node that
// stops beating meanwhile is no longer waited for. When ctx ends first,
// it returns the answers it has and an *UnansweredError naming the rest.
func (n *Node) Gather(ctx context.Context, kind, key string) (map[string]json.RawMessage, error) {
	got := map[string]json.RawMessage{}
	body, err := json.Marshal(listRequest{Node: n.opts.Name, Key: key})
	if err != nil {
		return got, fmt.Errorf("cluster: encode a list request: %w", err)
	}
	inbox := n.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return got, fmt.Errorf("cluster: subscribe to list answers: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(n.subjList(kind), inbox, body); err != nil {
		return got, fmt.Errorf("cluster: ask for lists: %w", err)
	}
	recheck := time.NewTicker(n.opts.Heartbeat)
	defer recheck.Stop()
	for {
		var missing []string
		for _, name := range n.Live() {
			if _, ok := got[name]; !ok && name != n.opts.Name {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return got, nil
		}
		select {
		case m := <-ch:
			var r listReply
			if json.Unmarshal(m.Data, &r) == nil && r.Node != "" && r.Node != n.opts.Name {
				got[r.Node] = r.Entries
			}
		case <-recheck.C:
		case <-ctx.Done():
			return got, &UnansweredError{Nodes: missing}
		}
	}
}

func (n *Node) subjList(kind string) string {
	return n.subject("list." + kind)
}
