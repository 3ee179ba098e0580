package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/candor-iot/candor/internal/auditlog"
)

// One transparency log for the deployment.
//
// The nodes agree on the order of entries through one JetStream stream,
// candor.<deployment>.log (stream CANDOR_LOG_<deployment>): a node records
// an event by publishing it there, and every node, this one included,
// reads the stream in order and appends each event to its own copy of the
// log with auditlog's usual group commit. All copies are signed with the
// one log key the nodes share, so they hold the same entries in the same
// order: the same RFC 6962 tree, whose checkpoints any node signs, and
// which `candor log verify` checks unchanged on an export or a copy of any
// node's log directory. Record returns once this node's copy holds the
// entry, committed and covered by a signed checkpoint, as on one hub.
//
// The stream is the sequencer; JetStream elects its leader itself (with
// R3 replicas, among three servers). A copy that no longer matches the
// stream (a node's log repaired after a crash appends a record of the
// repair only it has) is detected at start, and the hub rebuilds that copy
// from the stream.

// ErrDiverged means this node's copy of the log is not a prefix of the
// deployment's log: it must be rebuilt from the stream.
var ErrDiverged = errors.New("this node's transparency log differs from the deployment's")

// LogMirror keeps a node's copy of the deployment's log. It implements
// auditlog.Recorder.
type LogMirror struct {
	log     *auditlog.Log
	js      jetstream.JetStream
	subject string
	logger  *slog.Logger

	mu       sync.Mutex
	applied  uint64        // stream sequence the local copy holds, committed
	progress chan struct{} // closed and replaced when applied grows or failed is set
	failed   error

	cancel context.CancelFunc
	done   chan struct{}
}

// StreamName is the JetStream stream holding a deployment's log.
func StreamName(deployment string) string { return "CANDOR_LOG_" + deployment }

// Log starts keeping l as this node's copy of the deployment's log. It
// returns once l has caught up with the stream as it was at the call. It
// returns an error wrapping ErrDiverged when l holds entries the stream
// does not, in the same places.
func (n *Node) Log(ctx context.Context, l *auditlog.Log) (*LogMirror, error) {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	subject := n.subject("log")
	st, err := n.logStream(ctx, js, subject, l.VerifierKey())
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: log stream: %w", err)
	}
	size := l.Size()
	if size > 0 {
		if info.State.LastSeq < size {
			return nil, fmt.Errorf("%w: it has %d entries, the deployment's stream %d", ErrDiverged, size, info.State.LastSeq)
		}
		// Entry i of the log is message i+1 of the stream. Comparing the
		// last entry catches a local repair record; everything before
		// it is covered by the signed tree and the stream's order.
		msg, err := st.GetMsg(ctx, size)
		if err != nil {
			return nil, fmt.Errorf("cluster: log stream message %d: %w", size, err)
		}
		e, err := l.Entry(ctx, size-1)
		if err != nil {
			return nil, fmt.Errorf("cluster: local log entry %d: %w", size-1, err)
		}
		if !bytes.Equal(msg.Data, e.Data) {
			return nil, fmt.Errorf("%w: entry %d is not the deployment's", ErrDiverged, size-1)
		}
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: size + 1})
	if err != nil {
		return nil, fmt.Errorf("cluster: log stream consumer: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m := &LogMirror{log: l, js: js, subject: subject, logger: n.log, applied: size,
		progress: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	it, err := cons.Messages()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: log stream consumer: %w", err)
	}
	go m.run(runCtx, it)
	if err := m.waitFor(ctx, info.State.LastSeq); err != nil {
		m.Close()
		return nil, fmt.Errorf("cluster: catch up with the deployment's log: %w", err)
	}
	return m, nil
}

// ErrWrongLogKey means this node's log key is not the deployment's: its
// copy would be signed by another key.
var ErrWrongLogKey = errors.New("this node's transparency log key is not the deployment's")

// logKeyPrefix starts the line of the stream's description that names the
// log key its entries are signed with, so a node given the wrong key
// file is refused instead of signing the deployment's log with its own.
const logKeyPrefix = "log key: "

// logStream opens the deployment's log stream, creating it (named after
// verifierKey) for the first node, and refuses a node whose key differs.
func (n *Node) logStream(ctx context.Context, js jetstream.JetStream, subject, verifierKey string) (jetstream.Stream, error) {
	name := StreamName(n.opts.Deployment)
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name,
			Description: "Candor transparency log entries of deployment " + n.opts.Deployment + ", in log order\n" +
				logKeyPrefix + verifierKey,
			Subjects:  []string{subject},
			Storage:   jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, // kept for ever, like the log: a new node replays it all
			Discard:   jetstream.DiscardNew,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, name) // another node created it meanwhile
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: log stream: %w", err)
	}
	desc := st.CachedInfo().Config.Description
	if _, key, ok := strings.Cut(desc, logKeyPrefix); !ok || key != verifierKey {
		return nil, fmt.Errorf("%w: copy audit/%s from a node of the deployment", ErrWrongLogKey, "log.key")
	}
	return st, nil
}

// appended is an entry handed to the local log, in stream order.
type appended struct {
	seq uint64
	p   *auditlog.Pending
}

// run appends the stream's events to the local log in order; a second
// goroutine waits for their commits in the same order, so appends keep
// sharing fsyncs (group commit) while progress advances entry by entry.
func (m *LogMirror) run(ctx context.Context, it jetstream.MessagesContext) {
	defer close(m.done)
	queue := make(chan appended, 4096)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for a := range queue {
			if _, err := a.p.Wait(context.Background()); err != nil {
				m.fail(fmt.Errorf("cluster: append log entry %d: %w", a.seq-1, err))
				return
			}
			m.advance(a.seq)
		}
	}()
	defer func() { close(queue); <-committed }()
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				m.fail(fmt.Errorf("cluster: read the log stream: %w", err))
			}
			return
		}
		meta, err := msg.Metadata()
		if err != nil {
			m.fail(fmt.Errorf("cluster: log stream message: %w", err))
			return
		}
		ev, err := auditlog.ParseEvent(msg.Data())
		if err != nil {
			m.fail(fmt.Errorf("cluster: log stream message %d: %w", meta.Sequence.Stream, err))
			return
		}
		p, err := m.log.AppendAsync(ev)
		if err != nil {
			m.fail(fmt.Errorf("cluster: append log entry %d: %w", meta.Sequence.Stream-1, err))
			return
		}
		if p.Index() != meta.Sequence.Stream-1 {
			// Something appended to the local log outside the stream.
			m.fail(fmt.Errorf("%w: stream message %d became local entry %d", ErrDiverged, meta.Sequence.Stream, p.Index()))
			return
		}
		queue <- appended{seq: meta.Sequence.Stream, p: p}
	}
}

func (m *LogMirror) advance(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied = seq
	close(m.progress)
	m.progress = make(chan struct{})
}

func (m *LogMirror) fail(err error) {
	m.logger.Error("cluster: transparency log copy stopped", "err", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil {
		m.failed = err
		close(m.progress)
		m.progress = make(chan struct{})
	}
}

// waitFor returns once the local copy holds stream message seq.
func (m *LogMirror) waitFor(ctx context.Context, seq uint64) error {
	for {
		m.mu.Lock()
		applied, failed, progress := m.applied, m.failed, m.progress
		m.mu.Unlock()
		if applied >= seq {
			return nil
		}
		if failed != nil {
			return failed
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Record appends ev to the deployment's log and returns once this node's
// copy holds it, committed and signed. Like (*auditlog.Log).Record, it
// takes the actor from ctx when ev names none. The event is checked first, so an
// invalid one never reaches the other nodes.
func (m *LogMirror) Record(ctx context.Context, ev auditlog.Event) error {
	if ev.Actor.Kind == "" {
		ev.Actor = auditlog.ActorFrom(ctx) // as (*auditlog.Log).Record does
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now() // stamped once, here: every copy must hold the same bytes
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("cluster: encode log entry: %w", err)
	}
	ack, err := m.js.PublishMsg(ctx, &nats.Msg{Subject: m.subject, Data: data})
	if err != nil {
		return fmt.Errorf("cluster: hand the log entry to the deployment's log: %w", err)
	}
	return m.waitFor(ctx, ack.Sequence)
}

// Close stops following the stream. The local log stays open (its owner
// closes it).
func (m *LogMirror) Close() {
	m.cancel()
	<-m.done
}
