package cluster

import (
	"context"
	"errors"
	"fmt"

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
