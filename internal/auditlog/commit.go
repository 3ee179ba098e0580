package auditlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
)

// batch is a group of entries committed together: one write, one fsync of
// the entries file, one signed checkpoint, one fsync of its state slot.
// Everyone who put an entry into it waits on done and then reads err.
type batch struct {
	first  uint64
	n      int
	buf    []byte  // encoded records, back to back
	rel    []int32 // where each record starts in buf
	hashes []byte  // n leaf hashes
	done   chan struct{}
	err    error
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// prepared is an event encoded and hashed by its caller's goroutine, so
// that JSON and SHA-256 work spreads over all appenders and the critical
// section only copies bytes.
type prepared struct {
	data []byte
	hash []byte
}

func (l *Log) prepare(ev *Event) (prepared, error) {
	if ev.Time.IsZero() {
		ev.Time = l.opts.Now()
	}
	if err := ev.validateFields(); err != nil {
		return prepared{}, err
	}
	data := ev.appendCanonical(make([]byte, 0, 512))
	if err := checkSize(len(data)); err != nil {
		return prepared{}, err
	}
	return prepared{data: data, hash: hasher.HashLeaf(data)}, nil
}

// enqueue adds prepared entries to the current batch, contiguously, and
// returns the batch and the first index.
func (l *Log) enqueue(ps []prepared) (*batch, uint64, error) {
	l.mu.Lock()
	// Backpressure: wait while the queue is full, but always let a batch
	// into an empty queue, however large, or it could never get in.
	for !l.closed && l.failed == nil && l.cur.n > 0 && l.cur.n+len(ps) > l.opts.MaxPending {
		l.space.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return nil, 0, ErrClosed
	}
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return nil, 0, fmt.Errorf("%w: %w", ErrFailed, err)
	}
	b := l.cur
	first := l.next
	if b.n == 0 {
		b.first = first
	}
	for i, p := range ps {
		b.rel = append(b.rel, int32(len(b.buf)))
		b.buf = logformat.AppendRecord(b.buf, first+uint64(i), p.data)
		b.hashes = append(b.hashes, p.hash...)
	}
	wasEmpty := b.n == 0
	b.n += len(ps)
	l.next += uint64(len(ps))
	l.mu.Unlock()
	if wasEmpty {
		signal(l.kick)
	}
	return b, first, nil
}

// Append logs ev and returns its index once it is durable: written,
// fsynced and covered by a signed checkpoint that is itself fsynced. So
// an index Append returned survives any crash, and Open never has to cut
// off anything that was acknowledged.
//
// Concurrent appends are committed together (group commit), so throughput
// grows with the number of callers while each pays one fsync round. If
// ctx ends first, Append returns ctx.Err() but the entry is still written;
// only the wait is abandoned. (While Options.MaxPending entries are
// already queued, Append first blocks until the disk catches up, whatever
// ctx says: that is the backpressure.) Invalid events fail at once with a
// *FieldError. A zero ev.Time is set to the current time.
func (l *Log) Append(ctx context.Context, ev Event) (uint64, error) {
	p, err := l.prepare(&ev)
	if err != nil {
		return 0, err
	}
	b, idx, err := l.enqueue([]prepared{p})
	if err != nil {
		return 0, err
	}
	return idx, b.wait(ctx)
}

// AppendBatch logs evs at consecutive indices and returns the first once
// all are durable. It validates every event before logging any; an invalid
// one fails the whole call with an error naming its position. The entries
// are contiguous but, like any append, not atomic across a crash: a crash
// mid-write may keep a prefix of them (never acknowledged, but signed by
// the next Open). An empty batch logs nothing and returns Size().
func (l *Log) AppendBatch(ctx context.Context, evs []Event) (uint64, error) {
	if len(evs) == 0 {
		return l.Size(), nil
	}
	ps := make([]prepared, len(evs))
	for i := range evs {
		ev := evs[i]
		p, err := l.prepare(&ev)
		if err != nil {
			return 0, fmt.Errorf("event %d of %d: %w", i, len(evs), err)
		}
		ps[i] = p
	}
	b, first, err := l.enqueue(ps)
	if err != nil {
		return 0, err
	}
	return first, b.wait(ctx)
}

// Pending is an entry that was queued by AppendAsync.
type Pending struct {
	b     *batch
	index uint64
}

// AppendAsync queues ev and returns without waiting for the disk. The
// index is fixed at once; the entry is durable only when Wait returns nil.
// It suits hot paths that log many events and then wait once, or wait only
// before acknowledging something to a person.
func (l *Log) AppendAsync(ev Event) (*Pending, error) {
	p, err := l.prepare(&ev)
	if err != nil {
		return nil, err
	}
	b, idx, err := l.enqueue([]prepared{p})
	if err != nil {
		return nil, err
	}
	return &Pending{b: b, index: idx}, nil
}

// Index is the index the entry will have.
func (p *Pending) Index() uint64 { return p.index }

// Done is closed once the entry's batch is committed or failed.
func (p *Pending) Done() <-chan struct{} { return p.b.done }

// Wait waits until the entry is durable and returns its index.
func (p *Pending) Wait(ctx context.Context) (uint64, error) { return p.index, p.b.wait(ctx) }

func (b *batch) wait(ctx context.Context) error {
	select {
	case <-b.done:
		return b.err
	default:
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Log) failedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// run is the committer, the first of two pipeline stages. It takes
// whatever has queued up, writes and fsyncs it, signs the new tree and
// hands it to publish, then repeats; the time one commit takes is the
// window in which the next batch fills, so a slow disk means bigger
// batches, not lower throughput, and an idle log commits a lone entry at
// once. While publish fsyncs batch N's checkpoint, run already writes and
// fsyncs batch N+1's entries: the two fsyncs of a batch overlap with the
// neighbouring batches' instead of adding up, and the order that matters
// (a checkpoint is durable only after the entries it signs) still holds.
func (l *Log) run() {
	defer close(l.signed)
	for range l.kick {
		for {
			l.mu.Lock()
			b := l.cur
			if b.n == 0 {
				closed := l.closed
				l.mu.Unlock()
				if closed {
					return
				}
				break
			}
			l.cur = &batch{done: make(chan struct{})}
			l.space.Broadcast()
			failed := l.failed
			l.mu.Unlock()

			if failed != nil {
				b.err = fmt.Errorf("%w: %w", ErrFailed, failed)
				close(b.done)
				continue
			}
			sb, err := l.commit(b)
			if err != nil {
				l.fail(err)
				b.err = err
				close(b.done)
				continue
			}
			l.signed <- sb
		}
	}
}

// publish is the second pipeline stage: it makes each signed batch's
// checkpoint durable, in order, then publishes it and releases the
// batch's waiters.
func (l *Log) publish() {
	defer close(l.done)
	for sb := range l.signed {
		err := l.failedErr()
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrFailed, err)
		} else if err = l.writeState(sb); err != nil {
			l.fail(err)
		}
		sb.b.err = err
		close(sb.b.done)
	}
}

// fail stops the log after a failed write or fsync: nothing in memory can
// then be trusted to match the disk (the kernel may even have dropped the
// dirty pages), so appends are refused until a reopen repairs from what
// is really on disk.
func (l *Log) fail(err error) {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.space.Broadcast()
	l.mu.Unlock()
	l.opts.Logger.Error("audit log write failed; appends refused until reopen", "dir", l.dir, "err", err)
}

// commit makes b's entries durable and signs the tree that includes them.
func (l *Log) commit(b *batch) (signedBatch, error) {
	if b.first != l.size {
		return signedBatch{}, fmt.Errorf("internal error: batch starts at %d, log has %d entries", b.first, l.size)
	}
	if _, err := l.entries.WriteAt(b.buf, l.end); err != nil {
		return signedBatch{}, fmt.Errorf("write entries: %w", err)
	}
	if err := l.entries.Sync(); err != nil {
		return signedBatch{}, fmt.Errorf("sync entries: %w", err)
	}

	// Derived data: offsets and node hashes. Not synced here; see
	// syncDerived and the synced mark in the state slot.
	offs := make([]byte, 8*b.n)
	for i, r := range b.rel {
		binary.BigEndian.PutUint64(offs[8*i:], uint64(l.end)+uint64(r))
	}
	if _, err := l.offsets.WriteAt(offs, int64(8*b.first)); err != nil {
		return signedBatch{}, fmt.Errorf("write offsets: %w", err)
	}
	var nb nodeBuffer
	for i := 0; i < b.n; i++ {
		if err := l.rng.Append(b.hashes[i*32:(i+1)*32], nb.visit); err != nil {
			return signedBatch{}, fmt.Errorf("extend tree: %w", err)
		}
	}
	if err := nb.flush(l.nodes); err != nil {
		return signedBatch{}, err
	}
	l.size += uint64(b.n)
	l.end += int64(len(b.buf))

	if time.Since(l.lastSync) >= l.opts.SyncDerivedEvery {
		if err := l.syncDerived(); err != nil {
			return signedBatch{}, err
		}
	}
	root, err := l.rng.GetRootHash(nil)
	if err != nil {
		return signedBatch{}, fmt.Errorf("root hash: %w", err)
	}
	signed, err := l.sign(l.size, root)
	if err != nil {
		return signedBatch{}, err
	}
	return signedBatch{b: b, size: l.size, end: l.end, root: root, signed: signed, synced: l.synced, syncedOff: l.syncedOff}, nil
}
