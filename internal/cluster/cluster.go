package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Kind says what changed, and so what a node must drop or redo.
type Kind string

const (
	// KindConsent: a device's consent or routing changed (ID: device).
	KindConsent Kind = "consent"
	// KindDevice: a device's credential was rotated or revoked, or the
	// device was erased (ID: device). Its connections end everywhere.
	KindDevice Kind = "device"
	// KindApp: an app's credential was rotated or revoked (ID: app).
	KindApp Kind = "app"
	// KindHold: the abuse monitor placed, changed or lifted a hold: a
	// quarantine, a rate limit, a hold until fixed (ID: device).
	KindHold Kind = "hold"
	// KindMonitorActions: the admin changed what the abuse monitor does
	// about an alarm of each severity.
	KindMonitorActions Kind = "monitor-actions"
	// KindManifest: a manifest version was put in force (ID: device
	// type).
	KindManifest Kind = "manifest"
	// KindGrants: an app was added, or what an app may receive or send
	// changed (ID: app).
	KindGrants Kind = "grants"
	// KindRecipients: a household's recipient endpoints changed, or the
	// household was deleted (ID: household).
	KindRecipients Kind = "recipients"
	// KindKeys: a key owner's key settings or keys changed: a mode
	// chosen, a rotation, a rewrap, a shred (ID: key owner).
	KindKeys Kind = "keys"
	// KindReadingsDeleted: readings of a device were deleted (a range
	// deletion, an unlinking), so copies held in memory (an app's last
	// value) go too (ID: device).
	KindReadingsDeleted Kind = "readings-deleted"
)

// Change is one noted change. It carries ids only, never personal data.
type Change struct {
	Kind Kind   `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// Applier makes the changes of one round (one node's Sync) take effect on
// this node. It runs for changes made on this node too (NATS delivers a
// node its own messages), so a node's own caches follow the same path as
// everyone else's. It gets the round's changes together so that a kind
// applied by rereading a whole table (a monitor's holds) is reread once,
// however many of its ids changed.
type Applier func(ctx context.Context, changes []Change) error

// Options configure a Node.
type Options struct {
	// URL is the NATS server, nats://host:4222. Required.
	URL string
	// Deployment names the hub the nodes form; it prefixes every subject
	// (candor.<Deployment>.…), so two deployments can share a NATS server.
	// Letters, digits, '-' and '_'. Default "default".
	Deployment string
	// Name identifies this node in heartbeats and errors. Default: random.
	Name string
	// Heartbeat is how often the node says it is alive. Default 200ms.
	Heartbeat time.Duration
	// Expire is how long a silent node still counts as live. Default 1s.
	Expire time.Duration
	// Confirm bounds how long Sync waits for confirmations. Default 3s.
	Confirm time.Duration
	// Logger receives membership changes. Default slog.Default().
	Logger *slog.Logger
}

var deploymentName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (o *Options) fill() error {
	if o.URL == "" {
		return errors.New("cluster: no NATS URL")
	}
	if o.Deployment == "" {
		o.Deployment = "default"
	}
	if !deploymentName.MatchString(o.Deployment) {
		return fmt.Errorf("cluster: deployment name %q: use 1 to 64 letters, digits, '-' or '_'", o.Deployment)
	}
	if o.Name == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.Name = hex.EncodeToString(b[:])
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 200 * time.Millisecond
	}
	if o.Expire <= 0 {
		o.Expire = time.Second
	}
	if o.Confirm <= 0 {
		o.Confirm = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// UnconfirmedError is returned by Sync when live nodes did not confirm a
// change in time, or failed to apply it. The change is stored; it is in
// force on every node that confirmed.
type UnconfirmedError struct {
	Nodes  []string // the nodes that did not confirm, sorted
	Reason string   // the first failure a node reported, if any
}

func (e *UnconfirmedError) Error() string {
	msg := "change stored, but not confirmed by hub node(s) " + strings.Join(e.Nodes, ", ")
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Node is this process's membership in a deployment.
type Node struct {
	opts  Options
	nc    *nats.Conn
	apply Applier
	log   *slog.Logger

	subjChanges, subjNodes, subjSessions, subjSpent string

	mu   sync.Mutex
	seen map[string]peer // node name → what its last heartbeat said, and when

	// answers are the requests this node says in its heartbeats that it
	// answers ("list.export"), once it serves them (ServeList).
	answersMu sync.Mutex
	answers   []string

	noteMu  sync.Mutex
	noted   []Change
	notedN  uint64 // changes noted so far
	syncMu  sync.Mutex
	syncedN atomic.Uint64 // changes confirmed by every live node

	takeoverMu sync.Mutex
	takeover   func(clientID string)
	spentHere  func(table, key string)

	stop  chan struct{}
	done  chan struct{}
	subMu sync.Mutex
	subs  []*nats.Subscription

	leaveOnce, closeOnce sync.Once
}

// message is what travels on the changes subject.
type message struct {
	Node    string   `json:"node"`
	Changes []Change `json:"changes"`
}

type confirmation struct {
	Node  string `json:"node"`
	Error string `json:"error,omitempty"`
}

type heartbeat struct {
	Node    string `json:"node"`
	Leaving bool   `json:"leaving,omitempty"`
	// Answers names the requests the node answers ("list.export"). A
	// node asking waits only for the nodes that say so: one of an older
	// version, which has no such field and does not answer, would
	// otherwise keep every request waiting for its full time during a
	// rolling upgrade.
	Answers []string `json:"answers,omitempty"`
}

// peer is another node as its heartbeats describe it.
type peer struct {
	at      time.Time // the last heartbeat
	answers []string  // heartbeat.Answers
}

type session struct {
	Node   string `json:"node"`
	Client string `json:"client"`
}

// Join connects to NATS, starts heartbeats and applies changes from every
// node with apply. It returns once it has heard the other live nodes (two
// heartbeats), so the first Sync waits for all of them.
func Join(ctx context.Context, opts Options, apply Applier) (*Node, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(opts.URL, nats.Name("candor "+opts.Name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to NATS: %w", err)
	}
	n := &Node{opts: opts, nc: nc, apply: apply, log: opts.Logger,
		seen: map[string]peer{}, stop: make(chan struct{}), done: make(chan struct{})}
	n.subjChanges, n.subjNodes, n.subjSessions, n.subjSpent = n.subject("changes"), n.subject("nodes"), n.subject("sessions"), n.subject("spent")
	for subj, h := range map[string]nats.MsgHandler{n.subjChanges: n.onChanges, n.subjNodes: n.onHeartbeat, n.subjSessions: n.onSession, n.subjSpent: n.onSpent} {
		if err := n.subscribe(subj, h); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: NATS: %w", err)
	}
	go n.beat()
	select {
	case <-time.After(2 * opts.Heartbeat):
	case <-ctx.Done():
		n.Close()
		return nil, ctx.Err()
	}
	return n, nil
}

// subject is the NATS subject name has in this node's deployment:
// candor.<deployment>.<name>.
func (n *Node) subject(name string) string { return "candor." + n.opts.Deployment + "." + name }

// subscribe handles subj with h until Leave.
func (n *Node) subscribe(subj string, h nats.MsgHandler) error {
	sub, err := n.nc.Subscribe(subj, h)
	if err != nil {
		return fmt.Errorf("cluster: subscribe to %s: %w", subj, err)
	}
	n.subMu.Lock()
	n.subs = append(n.subs, sub)
	n.subMu.Unlock()
	return nil
}

// Name is this node's name.
func (n *Node) Name() string { return n.opts.Name }

// OnTakeover sets what to do when a client connects to another node: end
// its session here.
func (n *Node) OnTakeover(f func(clientID string)) {
	n.takeoverMu.Lock()
	n.takeover = f
	n.takeoverMu.Unlock()
}

// Live lists the nodes heard from within Expire, this one included,
// sorted.
func (n *Node) Live() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []string{n.opts.Name}
	now := time.Now()
	for name, p := range n.seen {
		if name != n.opts.Name && now.Sub(p.at) < n.opts.Expire {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// liveAnswering splits the other live nodes (not this one) into those
// whose heartbeats say they answer req and the rest, each sorted.
func (n *Node) liveAnswering(req string) (answering, not []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	for name, p := range n.seen {
		switch {
		case name == n.opts.Name || now.Sub(p.at) >= n.opts.Expire:
		case slices.Contains(p.answers, req):
			answering = append(answering, name)
		default:
			not = append(not, name)
		}
	}
	sort.Strings(answering)
	sort.Strings(not)
	return answering, not
}

// Answering lists the other live nodes whose heartbeats say they answer
// list requests of kind (ServeList), sorted: those Gather waits for.
func (n *Node) Answering(kind string) []string {
	a, _ := n.liveAnswering(n.listRequestName(kind))
	return a
}

// addAnswers adds req to what this node's heartbeats say it answers, and
// says so at once rather than at the next beat, so the others wait for
// its answers as soon as it gives them.
func (n *Node) addAnswers(req string) error {
	n.answersMu.Lock()
	if !slices.Contains(n.answers, req) {
		n.answers = append(n.answers, req)
	}
	n.answersMu.Unlock()
	select {
	case <-n.stop:
		return nil // left: a heartbeat now would make it live again
	default:
	}
	if err := n.nc.Publish(n.subjNodes, n.heartbeat()); err != nil {
		return fmt.Errorf("cluster: NATS: %w", err)
	}
	return nil
}

// heartbeat is this node's heartbeat message.
func (n *Node) heartbeat() []byte {
	n.answersMu.Lock()
	hb := heartbeat{Node: n.opts.Name, Answers: slices.Clone(n.answers)}
	n.answersMu.Unlock()
	b, _ := json.Marshal(hb)
	return b
}

func (n *Node) beat() {
	defer close(n.done)
	t := time.NewTicker(n.opts.Heartbeat)
	defer t.Stop()
	for {
		_ = n.nc.Publish(n.subjNodes, n.heartbeat())
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	var hb heartbeat
	if json.Unmarshal(m.Data, &hb) != nil || hb.Node == "" || hb.Node == n.opts.Name {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if hb.Leaving {
		delete(n.seen, hb.Node)
		n.log.Info("cluster: node left", "node", hb.Node)
		return
	}
	if _, known := n.seen[hb.Node]; !known {
		n.log.Info("cluster: node joined", "node", hb.Node)
	}
	n.seen[hb.Node] = peer{at: time.Now(), answers: hb.Answers}
}

// onChanges applies another node's (or this node's) changes and confirms.
func (n *Node) onChanges(m *nats.Msg) {
	var msg message
	if err := json.Unmarshal(m.Data, &msg); err != nil {
		n.log.Warn("cluster: unreadable change message", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.Confirm)
	defer cancel()
	conf := confirmation{Node: n.opts.Name}
	var errs []error
	if len(msg.Changes) > 0 {
		if err := n.apply(ctx, msg.Changes); err != nil {
			errs = append(errs, err)
		}
	}
	if ctx.Err() != nil {
		// The sender stopped waiting at about this time: a late "done"
		// would tell it the change was in force in time when it was not.
		errs = append(errs, fmt.Errorf("applying took longer than %v", n.opts.Confirm))
	}
	if err := errors.Join(errs...); err != nil {
		n.log.Error("cluster: apply changes", "from", msg.Node, "err", err)
		conf.Error = err.Error()
	}
	if m.Reply != "" {
		b, _ := json.Marshal(conf)
		_ = m.Respond(b)
	}
}

// Note remembers a change made on this node, for the next Sync. It never
// blocks on the network, so services may call it from their listeners.
func (n *Node) Note(c Change) {
	n.noteMu.Lock()
	defer n.noteMu.Unlock()
	n.addNotedLocked(c)
	n.notedN++
}

// addNotedLocked adds changes to those waiting for the next round, each
// once. noteMu must be held.
func (n *Node) addNotedLocked(changes ...Change) {
	for _, c := range changes {
		if !slices.Contains(n.noted, c) {
			n.noted = append(n.noted, c)
		}
	}
}

// Sync returns once every change noted before the call is in force on
// every live node: it publishes the changes not yet published and waits
// for a confirmation from each live node. Concurrent callers share one
// round. With nothing noted it returns at once.
func (n *Node) Sync(ctx context.Context) error {
	n.noteMu.Lock()
	want := n.notedN
	n.noteMu.Unlock()
	if n.syncedN.Load() >= want {
		return nil // nothing new: no need to queue behind a round in progress
	}

	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	if n.syncedN.Load() >= want {
		return nil // an earlier round covered them
	}
	n.noteMu.Lock()
	changes, upto := n.noted, n.notedN
	n.noted = nil
	n.noteMu.Unlock()
	if err := n.announce(ctx, changes); err != nil {
		// Keep them for the next round: they are stored, and a node
		// that missed them must still hear of them.
		n.noteMu.Lock()
		n.addNotedLocked(changes...)
		n.noteMu.Unlock()
		return err
	}
	n.syncedN.Store(upto)
	return nil
}

// announce publishes changes and waits for every live node to confirm.
func (n *Node) announce(ctx context.Context, changes []Change) error {
	body, err := json.Marshal(message{Node: n.opts.Name, Changes: changes})
	if err != nil {
		return fmt.Errorf("cluster: encode changes: %w", err)
	}
	inbox := n.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return fmt.Errorf("cluster: subscribe to confirmations: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(n.subjChanges, inbox, body); err != nil {
		return fmt.Errorf("cluster: publish changes: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.Confirm)
	defer cancel()
	confirmed := map[string]bool{} // answered, with or without an error
	var failed []string            // answered with an error
	var reason string
	recheck := time.NewTicker(n.opts.Heartbeat)
	defer recheck.Stop()
	for {
		// Nodes that stopped beating (killed) drop out of Live and are
		// no longer waited for; a node that joins meanwhile read the
		// change from the database when it started.
		missing := []string{}
		for _, name := range n.Live() {
			if !confirmed[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			if len(failed) > 0 {
				sort.Strings(failed)
				return &UnconfirmedError{Nodes: failed, Reason: reason}
			}
			return nil
		}
		select {
		case m := <-ch:
			if ctx.Err() != nil {
				// Both were ready: the deadline wins, so a confirmation
				// that came late never counts as in time.
				return &UnconfirmedError{Nodes: missing, Reason: reason}
			}
			var c confirmation
			if json.Unmarshal(m.Data, &c) != nil || c.Node == "" {
				continue
			}
			if c.Error != "" && !confirmed[c.Node] {
				failed = append(failed, c.Node)
				if reason == "" {
					reason = c.Error
				}
			}
			confirmed[c.Node] = true
		case <-recheck.C:
		case <-ctx.Done():
			return &UnconfirmedError{Nodes: missing, Reason: reason}
		}
	}
}

// Connected tells the other nodes that clientID connected here, so they
// end its session there. It does not wait.
func (n *Node) Connected(clientID string) {
	b, _ := json.Marshal(session{Node: n.opts.Name, Client: clientID})
	if err := n.nc.Publish(n.subjSessions, b); err != nil {
		n.log.Warn("cluster: announce session", "err", err)
	}
}

func (n *Node) onSession(m *nats.Msg) {
	var s session
	if json.Unmarshal(m.Data, &s) != nil || s.Node == n.opts.Name || s.Client == "" {
		return
	}
	n.takeoverMu.Lock()
	f := n.takeover
	n.takeoverMu.Unlock()
	if f != nil {
		f(s.Client)
	}
}

// attemptSpent is a failed credential check passed between nodes: which
// throttle table and which key (an address, a username, a device id; never
// a secret).
type attemptSpent struct {
	Node  string `json:"node"`
	Table string `json:"table"`
	Key   string `json:"key"`
}

// OnSpentElsewhere sets what to do when another node reports an attempt a
// failed credential check used up there: use it up here too.
func (n *Node) OnSpentElsewhere(f func(table, key string)) {
	n.takeoverMu.Lock()
	n.spentHere = f
	n.takeoverMu.Unlock()
}

// Spent tells the other nodes that a failed check used up an attempt of
// key in table here, so a guesser spreading attempts over several nodes
// gets no more than on one. It does not wait.
func (n *Node) Spent(table, key string) {
	b, _ := json.Marshal(attemptSpent{Node: n.opts.Name, Table: table, Key: key})
	if err := n.nc.Publish(n.subjSpent, b); err != nil {
		n.log.Warn("cluster: pass on a failed credential check", "err", err)
	}
}

func (n *Node) onSpent(m *nats.Msg) {
	var a attemptSpent
	if json.Unmarshal(m.Data, &a) != nil || a.Node == n.opts.Name || a.Table == "" {
		return
	}
	n.takeoverMu.Lock()
	f := n.spentHere
	n.takeoverMu.Unlock()
	if f != nil {
		f(a.Table, a.Key)
	}
}

// Leave says goodbye: the other nodes stop waiting for this one at once,
// and it no longer takes part in change rounds or takeovers. The
// connection stays open for the log (LogMirror) until Close. A hub calls
// it first thing when it shuts down.
func (n *Node) Leave() {
	n.leaveOnce.Do(func() {
		close(n.stop)
		<-n.done
		n.subMu.Lock()
		for _, s := range n.subs {
			_ = s.Unsubscribe()
		}
		n.subMu.Unlock()
		b, _ := json.Marshal(heartbeat{Node: n.opts.Name, Leaving: true})
		_ = n.nc.Publish(n.subjNodes, b)
		_ = n.nc.Flush()
	})
}

// Close leaves (if not done yet) and disconnects.
func (n *Node) Close() error {
	n.Leave()
	n.closeOnce.Do(func() { n.nc.Close() })
	return nil
}
