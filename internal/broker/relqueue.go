package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A release (claimHeld) needs two things of a client's session: its held
// messages in the order the hub sent them, and how many of the hub's
// messages are in flight. Read from the session each time (mochi's
// GetAll: a copy of every entry, a packets.Packet of some 700 bytes,
// sorted), they cost a release in proportion to the session: an app that
// fell behind holds up to maxAppInflight readings, and paid a copy and
// two sorts of them for every reading released (1.7 ms a reading with
// 256 held, 4.3 ms with 900: BenchmarkAppBacklog), so it never caught up.
//
// relTrack keeps both per connection, checked against the session as they
// are used rather than kept exactly in step with it: mochi stores, sends,
// acknowledges and drops entries on paths with no hook of ours.
//
//   - q: the ids of the hub's messages stored in the session, in sending
//     order, appended as mochi stores each (OnQosPublish). A release takes
//     from the front, looking each id up in the session (one Get): gone or
//     no longer a PUBLISH (acknowledged, pruned, dropped, reused by the
//     client's own flow) is skipped; held (Expiry < 0) is sent; written
//     (not among the undecided ids, pend) is in flight and skipped; not
//     yet written or decided stops the release (a write
//     of ours would overtake mochi's queue). An id is never skipped while
//     it may still become held: until mochi decides, it is among pend.
//   - fly: the ids of the hub's entries in flight (a PUBLISH sent, or its
//     PUBREL), added when a release sends one or mochi writes one
//     (OnPacketSent), removed where the hub takes an acknowledgement
//     (takeAckForHeld, takePubcomp), drops a message (writeHeld), and
//     looked up again where mochi may have ended one (OnPacketProcessed
//     for a PUBACK, PUBREC or PUBCOMP, OnQosDropped). The count is
//     len(fly) plus the undecided messages not in it, as before (a message
//     stored and not yet held counts until it is).
//
// Both are read from the session (rebuild, the old way: one GetAll and
// sendOrder) at the first release of a connection and whenever the
// session is another (a takeover copies it); a resumed session is parked,
// resent and unparked before the connection's first release (relMu is its
// goroutine's until the read loop waits). A message stored in the instant
// between mochi's Set and OnQosPublish may be counted in flight by a
// rebuild and then held: a release that finds no room looks the whole of
// fly up once after a rebuild (suspect), and otherwise two of its ids
// each time (map order: any of them), so an id whose entry ended on a
// path none of the above sees is let go of within a few releases instead
// of taking a place for good. Stale ids in q cost one look-up each, once.
//
// A release thus costs a few look-ups and the messages it sends, whatever
// the session holds.
type relTrack struct {
	mu sync.Mutex
	// on is the session q and fly are of; nil until the first release.
	on   *mqtt.Inflight
	q    []uint16 // q[head:]: ids in sending order, some stale
	head int
	fly  map[uint16]struct{}
	// suspect: fly was read from the session (rebuild) and not yet
	// looked up again.
	suspect bool
}

// trackOf returns gc's relTrack, made on first use (it lives in the
// connection's pendingPubs, made for the same clients, so that guardConn,
// held for every connection, stays in its size class: TestGuardConnSize).
func trackOf(gc *guardConn) *relTrack {
	return &pendOf(gc).rel
}

// trackIf returns the relTrack of cl's connection if one was made, else
// nil.
func trackIf(cl *mqtt.Client) *relTrack {
	gc := guardOf(cl)
	if gc == nil {
		return nil
	}
	if p := gc.pend.Load(); p != nil {
		return &p.rel
	}
	return nil
}

// idBefore reports whether packet id a was handed out before b: ids count
// up and wrap after 65535, and two messages of one session in the queue
// are never 32768 ids apart (mochi's default maximum is 8192 entries).
func idBefore(a, b uint16) bool { return int16(a-b) < 0 }

// stored notes id, a message of the hub's mochi has just stored in the
// session in (OnQosPublish, after the id joined pend). Ids are handed out
// in sending order, but two publishers may reach here in the other order:
// the id goes after the last one handed out before it.
func (t *relTrack) stored(in *mqtt.Inflight, id uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.on != in {
		return // the next release reads the session (rebuild)
	}
	// A message just stored is not in flight: mochi hands out only ids
	// the session does not hold. A rebuild in the instant between mochi's
	// Set and this call counted it so; left in fly, it would take a place
	// until a recheck happened to look it up, and a client waiting for one
	// more message before it acknowledges would wait for good.
	delete(t.fly, id)
	i := len(t.q)
	for i > t.head && idBefore(id, t.q[i-1]) {
		i--
	}
	t.q = append(t.q, 0)
	copy(t.q[i+1:], t.q[i:])
	t.q[i] = id
}

// pop drops the front of q, and the space before it when that is most.
func (t *relTrack) pop() {
	t.head++
	if t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	} else if t.head >= 64 && 2*t.head >= len(t.q) {
		n := copy(t.q, t.q[t.head:])
		t.q, t.head = t.q[:n], 0
	}
}

// rebuild reads q and fly from cl's session. unsent are the undecided
// ids (pend), counted apart. Called with mu held.
func (t *relTrack) rebuild(cl *mqtt.Client, unsent map[uint16]bool) {
	in := cl.State.Inflight
	var pubs []packets.Packet
	t.fly = map[uint16]struct{}{}
	for _, p := range in.GetAll(false) {
		switch p.FixedHeader.Type {
		case packets.Pubrel:
			t.fly[p.PacketID] = struct{}{}
		case packets.Publish:
			pubs = append(pubs, p)
			if p.Expiry >= 0 && !unsent[p.PacketID] {
				t.fly[p.PacketID] = struct{}{}
			}
		}
	}
	t.q, t.head = t.q[:0], 0
	for _, p := range sendOrder(pubs) {
		t.q = append(t.q, p.PacketID)
	}
	t.on = in
	t.suspect = true
}

// flying reports whether in holds a flow of the hub's in flight under id.
func flying(in *mqtt.Inflight, id uint16) bool {
	e, ok := in.Get(id)
	return ok && (e.FixedHeader.Type == packets.Pubrel ||
		(e.FixedHeader.Type == packets.Publish && e.Expiry >= 0))
}

// recheck looks up again the ids of fly: all of them if suspect, else
// two. Called with mu held, when a release found no room.
func (t *relTrack) recheck(in *mqtt.Inflight) {
	n := 2
	if t.suspect {
		n = len(t.fly)
		t.suspect = false
	}
	for id := range t.fly {
		if n == 0 {
			break
		}
		n--
		if !flying(in, id) {
			delete(t.fly, id)
		}
	}
}

// claim is claimHeld's work (see there) with mu held.
func (t *relTrack) claim(cl *mqtt.Client, gc *guardConn, rm int) []packets.Packet {
	in := cl.State.Inflight
	unsent := unsentIDs(gc, cl)
	if t.on != in {
		t.rebuild(cl, unsent)
	}
	count := func() int {
		out := len(t.fly)
		for id := range unsent {
			if _, ok := t.fly[id]; !ok {
				out++
			}
		}
		return out
	}
	out := count()
	if out >= rm {
		t.recheck(in)
		out = count()
	}
	var pks []packets.Packet
	for out < rm && t.head < len(t.q) {
		id := t.q[t.head]
		e, ok := in.Get(id)
		if !ok || e.FixedHeader.Type != packets.Publish {
			t.pop() // acknowledged, pruned, dropped, or not the hub's
			continue
		}
		if e.Expiry >= 0 {
			if unsent[id] {
				break // not yet written or decided: nothing overtakes it
			}
			// Written: in flight (a release's, or mochi's own).
			if _, ok := t.fly[id]; !ok {
				t.fly[id] = struct{}{}
				out++
			}
			t.pop()
			continue
		}
		e.Expiry = 0
		in.Set(e)
		in.DecreaseSendQuota()
		t.fly[id] = struct{}{}
		out++
		t.pop()
		pks = append(pks, e)
	}
	return pks
}

// unsentIDs returns the ids of gc's pend whose messages are neither held
// nor written yet (nil if none), and notes that a release looked
// (blocked): the write (sentPending), hold or drop (settlePending) of one
// kicks the release again.
func unsentIDs(gc *guardConn, cl *mqtt.Client) map[uint16]bool {
	p := gc.pend.Load()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var m map[uint16]bool
	for _, id := range p.ids {
		if e, ok := cl.State.Inflight.Get(id); ok && e.FixedHeader.Type == packets.Publish && e.Expiry >= 0 {
			if m == nil {
				m = map[uint16]bool{}
			}
			m[id] = true
		}
	}
	if m != nil {
		p.blocked = true
	}
	return m
}

// landed notes a hub's message or PUBREL that cl's connection wrote
// (OnPacketSent) as in flight, if the session still holds it so: mochi
// writes some itself (a resumed session's resend; a message it sent at
// once, should its quota ever not be pinned). Before the id leaves pend.
func landed(cl *mqtt.Client, pk *packets.Packet) {
	if (pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0) && pk.FixedHeader.Type != packets.Pubrel {
		return
	}
	t := trackIf(cl)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.on != cl.State.Inflight {
		return
	}
	if _, ok := t.fly[pk.PacketID]; !ok && flying(t.on, pk.PacketID) {
		t.fly[pk.PacketID] = struct{}{}
	}
}

// ended looks id up again after mochi may have ended its flow (a PUBACK,
// PUBREC or PUBCOMP it handled, OnQosDropped), and forgets it if so; a
// flow a PUBREC turned into a PUBREL is in flight.
func ended(cl *mqtt.Client, id uint16) {
	t := trackIf(cl)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.on != cl.State.Inflight {
		delete(t.fly, id)
		return
	}
	if e, ok := t.on.Get(id); ok && e.FixedHeader.Type == packets.Pubrel {
		// A PUBREC made the flow a PUBREL: in flight until its PUBCOMP,
		// even when the client answered a message it was never sent
		// (mochi's processPubrec turns a held one into a PUBREL too).
		t.fly[id] = struct{}{}
		return
	}
	if !flying(t.on, id) {
		delete(t.fly, id)
	}
}

// forget deletes the hub's entry id from cl's session and from fly
// together (so that landed never sees the one without the other), and
// reports whether the session held it.
func forget(cl *mqtt.Client, id uint16) bool {
	t := trackIf(cl)
	if t == nil {
		return cl.State.Inflight.Delete(id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fly, id)
	return cl.State.Inflight.Delete(id)
}
