package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// ErrClosed is returned for readings submitted after the pipeline closed.
var ErrClosed = errors.New("ingest pipeline closed")

// appender is the part of the store the batcher writes to. AppendReadings
// must not keep rs once it returns: the batcher reuses its memory. A
// *store.RefusedReadingsError from it fails only the readings it lists:
// the rest of the batch is committed and acknowledged.
type appender interface {
	AppendReadings(ctx context.Context, rs []store.Reading) error
}

// batch is a group of readings committed in one transaction. Everyone who
// put a reading into it waits on done and then reads err, and its own
// entry of errs: one channel per batch rather than per reading keeps the
// hot path allocation-light.
type batch struct {
	rows  []store.Reading
	first time.Time // when the first row was added
	// live are the readings of rows to hand to apps, plaintext; handed on
	// only once the batch is committed, so an app never sees a reading the
	// store then loses.
	live []liveReading
	done chan struct{}
	err  error // the whole batch failed
	// errs, nil unless the store refused some readings and committed the
	// rest (store.RefusedReadingsError), holds each refused row's error
	// at its index in rows, nil for the rows committed.
	errs []error

	// wake are told once the batch is committed (Ticket.NotifyCommit);
	// over is set, under wakeMu, once they have been taken to be told, so
	// a later registration knows to look at done itself.
	wakeMu sync.Mutex
	wake   []Waker
	over   bool
}

// liveReading is a reading waiting for its batch's commit before it goes
// to apps.
type liveReading struct {
	device, stream string
	payload        []byte
	row            int // the reading's index in the batch's rows
}

// batcher is a group-commit writer: readings from many connections are
// gathered for at most maxWait (or until maxRows) and written in a single
// durable transaction. While one batch is being written the next one fills,
// so a slow fsync raises batch size instead of lowering throughput.
//
// When the store is the bottleneck (QoS 0 at full speed) submitters block
// and, through them, the connections' read loops, which is the only
// back-pressure a QoS 0 publisher gets (TCP flow control). Devices then
// take turns, first come first served: a batch gives out about
// maxPending/turn turns of up to turn rows each, a device that used its
// turn goes to the back of the line, and a device that waits gets the
// next turn free. Without turns, whichever read loops the scheduler ran
// first after a commit filled the whole batch from their full socket
// buffers, and other devices' readings waited in theirs for seconds. An
// equal share of every batch for every device served them evenly too, but
// each commit then touched every device's part of the readings table and
// wrote 2.3 times the bytes per reading; turns of at least maxRows/10
// rows keep a batch to a part of the devices when many are sending
// (docs/benchmarks.md, "QoS 0: even service of connections").
type batcher struct {
	st      appender
	maxRows int
	maxWait time.Duration
	// busyWait is the gathering window while the writer stays busy (see
	// gather).
	busyWait   time.Duration
	maxPending int // submitters block beyond this many queued rows (backpressure); also the largest batch
	// onCommit is told of every batch written: how many of its readings
	// were committed, how long it took, and the error if it failed. Not
	// of a batch whose every reading the store refused (onRefused is).
	onCommit func(n int, d time.Duration, err error)
	// onRefused, if set, is told of the readings the store refused from
	// a batch whose other readings it committed.
	onRefused func(*store.RefusedReadingsError)
	// onLive, if set, is handed a committed batch's live readings before
	// the batch's waiters are released (and before any PUBACK).
	onLive func([]liveReading)

	mu  sync.Mutex
	cur *batch
	// Turns (see above). devs holds every device that added to cur or
	// waited to, with how many rows its turn in cur still allows, or
	// noTurn if it holds none (one map, so a reading costs one lookup and
	// one store in it); holders counts the devices holding a turn; line is
	// the devices waiting for a turn, in the order they came. cur gives
	// out turns turns of turn rows (more only to a device with no one else
	// holding or waiting for one); given counts them.
	devs    map[string]int
	holders int
	line    []*waiter
	minTurn int
	turn    int
	turns   int
	given   int
	closed  bool
	kick    chan struct{} // cur went from empty to non-empty
	full    chan struct{} // cur reached maxRows
	stop    chan struct{}
	// spare is the rows slice of the last batch written, emptied, for the
	// next batch: a fresh one of maxRows readings for every commit was
	// most of what the hub allocated per reading when paced (hundreds of
	// small commits a second), and so most of its garbage collection.
	spare []store.Reading
	// spareWake is the wake list of the last batch committed, emptied, for
	// the next batch: a connection registers with every commit it waits
	// on, and a fresh list per commit would be garbage per commit.
	spareWake []Waker
	wg        sync.WaitGroup
	// writing is when the first row of the batch being written was added
	// (unix ns), 0 while nothing is being written; see lag.
	writing atomic.Int64
}

func newBatcher(st appender, maxRows int, maxWait, busyWait time.Duration, onCommit func(int, time.Duration, error)) *batcher {
	b := &batcher{
		st:         st,
		maxRows:    maxRows,
		maxWait:    maxWait,
		busyWait:   busyWait,
		maxPending: 4 * maxRows,
		onCommit:   onCommit,
		cur:        newBatch(make([]store.Reading, 0, maxRows)),
		devs:       make(map[string]int),
		minTurn:    max(1, maxRows/10),
		turn:       4 * maxRows,
		turns:      4 * maxRows,
		kick:       make(chan struct{}, 1),
		full:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	b.wg.Add(1)
	go b.run()
	return b
}

// newBatch makes a batch that fills rows, an empty slice.
func newBatch(rows []store.Reading) *batch {
	return &batch{rows: rows, done: make(chan struct{})}
}

// errOverloaded is returned when a submitter gave up waiting for room.
var errOverloaded = errors.New("storage is behind; reading not accepted")

// noTurn marks a device in batcher.devs that wants a turn and holds none.
const noTurn = math.MinInt

// waiter is a device waiting in line for a turn.
type waiter struct {
	dev   string
	ready chan struct{} // closed when its turn comes, or the batcher closes
}

// add queues r and returns the batch it joined and r's index in its rows.
// It blocks while too many
// rows are already waiting for the disk, or r's device has used its turn
// while others wait for theirs, so a flood slows publishers down rather
// than growing memory without bound or dropping data; ctx bounds that
// wait.
func (b *batcher) add(ctx context.Context, r store.Reading, live *liveReading) (*batch, int, error) {
	dev := r.DeviceID
	left := 0 // rows dev's turn allows, once it holds one
	b.mu.Lock()
	for !b.closed {
		n, ok := b.devs[dev]
		if len(b.cur.rows) < b.maxPending {
			if ok && n != noTurn {
				if n > 0 {
					left = n
					break
				}
				b.devs[dev] = noTurn // its turn is used up
				b.holders--
			}
			if len(b.line) == 0 && (b.given < b.turns || b.holders == 0) {
				// Nobody waits and a turn is free, or nobody else
				// holds one: take it at once.
				left = b.turn
				b.holders++
				b.given++
				break
			}
		}
		if !ok {
			b.devs[dev] = noTurn
		}
		w := &waiter{dev: dev, ready: make(chan struct{})}
		b.line = append(b.line, w)
		b.admitLocked()
		b.mu.Unlock()
		select {
		case <-w.ready:
		case <-ctx.Done():
			b.mu.Lock()
			if i := slices.Index(b.line, w); i >= 0 {
				b.line = slices.Delete(b.line, i, i+1)
			} else if b.devs[dev] == b.turn {
				// Its turn came but it will not use it: the next in
				// line may (and an empty batch never holds the line up).
				b.devs[dev] = noTurn
				b.holders--
				b.given--
				b.admitLocked()
			}
			b.mu.Unlock()
			return nil, 0, fmt.Errorf("%w: %w", errOverloaded, ctx.Err())
		}
		b.mu.Lock()
	}
	if b.closed {
		b.mu.Unlock()
		return nil, 0, ErrClosed
	}
	cur := b.cur
	if len(cur.rows) == 0 {
		cur.first = time.Now()
	}
	cur.rows = append(cur.rows, r)
	n := len(cur.rows)
	b.devs[dev] = left - 1
	if live != nil {
		l := *live
		l.row = n - 1
		cur.live = append(cur.live, l)
	}
	b.mu.Unlock()
	if n == 1 {
		signal(b.kick)
	}
	if n == b.maxRows {
		signal(b.full)
	}
	return cur, n - 1, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// wait blocks until bt is committed or ctx ends, and returns the outcome
// of its reading at row. A reading whose wait was abandoned is still
// written; only the caller stops waiting.
func (bt *batch) wait(ctx context.Context, row int) error {
	select {
	case <-bt.done:
		if bt.err == nil && bt.errs != nil {
			return bt.errs[row]
		}
		return bt.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) run() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-b.kick:
		case <-b.stop:
			b.flush()
			return
		}
		// Gather for up to maxWait unless the batch fills first.
		if b.maxWait > 0 {
			timer.Reset(b.maxWait)
			select {
			case <-b.full:
			case <-timer.C:
			case <-b.stop:
			}
			timer.Stop()
		}
		// Keep writing while rows arrived during the previous write: the
		// write itself was (part of) the gathering window.
		for b.flush() > 0 {
			b.gather(timer)
		}
	}
}

// gather waits, with maxWait or busyWait set, until the batch now filling
// is that old (the larger of the two) or full. It runs only right after a
// commit during which rows arrived, that is while the writer stays busy.
// Under steady traffic rows keep arriving while a batch is written, so
// without this only the first batch after a quiet spell would ever
// gather: each commit costs a fixed fsync and transaction (most of the
// hub's CPU per reading when paced, issue #19), and the wait is what
// trades a little latency for fewer of them.
func (b *batcher) gather(timer *time.Timer) {
	window := max(b.maxWait, b.busyWait)
	if window <= 0 {
		return
	}
	b.mu.Lock()
	n, first := len(b.cur.rows), b.cur.first
	b.mu.Unlock()
	if n == 0 || n >= b.maxRows {
		return
	}
	wait := window - time.Since(first)
	if wait <= 0 {
		return
	}
	timer.Reset(wait)
	select {
	case <-b.full:
	case <-timer.C:
	case <-b.stop:
	}
	timer.Stop()
}

// flush writes the current batch, if any, and reports how many rows it had.
func (b *batcher) flush() int {
	b.mu.Lock()
	bt := b.cur
	if len(bt.rows) == 0 {
		b.mu.Unlock()
		return 0
	}
	// Set while cur is swapped under the lock, so lag never sees the
	// batch in neither place.
	b.writing.Store(bt.first.UnixNano())
	rows := b.spare
	if rows == nil {
		rows = make([]store.Reading, 0, b.maxRows)
	}
	b.spare = nil
	b.cur = newBatch(rows)
	b.cur.wake, b.spareWake = b.spareWake, nil
	// The next batch's turns: an equal share for every device that wanted
	// in, but at least minTurn rows. While devices wait in line the batch
	// gives out only as many turns as it holds, so turns go round first
	// come first served; otherwise (the writer keeps up) any device may
	// take one.
	b.turn = max(b.minTurn, b.maxPending/max(1, len(b.devs)))
	b.turns = b.maxPending
	if len(b.line) > 0 {
		b.turns = max(1, b.maxPending/b.turn)
	}
	clear(b.devs)
	b.holders = 0
	b.given = 0
	b.admitLocked()
	b.mu.Unlock()
	// Drain stale signals that belonged to the batch just taken.
	select {
	case <-b.full:
	default:
	}
	select {
	case <-b.kick:
	default:
	}

	defer b.writing.Store(0)
	start := time.Now()
	// The write must not be cut short by a caller's context: once readings
	// are accepted they are committed or reported failed, never abandoned.
	n := len(bt.rows)
	stored := n
	var refused *store.RefusedReadingsError
	if err := b.st.AppendReadings(context.Background(), bt.rows); err != nil {
		if refused = bt.failed(err); refused != nil {
			stored -= len(refused.Refused)
		}
	}
	// A batch the store refused whole wrote nothing: it is neither a
	// commit that succeeded (which would report a failing store healthy
	// again while it stores nothing, say once the seqs are used up) nor
	// one that failed.
	if b.onCommit != nil && (stored > 0 || bt.err != nil) {
		b.onCommit(stored, time.Since(start), bt.err)
	}
	if refused != nil && b.onRefused != nil {
		b.onRefused(refused)
	}
	if bt.err == nil && len(bt.live) > 0 && b.onLive != nil {
		live := bt.live
		if bt.errs != nil {
			// Apps never see a reading the store did not keep.
			live = slices.DeleteFunc(live, func(l liveReading) bool { return bt.errs[l.row] != nil })
		}
		if len(live) > 0 {
			b.onLive(live)
		}
	}
	// Waiters only read done, err and errs: the rows go back for the next
	// batch, cleared so they hold no payload alive.
	clear(bt.rows)
	rows0 := bt.rows[:0]
	bt.rows = nil
	close(bt.done)
	// After done is closed, so a waker finds every reading of the batch
	// Ready; a registration from now on is refused and looks at done.
	bt.wakeMu.Lock()
	ws := bt.wake
	bt.wake, bt.over = nil, true
	bt.wakeMu.Unlock()
	for _, w := range ws {
		w.Committed()
	}
	clear(ws)
	b.mu.Lock()
	b.spare = rows0
	if b.spareWake == nil {
		b.spareWake = ws[:0]
	}
	b.mu.Unlock()
	return n
}

// failed records the store's error from writing bt: in errs if it is a
// refusal of some of bt's rows, the rest being committed, which it
// returns; otherwise, the whole batch having failed, in err. Only the
// store's error itself counts as a refusal, never one found inside it: a
// whole-batch failure that wraps or joins a RefusedReadingsError (from
// an earlier attempt, say) stored nothing. A refusal that names no row,
// a row the batch does not have or a row twice leaves what was stored
// unknown, so the batch fails as a whole.
func (bt *batch) failed(err error) *store.RefusedReadingsError {
	re, ok := err.(*store.RefusedReadingsError)
	if !ok || !bt.refusesRows(re) {
		bt.err = fmt.Errorf("%w: %w", ErrStorage, err)
		return nil
	}
	bt.errs = make([]error, len(bt.rows))
	for _, r := range re.Refused {
		// Not acknowledged, like a reading of a batch the store failed
		// to commit: the reading is the device's to send again (once an
		// operator has made room), not a breach of policy.
		bt.errs[r.Index] = fmt.Errorf("%w: %w", ErrStorage, r.Err)
	}
	return re
}

// refusesRows reports whether re names at least one row of bt, and only
// rows of bt, each with a reason, in increasing order as the store
// promises. So no row is named twice, which would count twice against
// the rows stored.
func (bt *batch) refusesRows(re *store.RefusedReadingsError) bool {
	if re == nil || len(re.Refused) == 0 {
		return false
	}
	prev := -1
	for _, r := range re.Refused {
		if r.Index <= prev || r.Index >= len(bt.rows) || r.Err == nil {
			return false
		}
		prev = r.Index
	}
	return true
}

// A Waker is told when a batch it registered with (Ticket.NotifyCommit)
// has committed.
type Waker interface {
	// Committed runs on the goroutine that committed the batch, which
	// writes the next batch only after it returns: it must not block.
	Committed()
}

// admitLocked gives the devices at the front of the line their turns
// while cur has room and turns to give.
func (b *batcher) admitLocked() {
	for len(b.line) > 0 && b.given < b.turns && len(b.cur.rows) < b.maxPending {
		w := b.line[0]
		b.line[0] = nil
		b.line = b.line[1:]
		// Several waiters of one device share a turn.
		if n, ok := b.devs[w.dev]; !ok || n == noTurn {
			b.devs[w.dev] = b.turn
			b.holders++
			b.given++
		} else if n <= 0 {
			b.devs[w.dev] = b.turn
			b.given++
		}
		close(w.ready)
	}
}

// lag is the age of the oldest reading accepted but not yet committed,
// 0 when every accepted reading is committed.
func (b *batcher) lag() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.writing.Load(); w != 0 {
		return time.Since(time.Unix(0, w))
	}
	if len(b.cur.rows) == 0 {
		return 0
	}
	return time.Since(b.cur.first)
}

// close stops accepting readings and commits everything queued. Every
// caller, not only the first, returns only after the final commit.
func (b *batcher) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for _, w := range b.line {
			close(w.ready)
		}
		b.line = nil
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
}
