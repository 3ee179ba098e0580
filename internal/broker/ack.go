package broker

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/ingest"
)

// ackQueueLen bounds the readings of one connection waiting for their
// commit. A client sending faster than the disk commits is held up here
// (its read loop blocks), which is the back-pressure MQTT relies on.
const ackQueueLen = 1024

// ackWriteMax bounds the PUBACKs gathered into one write (4 bytes each in
// 3.1.1, 4–5 in 5), so a long run of committed readings still goes out in
// steady pieces.
const ackWriteMax = 16 << 10

// acceptedTicket is the ticket of a reading acknowledged without waiting
// for its commit (the bounded-window mode).
var acceptedTicket = ingest.Completed(nil)

type ackItem struct {
	id     uint16
	ticket ingest.Ticket
	// refusal, if set, is the MQTT 5 reason code (and reason string) to
	// answer with instead of success: a publish the hook refused, whose
	// PUBACK must still wait its turn behind earlier readings' (ackInOrder).
	refusal *packets.Code
}

// ackQueue sends one connection's QoS 1 acknowledgements in the order the
// PUBLISH packets arrived (as MQTT requires), each only after its reading
// is durably committed.
//
// The PUBACKs of every reading already committed are written together:
// one write(2) per connection per committed batch instead of one per
// message. Per-message writes were 22% of the hub's CPU at full speed
// (issue #19). A PUBACK is never held back for a later commit.
//
// On a plain TCP connection nothing waits in a goroutine of its own. The
// queue registers with the batch of its first waiting reading
// (ingest.Ticket.NotifyCommit), once, not per reading; that batch's commit
// (Committed, on the batcher's goroutine) writes the PUBACKs of every
// reading now committed in one non-blocking write and registers with the
// batch of the next waiting one. A commit used to wake one goroutine per
// reading it held, all at once, and on 2 cores the last of 30-40 waited
// milliseconds to run (docs/benchmarks.md, "Session 4: where the paced
// PUBACK tail waits"). A reading acknowledged without waiting (the
// bounded-window mode) that nothing waits ahead of is not even queued: its
// PUBACK goes into rbuf, which the read loop writes just before it blocks
// on the socket (guardConn.Read), so PUBACKs of packets read together
// still leave together.
//
// Whatever cannot be written that way goes to the run goroutine, which
// waits and writes with blocking writes as before: a connection over TLS
// or WebSocket (no socket of ours to write to), a refusal (its reason
// string goes through mochi's encoder), a failed commit, and the rest of a
// non-blocking write the socket did not take in full or that would have
// had to wait for mochi's lock (and first the rest of a PUBACK such a
// write cut, if no other write sent it: guardConn.tail). It runs only
// while readings are waiting: it starts with them and ends, releasing the
// queue's memory, once everything
// is acknowledged. A device that sends a reading a minute holds no
// goroutine and no large buffer for it between readings (a goroutine for
// the life of the connection and a 1,024-slot channel cost about 32 KiB
// per device, more than the rest of its connection).
//
// Exactly one writer of PUBACKs exists at a time, named by state: the one
// that moved it out of ackIdle, and only the read loop (push) does that.
// The one exception ends the connection: whoever writes mochi's DISCONNECT
// (a takeover, shutdown) or closes the connection first writes, holding
// the connection's lock, every PUBACK that can be sent (guardConn.sendAcks),
// taken from rbuf, out and items, which is why the run goroutine keeps
// nothing of its own between writes.
type ackQueue struct {
	cl    *mqtt.Client
	h     *hook
	write func([]byte) error // writes whole packets to the connection, blocking

	// For non-blocking writes, set on a plain TCP connection that came
	// through the guard (nil otherwise): the socket, and wfn, the function
	// handed to raw.Write, made once so a write allocates nothing. wp is
	// what wfn writes, wn and werr what came of it; only the one writer
	// touches them.
	raw  syscall.RawConn
	gc   *guardConn
	wfn  func(fd uintptr) bool
	wp   []byte
	wn   int
	werr error

	// rbuf holds the PUBACKs of readings acknowledged at once that nothing
	// was waiting ahead of (state ackIdle), until the read loop is about
	// to block (flushRead). The read loop uses it under rmu; the only
	// other user is a writer of a DISCONNECT or Close, on another
	// goroutine (guardConn.sendAcks), which takes rmu while holding the
	// connection's lock and nothing else, and waits for no other lock
	// while it holds rmu. rbuf is non-empty only in ackIdle: the read
	// loop empties it whenever it moves state out of ackIdle.
	rmu  sync.Mutex
	rbuf []byte

	// state is who writes the next PUBACKs (ackIdle...). It is changed
	// under mu; the read loop reads it without mu, which is safe because
	// only the read loop moves it out of ackIdle.
	state atomic.Int32

	mu    sync.Mutex
	space sync.Cond // signalled when waiting readings are acknowledged
	items []ackItem // waiting, in arrival order
	// out are PUBACKs encoded and not yet written, which go before any of
	// items: the writer's (ackWriting) current write, what a non-blocking
	// write left for the run goroutine, or what the run goroutine encoded
	// for its next write. The run goroutine keeps nothing of its own: it
	// takes out only under the connection's lock, as it writes it
	// (guardConn.writeAcks), so whoever holds that lock to write a
	// DISCONNECT finds every PUBACK not yet written here or in items
	// (guardConn.sendAcks).
	out []byte
	// writing: the run goroutine has PUBACKs in hand that it is writing,
	// out taken (guardConn.writeAcks) or a cut PUBACK's rest
	// (guardConn.finishTail); set from taking them until the write
	// returns. They are owed (owed) though out and items no longer show
	// them, so the read loop ending the connection waits for that write
	// rather than have the close cut it.
	writing bool
	// n counts the readings pushed and not yet acknowledged. A reading's
	// count ends when its PUBACK is encoded into out, not when it is
	// written, so while the run goroutine's write waits for a client that
	// does not read, push takes up to ackQueueLen more: the bound is about
	// twice ackQueueLen readings (and out at most about ackWriteMax bytes).
	n    int
	done bool
	// exited, if set (tests), is called each time a run goroutine ends.
	exited func()
}

// The states of an ackQueue.
const (
	ackIdle    int32 = iota // no reading waits (PUBACKs may sit in rbuf)
	ackWaiting              // registered with the batch of items[0]
	ackWriting              // a non-blocking write is under way (drive)
	ackRunning              // the run goroutine writes
)

// Small buffers an idle queue keeps, so a paced device allocates nothing
// per reading; larger ones are let go.
const (
	idleItems = 8
	idleBytes = 256
)

// queue returns cl's ack queue, made on its first QoS 1 reading. A
// device's queue hangs off its connection (deviceConn), so the read loop
// finds it without a map lookup per reading; h.acks keeps those of
// connections that did not come through the guard.
func (h *hook) queue(cl *mqtt.Client) *ackQueue {
	if gc := guardOf(cl); gc != nil && gc.dev != nil {
		if q := gc.dev.acks.Load(); q != nil {
			return q
		}
		// Only the connection's read loop makes its queue.
		q := newAckQueue(cl, h, func(p []byte) error { return writeRaw(cl, p) })
		q.direct(gc)
		gc.dev.acks.Store(q)
		return q
	}
	if q, ok := h.acks.Load(cl); ok {
		return q.(*ackQueue)
	}
	q := newAckQueue(cl, h, func(p []byte) error { return writeRaw(cl, p) })
	if actual, loaded := h.acks.LoadOrStore(cl, q); loaded {
		return actual.(*ackQueue)
	}
	return q
}

func newAckQueue(cl *mqtt.Client, h *hook, write func([]byte) error) *ackQueue {
	q := &ackQueue{cl: cl, h: h, write: write}
	q.space.L = &q.mu
	return q
}

// direct lets q write to gc's socket itself if gc is a plain TCP
// connection. A TLS or WebSocket connection's bytes must go through its
// own writer, so those keep the run goroutine.
func (q *ackQueue) direct(gc *guardConn) {
	if gc.sock == nil {
		return
	}
	q.raw, q.gc = gc.sock.raw, gc
	q.wfn = func(fd uintptr) bool {
		q.wn, q.werr = writeFD(fd, q.wp)
		return true // one attempt: never wait for the socket
	}
}

// writeRaw writes already encoded packets to cl's connection under the
// client's lock, the lock mochi's own WritePacket holds while writing, so
// the bytes never interleave with another packet's. Packets mochi has
// buffered for cl may go out after these; MQTT orders PUBACKs only among
// themselves, which the one writer per connection keeps.
func writeRaw(cl *mqtt.Client, p []byte) error {
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	_, err := cl.Net.Conn.Write(p)
	return err
}

// tryWrite writes what of p the socket takes at once, without waiting for
// anything: not for mochi's lock on the client (held while mochi writes a
// packet), not for the guard's (held by a write through its filter), not
// for room in the socket's buffer. It reports how many bytes of p it took
// care of, and whether the connection holds the rest of a packet of p
// (tail), which someone must then send (the run goroutine).
//
// Bypassing the guard's filter is safe for PUBACKs: it only acts on
// CONNACK and DISCONNECT packets, and between writes, every one of whole
// packets under mochi's lock, it is at a packet boundary.
//
// The socket may take part of a PUBACK. Its rest becomes the connection's
// tail (guardConn.tail), counted as taken care of: every later write to
// the connection, this one's or mochi's (a PINGRESP, a DISCONNECT), sends
// it first, so no packet goes into its middle; and what follows it in p
// goes to the run goroutine, whose first act is to send it. Waiting for
// the socket here instead held up the batcher's goroutine (every
// connection's PUBACKs) and the read loop for as long as the client did
// not read (session 7).
func (q *ackQueue) tryWrite(p []byte) (n int, tail bool) {
	if !q.cl.TryLock() {
		return 0, false
	}
	defer q.cl.Unlock()
	gc := q.gc
	if !gc.mu.TryLock() {
		return 0, false
	}
	defer gc.mu.Unlock()
	if q.cl.Closed() || !gc.acked || gc.refused || gc.broken || gc.bye.Load() {
		return 0, len(gc.tail) > 0
	}
	// raw.Write refuses to write at all once the write deadline has
	// passed, and this path bypasses guardConn.Write, which keeps it ahead.
	gc.armWrite()
	if len(gc.tail) > 0 {
		// Left by an earlier write and not sent yet: it goes first, or
		// nothing of p does.
		k := q.writeOnce(gc.tail)
		gc.tail = gc.tail[k:]
		if len(gc.tail) > 0 {
			return 0, true
		}
		gc.tail = nil
	}
	n = q.writeOnce(p)
	if n == 0 {
		return 0, false // EAGAIN and the like: the run goroutine waits instead
	}
	q.h.ackWrites.Add(1)
	if n == len(p) {
		return n, false // the common case: nothing cut
	}
	if end := packetEnd(p, n); end > n {
		gc.tail = append(gc.tail, p[n:end]...)
		q.h.ackTails.Add(1)
		return end, true
	}
	return n, false
}

// writeOnce makes one non-blocking write of p to the socket and reports
// how many bytes it took (0 on EAGAIN or any error).
func (q *ackQueue) writeOnce(p []byte) int {
	q.wp = p
	err := q.raw.Write(q.wfn)
	n, werr := q.wn, q.werr
	q.wp, q.wn, q.werr = nil, 0, nil
	if err != nil || werr != nil || n < 0 {
		return 0
	}
	return n
}

// packetEnd is the end of the MQTT packet of p that holds byte off-1: off
// itself if off ends a packet (or is 0), or where p's encoding cannot be
// followed (never for what the queue encodes).
func packetEnd(p []byte, off int) int {
	i := 0
	for i < off {
		j, rl := i+1, 0
		for shift := 0; ; shift += 7 {
			if j >= len(p) || shift > 21 {
				return off
			}
			b := p[j]
			j++
			rl |= int(b&0x7f) << shift
			if b&0x80 == 0 {
				break
			}
		}
		i = j + rl
	}
	if i > len(p) {
		return off
	}
	return i
}

// push queues a reading's acknowledgement. It blocks while ackQueueLen
// readings of the connection wait for their commit. Only the client's own
// read loop pushes.
func (q *ackQueue) push(it ackItem) {
	if q.raw != nil && q.state.Load() == ackIdle && ready(it) {
		// Nothing waits ahead of it: written when the read loop next
		// blocks, with whatever else it reads until then.
		q.rmu.Lock()
		q.rbuf = appendPuback(q.rbuf, q.cl.Properties.ProtocolVersion, it.id, packets.CodeSuccess.Code)
		if len(q.rbuf) >= ackWriteMax {
			q.flushRead()
		}
		q.rmu.Unlock()
		return
	}
	q.mu.Lock()
	for q.n >= ackQueueLen && !q.done {
		q.space.Wait()
	}
	if q.done {
		q.mu.Unlock()
		return // the client is gone; the reading still commits
	}
	q.items = append(q.items, it)
	q.n++
	if q.state.Load() != ackIdle {
		q.mu.Unlock() // the writer gets to it in turn
		return
	}
	if q.raw == nil {
		q.state.Store(ackRunning)
		q.mu.Unlock()
		q.start()
		return
	}
	// What rbuf holds goes first. (rmu under mu: the only other taker
	// of rmu, sendAcks, holds neither lock while it waits for the other,
	// so the order of the two does not matter.)
	q.rmu.Lock()
	q.out = append(q.out, q.rbuf...)
	q.rbuf = q.rbuf[:0]
	q.rmu.Unlock()
	q.state.Store(ackWriting)
	q.drive()
}

// ready reports whether it is a success PUBACK that may be sent now.
func ready(it ackItem) bool {
	return it.refusal == nil && it.ticket.Ready() && it.ticket.Wait(context.Background()) == nil
}

// flushBeforeRead writes rbuf, if it holds anything, before the read loop
// waits for the socket (guardConn.Read).
func (q *ackQueue) flushBeforeRead() {
	q.rmu.Lock()
	if len(q.rbuf) > 0 {
		q.flushRead()
	}
	q.rmu.Unlock()
}

// flushRead writes rbuf; the read loop calls it, rmu held, before it waits
// for the socket, and from push when rbuf is large. What the socket does
// not take at once goes to the run goroutine.
func (q *ackQueue) flushRead() {
	p := q.rbuf
	n, tail := q.tryWrite(p)
	if n < len(p) || tail {
		// state is ackIdle (rbuf is non-empty), so out is empty and
		// nobody else writes: hand the rest over.
		q.h.ackShort.Add(1)
		q.mu.Lock()
		q.out = append(q.out, p[n:]...)
		q.state.Store(ackRunning)
		q.mu.Unlock()
		q.start()
	}
	if cap(p) > idleBytes {
		q.rbuf = nil
	} else {
		q.rbuf = p[:0]
	}
}

// flushBeforeEnd writes the PUBACKs owed to cl (flushHeld: those the read
// loop holds, rbuf, and those queued that are answered by now), called by
// the read loop when mochi is about to end the connection
// without reading again (a DISCONNECT, a packet it could not process).
// They would otherwise be lost with the connection, though their readings
// are kept: the client sent a DISCONNECT right behind its last reading,
// in the same TCP segment, and was never told the reading arrived. The
// write blocks (bounded by the write timeout): the connection is ending,
// nothing else waits for its read loop. Nothing is written after a failed
// write or a DISCONNECT (flushHeld).
func flushBeforeEnd(cl *mqtt.Client) {
	if gc := guardOf(cl); gc != nil {
		gc.flushHeld(true)
	}
}

// flushHeld writes the PUBACKs the hub owes the client (sendAcks) as the
// connection ends: from the read loop (flushBeforeEnd, tooLarge; wait
// set), and from Close, which covers the ends that no hook sees: mochi
// returns from its read loop on a packet it cannot decode (or a fixed
// header it refuses) straight to closing the connection, on the read
// loop's goroutine. Nothing after a failed write, nor after a DISCONNECT
// (guardConn.bye), which ends what MQTT 5 lets the server send; a
// DISCONNECT's own write sends them first (guardConn.Write).
//
// Close waits for the connection's lock only for PUBACKs the read loop
// holds (rbuf), as the read loop's own write would: those of another
// writer (the run goroutine) are sent only if no write is under way, since
// a write waiting for a client that stopped reading would hold Close for
// up to writeTimeout, where closing ends that write at once. The read loop
// waits only if a PUBACK can be sent (owed): with none, a write of mochi's
// to a client that does not read (holding the connection's lock) would
// hold the end of the connection for up to writeTimeout for nothing.
func (c *guardConn) flushHeld(wait bool) {
	if c.dev == nil {
		return
	}
	q := c.dev.acks.Load()
	if q == nil {
		return
	}
	if wait {
		wait = q.owed()
	} else {
		q.rmu.Lock()
		wait = len(q.rbuf) > 0
		q.rmu.Unlock()
	}
	if wait {
		c.mu.Lock()
	} else if !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	if c.broken || c.bye.Load() || !c.acked || c.refused {
		return
	}
	defer c.boundWrite()()
	_ = c.sendAcks()
}

// owed reports whether q holds an answer that can be sent now: in rbuf, in
// out, in the run goroutine's write under way (writing), or of the
// reading at the head of the queue as encodeReady answers it (refused,
// committed, or an MQTT 5 client's failed commit; a 3.1.1 client's failed
// commit gets none). A reading still committing is not waited for
// (sendAcks does not wait for it either). rmu and mu are taken one after
// the other, as in sendAcks; the caller holds neither.
func (q *ackQueue) owed() bool {
	q.rmu.Lock()
	held := len(q.rbuf) > 0
	q.rmu.Unlock()
	if held {
		return true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.out) > 0 || q.writing || q.state.Load() == ackWriting {
		return true
	}
	if len(q.items) == 0 {
		return false
	}
	head := q.items[0]
	if head.refusal != nil {
		return true
	}
	if !head.ticket.Ready() {
		return false
	}
	return q.cl.Properties.ProtocolVersion == 5 || head.ticket.Wait(context.Background()) == nil
}

// Committed is told by the batch q registered with that it has committed.
func (q *ackQueue) Committed() {
	q.mu.Lock()
	if q.state.Load() != ackWaiting {
		q.mu.Unlock()
		return
	}
	q.state.Store(ackWriting)
	q.drive()
}

// drive writes, without blocking, the PUBACKs of the readings at the head
// of the queue that are committed, then registers with the batch of the
// first still waiting, or gives the queue to the run goroutine for what it
// cannot do. It is called with mu held and state ackWriting, and returns
// with mu released and state changed.
// Every change of state out of ackWriting is broadcast on space: a writer
// of a DISCONNECT waits for it (guardConn.sendAcks), since until drive
// has taken back what its write did not take, out is not what is left to
// write.
func (q *ackQueue) drive() {
	v := q.cl.Properties.ProtocolVersion
	for {
		k := 0
		for k < len(q.items) && len(q.out) < ackWriteMax && ready(q.items[k]) {
			q.out = appendPuback(q.out, v, q.items[k].id, packets.CodeSuccess.Code)
			k++
		}
		if k > 0 {
			q.dropAnswered(k)
		}
		if len(q.out) > 0 {
			out := q.out
			q.mu.Unlock()
			n, tail := q.tryWrite(out)
			q.mu.Lock()
			q.out = out[:copy(out, out[n:])]
			if len(q.out) > 0 || tail {
				q.h.ackShort.Add(1)
				q.leaveWriting(ackRunning)
				q.mu.Unlock()
				q.start()
				return
			}
			continue
		}
		if len(q.items) == 0 {
			if cap(q.items) > idleItems {
				q.items = nil
			}
			if cap(q.out) > idleBytes {
				q.out = nil
			}
			q.leaveWriting(ackIdle)
			q.mu.Unlock()
			return
		}
		head := q.items[0]
		if head.refusal == nil && !head.ticket.Ready() && head.ticket.NotifyCommit(q) {
			q.leaveWriting(ackWaiting)
			q.mu.Unlock()
			return
		}
		if ready(head) {
			continue // committed since it was looked at
		}
		// A refusal, a failed commit, or a ticket with no batch to wait on.
		q.leaveWriting(ackRunning)
		q.mu.Unlock()
		q.start()
		return
	}
}

// leaveWriting moves state from ackWriting to st and wakes whoever waits
// for that (guardConn.sendAcks). Called with mu held.
func (q *ackQueue) leaveWriting(st int32) {
	q.state.Store(st)
	q.space.Broadcast()
}

// start starts the run goroutine; state is already ackRunning.
func (q *ackQueue) start() {
	q.h.ackRuns.Add(1)
	go q.run()
}

// close stops taking readings; those already pushed are still
// acknowledged (or their writes fail) by their writer.
func (q *ackQueue) close() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	q.space.Broadcast()
}

func (q *ackQueue) run() {
	if q.gc != nil {
		// The rest of a PUBACK a non-blocking write left (tryWrite), if
		// any: no other writer of PUBACKs runs now, and it must not wait
		// for a later packet to go out.
		q.gc.finishTail(q)
	}
	for {
		q.mu.Lock()
		q.encodeReady(ackWriteMax)
		if len(q.out) > 0 {
			q.mu.Unlock()
			q.writeOut()
			continue
		}
		if len(q.items) == 0 {
			// Only now may this goroutine end, so a later writer never
			// writes before it.
			q.state.Store(ackIdle)
			q.items, q.out = nil, nil // an idle connection keeps no buffer
			exited := q.exited
			q.mu.Unlock()
			if exited != nil {
				exited()
			}
			return
		}
		head := q.items[0]
		if head.refusal == nil && head.ticket.Ready() {
			// encodeReady left it either as a failed commit of a 3.1.1
			// client or as still committing, and it has committed since.
			// Decided once, from its result: a second look at Ready
			// would race the commit the same way, and a committed
			// reading taken for a failed one cost a healthy connection
			// and a reading stored twice (the client resent it).
			err := head.ticket.Wait(context.Background())
			if err == nil || q.cl.Properties.ProtocolVersion == 5 {
				q.mu.Unlock()
				continue // encodeReady answers it
			}
			// A failed commit: 3.1.1 has no negative acknowledgement, so
			// closing makes the client resend what was not
			// acknowledged. It stays at the head while the connection
			// closes, so that no later reading's PUBACK is written past
			// it (guardConn.Close sends those before it).
			q.mu.Unlock()
			q.h.notStored(deviceOf(q.cl), "", err)
			_ = q.cl.Net.Conn.Close()
			q.mu.Lock()
			q.items = q.items[:copy(q.items, q.items[1:])]
			q.n--
			q.space.Broadcast()
			q.mu.Unlock()
			continue
		}
		q.mu.Unlock()
		// Committed readings' PUBACKs are written by now; this one waits
		// for its commit.
		_ = head.ticket.Wait(context.Background())
	}
}

// encodeReady moves the answers of the readings at the head of the queue
// that have one now into out, in order, while out is under limit: a
// refusal's, a committed reading's, and a failed commit's (MQTT 5; the
// failure is reported). It stops at a reading still committing, and at a
// failed commit of a 3.1.1 client, which has no negative answer (run
// closes the connection). Called with mu held.
func (q *ackQueue) encodeReady(limit int) {
	v := q.cl.Properties.ProtocolVersion
	k := 0
	for ; k < len(q.items) && len(q.out) < limit; k++ {
		it := q.items[k]
		if it.refusal != nil {
			q.out = appendRefusal(q.out, q.cl, it.id, *it.refusal)
			continue
		}
		if !it.ticket.Ready() {
			break
		}
		code := packets.CodeSuccess.Code
		if err := it.ticket.Wait(context.Background()); err != nil {
			if v != 5 {
				break
			}
			q.h.notStored(deviceOf(q.cl), "", err)
			code = packets.ErrImplementationSpecificError.Code
		}
		q.out = appendPuback(q.out, v, it.id, code)
	}
	if k > 0 {
		q.dropAnswered(k)
	}
}

// dropAnswered removes the first k items, whose PUBACKs are encoded in
// out, and wakes whoever waits for room. Called with mu held.
func (q *ackQueue) dropAnswered(k int) {
	rest := copy(q.items, q.items[k:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	q.n -= k
	q.space.Broadcast()
}

// writeOut writes out, the run goroutine's blocking write. On a
// connection through the guard out is taken as it is written, under the
// connection's lock (writeAcks); elsewhere (tests' queues) it is taken
// first.
func (q *ackQueue) writeOut() {
	if gc := guardOf(q.cl); gc != nil {
		if q.cl.Closed() {
			q.mu.Lock()
			q.out = q.out[:0] // the client is gone; it resends
			q.mu.Unlock()
			return
		}
		q.cl.Lock() // as mochi's WritePacket: see writeRaw
		gc.writeAcks(q)
		q.cl.Unlock()
		return
	}
	q.mu.Lock()
	out := q.out
	q.out = nil
	q.mu.Unlock()
	_ = q.write(out) // a failed write ends the connection; the client resends
}

// appendRefusal encodes an MQTT 5 PUBACK with a refusal's reason code and,
// unless the client asked for no problem information or its packet size
// limit leaves no room, its reason string: through mochi's encoder, with
// the settings mochi's own WritePacket applies. It is encoded here and
// written with the other PUBACKs rather than through WritePacket, which
// keeps a packet in the client's outgoing buffer while messages to the
// client are queued: the PUBACKs of later readings, written straight to
// the socket, would overtake it (MQTT §4.6; TestRefusalNotOvertakenWhileSending).
func appendRefusal(buf []byte, cl *mqtt.Client, id uint16, code packets.Code) []byte {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id,
		ReasonCode: code.Code, ProtocolVersion: cl.Properties.ProtocolVersion}
	if code.Code >= packets.ErrUnspecifiedError.Code {
		ack.Properties.ReasonString = code.Reason
	}
	ack.Mods.MaxSize = cl.Properties.Props.MaximumPacketSize
	ack.Mods.DisallowProblemInfo = cl.Properties.Props.RequestProblemInfoFlag && cl.Properties.Props.RequestProblemInfo == 0
	var b bytes.Buffer
	if err := ack.PubackEncode(&b); err != nil || (ack.Mods.MaxSize > 0 && uint32(b.Len()) > ack.Mods.MaxSize) {
		return appendPuback(buf, cl.Properties.ProtocolVersion, id, code.Code)
	}
	return append(buf, b.Bytes()...)
}

// appendPuback encodes a PUBACK without properties (MQTT 3.1.1 §3.4,
// MQTT 5 §3.4): the fixed header, the packet id and, in version 5 and only
// when it is not success, the reason code (§3.4.2.1 lets success be
// implied by a remaining length of 2).
func appendPuback(buf []byte, version byte, id uint16, code byte) []byte {
	if version == 5 && code != packets.CodeSuccess.Code {
		return append(buf, packets.Puback<<4, 3, byte(id>>8), byte(id), code)
	}
	return append(buf, packets.Puback<<4, 2, byte(id>>8), byte(id))
}
