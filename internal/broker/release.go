package broker

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A client's Receive Maximum (MQTT 5 §3.3.4, [MQTT-3.3.4-9]) bounds the
// hub's unacknowledged QoS 1 and 2 messages to it. mochi (v2.7.9) counts
// it in a send quota: publishToClient reads the quota once, then stores
// the message in the session, takes one from the quota, and if the quota
// it read was 0 marks the message held (Expiry -1), to be sent by the
// client's read loop at the end of handling a PUBACK that gave room. A
// PUBACK the read loop handles between that read and the mark (the
// client acknowledged the messages before; the hub published the next
// one before the read loop got to the acknowledgements) breaks this:
//
//   - the read loop looks for a held message before the mark, finds none,
//     and waits for the client's next packet: the message stays held with
//     room to spare until the client sends something (a device waiting
//     for its next control message may send nothing but PINGREQs);
//   - the quota the PUBACK gave back is taken again for the message held,
//     and a second time when it is sent: one fewer place for the
//     connection's life. With a Receive Maximum of 2, two such losses
//     leave the quota at 0 with nothing in flight, and no hub message ever
//     reaches that connection again.
//
// (Found by TestFreshReceiveMaximumOneAtATime: 3 of 160 runs under load
// stalled on the code before this, with or without resume parking.)
//
// The repair does not trust the quota. releaseHeld counts the messages in
// flight (the hub's PUBLISH entries sent, and its PUBRELs; relTrack,
// relqueue.go, checked against the session) and sends held messages, in
// the order sent, while that count is under the client's maximum. It
// runs where the stall begins:
//
//   - after a publish to the client is complete, when the publish found a
//     held mark on one of its messages (OnPublished, from the ids
//     OnQosPublish noted as undecided: stored but not yet sent or held);
//   - after the read loop handled a PUBACK or PUBCOMP (OnPacketProcessed),
//     for the place the quota may have lost.
//
// A held message is never sent while a message of the session the hub
// sent before it, neither held nor written, is still on its way (by
// packet id, sendOrder; mochi's write loop writes what it
// sends at once from a queue; a write of ours would overtake it, and a
// device could get "hold set" after "hold lifted", MQTT-4.6.0-6): the
// undecided ids (pend) stay until their message is written (sentPending,
// OnPacketSent), and a release that finds one waits (relTrack.claim); that
// message's write, drop or hold kicks the release again.
//
// Only one goroutine may send held messages at a time, and mochi's read
// loop sends them with no lock of ours, so the read loop holds relMu
// except while it waits for the client (relIdle, relBusy in
// guardConn.Read). A publisher never writes to the client (it may be
// Broker.Publish, a device's read loop or the ingest batcher, and a write
// waits up to writeTimeout): kick, if relMu is free, decides which held
// messages go (claimHeld: no socket, and their quota taken before the
// publisher's next message reads it) and hands relMu and their writing
// to a new goroutine (relWrite); otherwise it leaves a note (relWant)
// that the holder acts on when it lets go. The connection's goroutine
// holds relMu from the start, so nothing is sent ahead of a resumed
// session's resend and parking (parkBeyondReceiveMaximum, unpark).
//
// A held message over the client's Maximum Packet Size is dropped when
// its release finds it so, as mochi drops one it sends.
//
// Every message is held (pinSendQuota). After each packet it handles,
// mochi's read loop looks for a held message to send when the quota is
// above 0 and the session holds anything: Inflight.NextImmediate takes
// the session's read lock and then, through GetAll, takes it a second
// time. A publish storing a message for the client (Inflight.Set, the
// write lock) between the two waits for the first, and the second waits
// behind it: the read loop and the publisher (Broker.Publish, or the
// ingest batcher handing readings to an app, and with it every device's
// ingest) wait for each other for good. It took an app or device
// acknowledging while the hub published to it: TestAcksWhilePublishing-
// DoNotDeadlock stalled 2 runs in 8 before this. No mochi release fixes
// it (v2.7.9 is the newest). So that mochi never looks, the quota of a
// client with a Receive Maximum is kept at 0 with a maximum of 1: mochi
// then holds every message of the hub's for it (the quota it reads is
// 0), the releases above send them, and what would give the quota back
// does not reach mochi: a PUBACK of a sent message (takeAckForHeld), a
// PUBCOMP (takePubcomp) and a PUBREL of the client's own QoS 2 publish
// (takePubrel) are handled before mochi sees them, and a place given
// back all the same is taken again before mochi looks (keepQuotaPinned).
// The pin is set before mochi makes the client one publishes reach
// (OnSessionEstablish), and again for a session taken over, which mochi
// copies with a fresh quota. A message is released when fewer than the
// maximum are in flight (claimHeld), so the
// client's Receive Maximum holds as before.
//
// A session mochi copies (resumed or taken over) comes with a fresh
// quota; it is pinned again before any publish to the client reads it
// (settleSession, from the ACL check every publish asks first). Re-pinned
// later (at OnSessionEstablished, as before), a publish racing the re-pin
// could leave the quota at -1 (mochi's DecreaseSendQuota is
// check-then-add), where mochi holds nothing and the maximum was no longer
// kept for that connection.

// undecided is the hub's record of connections with messages stored but
// neither sent nor held yet (OnQosPublish), looked at after each publish.
type undecided struct {
	mu sync.Mutex
	m  map[*guardConn]struct{}
	// n is len(m), read without mu: every publish, a device's reading
	// included (mochi calls OnPublished for those it drops too), looks.
	n atomic.Int32
}

// pendingPubs are a connection's undecided message ids, and those queued
// for its write loop and not yet written.
type pendingPubs struct {
	mu  sync.Mutex
	ids []uint16
	cl  *mqtt.Client
	in  bool // in the hub's undecided set
	// blocked: a release found one of ids queued and sent nothing; the
	// one that settles it (sentPending, settlePending) kicks again.
	blocked bool

	rel relTrack // held ids and those in flight (relqueue.go); its own lock

	// settleMu: a session taken over is being settled (settleSession).
	settleMu sync.Mutex

	// gateMu is held, and gated set, while a resumed session is parked
	// and resent (resumeGate, packetid.go): publishes to the client wait.
	gateMu sync.Mutex
	gated  atomic.Bool
	// waited: a publish waited at the gate; drained, set when the gate
	// opened if one did, is closed once the publishes under way then are
	// done (openGate). hand lets go of the client id's handover lock, held
	// while the gate is closed; pubs, the hub's publishes. Set by closeGate.
	waited  atomic.Bool
	drained atomic.Pointer[chan struct{}]
	hand    func()
	pubs    *publishes
}

// pendOf returns gc's pendingPubs, made on first use.
func pendOf(gc *guardConn) *pendingPubs {
	p := gc.pend.Load()
	if p == nil {
		gc.pend.CompareAndSwap(nil, &pendingPubs{})
		p = gc.pend.Load()
	}
	return p
}

// OnQosPublish notes a message of the hub's mochi has just stored in a
// client's session (publishToClient), before it decides whether to send
// or hold it. Resends (Dup) and clients with no Receive Maximum, for
// which mochi holds nothing, are left out.
func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	gc := guardOf(cl)
	if gc == nil {
		return // the inline client, or a connection without the guard
	}
	// While the gate is closed nothing but mochi's resend stores or sends
	// a message of the client's: this is the resend, which has read the
	// session (resumeGate, packetid.go).
	gc.openGate()
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup ||
		cl.Properties.Props.ReceiveMaximum == 0 || gc.closed.Load() {
		return
	}
	p := pendOf(gc)
	p.mu.Lock()
	p.ids = append(p.ids, pk.PacketID)
	p.cl = cl
	if !p.in {
		h.und.mu.Lock()
		if h.und.m == nil {
			h.und.m = map[*guardConn]struct{}{}
		}
		h.und.m[gc] = struct{}{}
		h.und.n.Store(int32(len(h.und.m)))
		h.und.mu.Unlock()
		p.in = true
	}
	p.mu.Unlock()
	// After pend: a release finding the id queued must find it undecided.
	trackOf(gc).stored(cl.State.Inflight, pk.PacketID)
}

// sentPending forgets an undecided id once its message is written (sent
// at once, or released): it was not left held. A release that waited for
// it (blocked) is due once nothing else is queued ahead.
func sentPending(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	gc := guardOf(cl)
	if gc == nil {
		return
	}
	p := gc.pend.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	due := false
	if i := indexID(p.ids, pk.PacketID); i >= 0 {
		p.ids = append(p.ids[:i], p.ids[i+1:]...)
		if p.blocked { // the release looks again: what waited for this may go
			p.blocked = false
			due = true
		}
	}
	p.mu.Unlock()
	if due {
		gc.kick(cl)
	}
}

func indexID(ids []uint16, id uint16) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// OnPublished runs when a publish is complete: every message it stored is
// sent, held or dropped. Each connection with undecided ids is looked at;
// one whose message turned out held gets a release (kick). A connection
// stays in the set until none of its ids is undecided, so a publish still
// under way when another one looks is looked at again after it.
func (h *hook) OnPublished(_ *mqtt.Client, _ packets.Packet) {
	if h.und.n.Load() == 0 {
		return
	}
	h.und.mu.Lock()
	gcs := make([]*guardConn, 0, len(h.und.m))
	for gc := range h.und.m {
		gcs = append(gcs, gc)
	}
	h.und.mu.Unlock()
	for _, gc := range gcs {
		h.settlePending(gc)
	}
}

// settlePending sorts gc's undecided ids (all dropped once the connection
// is closed; OnDisconnect calls it for that): acknowledged or gone, held (a
// release is due), or still undecided (kept).
func (h *hook) settlePending(gc *guardConn) {
	p := gc.pend.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	cl := p.cl
	gone := cl == nil || cl.Closed() || gc.closed.Load()
	held, gave := false, false
	keep := p.ids[:0]
	for _, id := range p.ids {
		if gone {
			break
		}
		e, ok := cl.State.Inflight.Get(id)
		switch {
		case !ok || e.FixedHeader.Type != packets.Publish:
			gave = true // acknowledged, or dropped (mochi's queue was full)
		case e.Expiry < 0:
			held = true
		default:
			keep = append(keep, id) // not yet written, or not yet decided
		}
	}
	p.ids = keep
	if gone {
		p.blocked = false
	}
	if gave && p.blocked {
		held = true // a release may have waited for what is gone
	}
	if held {
		p.blocked = false // the release looks again
	}
	if len(keep) == 0 && p.in {
		h.und.mu.Lock()
		delete(h.und.m, gc)
		h.und.n.Store(int32(len(h.und.m)))
		h.und.mu.Unlock()
		p.in = false
	}
	p.mu.Unlock()
	if held {
		gc.kick(cl)
	}
}

// kick has cl's held messages released, but never written by the
// caller: a publisher (Broker.Publish, a device's read loop, the ingest
// batcher) must not wait for another client's socket (beyond a resuming
// client's CONNACK, at its gate: resumeGate, packetid.go). If relMu is free
// (the read loop waits for the client), kick takes it and decides at
// once which held messages go (claimHeld: no socket), so that the quota
// they take is taken before the next publish reads it, and hands relMu
// and the writing to a new goroutine (relWrite); otherwise whoever holds
// relMu acts on the note (relWant) when it lets go. The note is set
// before the TryLock and looked at after each Unlock, so one is never
// left unacted while the connection lives; a connection that ended keeps
// relMu held by its read loop, and its notes are moot. The goroutine
// never waits for relMu, so none outlives its connection by more than
// one bounded write (writeTimeout); it starts only when a message is to
// go, which takes the loss release.go repairs.
func (c *guardConn) kick(cl *mqtt.Client) {
	c.relCl.Store(cl)
	c.relWant.Store(true)
	c.relDrain(false)
}

// relDrain acts on notes for as long as they come and relMu is free.
// mayWrite: the caller is the connection's own goroutine, or relWrite;
// otherwise messages to go are written by a new goroutine.
func (c *guardConn) relDrain(mayWrite bool) {
	for c.relWant.Load() && c.relMu.TryLock() {
		c.relWant.Store(false)
		cl := c.relCl.Load()
		var pks []packets.Packet
		if cl != nil {
			pks = claimHeld(cl)
		}
		if len(pks) > 0 && !mayWrite {
			go c.relWrite(cl, pks)
			return
		}
		writeHeld(cl, pks)
		c.relMu.Unlock()
	}
}

// relWrite writes the messages kick claimed, with relMu handed to it,
// then lets go of relMu and acts on notes that came meanwhile.
func (c *guardConn) relWrite(cl *mqtt.Client, pks []packets.Packet) {
	writeHeld(cl, pks)
	c.relMu.Unlock()
	c.relDrain(true)
}

// relIdle lets go of relMu before the read loop waits for the client,
// then acts on a kick that came while it held it (on the connection's
// own goroutine, which may write).
func (c *guardConn) relIdle() {
	if !c.relOwned {
		return
	}
	c.relOwned = false
	c.relMu.Unlock()
	c.relDrain(true)
}

// relBusy takes relMu back once the client sent something, before mochi
// handles it (and may send held messages itself).
func (c *guardConn) relBusy() {
	c.relMu.Lock()
	c.relOwned = true
}

// pinSendQuota keeps cl's send quota at 0 with a maximum of 1 (see the
// top of this file): before mochi makes the client one publishes reach
// (OnSessionEstablish; ParseConnect set the quota before this), and for a
// session mochi copied, before a publish reads its quota (settleSession).
// A client with no Receive Maximum has a
// maximum of 0, and mochi neither holds nor looks for held messages.
func pinSendQuota(cl *mqtt.Client, gc *guardConn) {
	if cl.Net.Inline || cl.Properties.Props.ReceiveMaximum == 0 {
		return
	}
	cl.State.Inflight.ResetSendQuota(1)
	cl.State.Inflight.DecreaseSendQuota()
	gc.pinnedOn.Store(cl.State.Inflight)
}

// settleSession readies a session mochi copied into cl (a resumed or
// taken-over one) before the first message of the hub's is stored in it:
// its send quota is pinned, and mochi's numbering of the connection's
// messages is moved past the ids of the hub's messages it holds
// (numberAfter). mochi makes the client one publishes reach (Clients.Add)
// right after copying the session, with a quota of the client's Receive
// Maximum, and before the CONNACK: a reading published then went to the
// write queue at once, ahead of the CONNACK and of the resend; and, as
// mochi numbers a new connection's messages from 1 skipping only the ids
// the session holds, one published while the session is resent or
// unparked took an id below the ids of the parked messages, or one of
// theirs (freed while they are out of the session), and went out ahead
// of them. Every publish to the client calls this first (OnACLCheck), as
// do the parking (at the CONNACK) and OnSessionEstablished, whichever
// comes first; the others wait for it (a look-up of the session and at
// most one NextPacketID per id, no socket). Once settled, a look costs
// two loads.
func settleSession(cl *mqtt.Client, gc *guardConn) {
	if cl.Properties.Props.ReceiveMaximum == 0 || cl.Net.Inline {
		return
	}
	in := cl.State.Inflight
	if gc.pinnedOn.Load() == in {
		return
	}
	p := pendOf(gc)
	p.settleMu.Lock()
	defer p.settleMu.Unlock()
	if gc.pinnedOn.Load() == in {
		return
	}
	numberAfter(cl, hubMessages(cl))
	pinSendQuota(cl, gc) // sets pinnedOn last: the look above then passes
}

// numberAfter moves mochi's numbering of cl's messages past the last of
// pks, the hub's messages in its session, in sending order (sendOrder), so
// that a message published from now on sorts after them, and after the
// parked ones, which keep their ids (unpark). NextPacketID hands out the
// first id after its last that the session does not hold; the ids it
// returns here are used by nothing. Where the walk ends is decided as
// sendOrder decides the order (after the widest gap between ids), not by
// idBefore: with the session's ids just past half the id range, an id
// that idBefore puts after the last one sorted first (found in review).
func numberAfter(cl *mqtt.Client, pks []packets.Packet) {
	if len(pks) == 0 {
		return
	}
	order := sendOrder(pks) // pks is the caller's fresh copy (hubMessages)
	first, last := order[0].PacketID, order[len(order)-1].PacketID
	for range 0xFFFF {
		id, err := cl.NextPacketID()
		if err != nil || sortsLast(order, first, last, uint16(id)) {
			return
		}
	}
}

// sortsLast reports whether a message given id n would be sent after all
// of order (the session's messages in sending order, first and last its
// ends): n lies in the gap after last, nearer to last than to first, and
// sendOrder, asked with n among them, puts it last. The cheap test first:
// the walk in numberAfter asks for every id it is handed.
func sortsLast(order []packets.Packet, first, last, n uint16) bool {
	after, before := n-last, first-n // distances, modulo 65536
	if after == 0 || after >= before {
		return false
	}
	if arc := first - last; arc != 0 && after >= arc {
		return false // inside the session's own span
	}
	with := append(slices.Clone(order), packets.Packet{PacketID: n})
	o := sendOrder(with)
	return o[len(o)-1].PacketID == n
}

// quotaPinned reports whether cl's send quota is pinned at 0.
func quotaPinned(cl *mqtt.Client) bool {
	gc := guardOf(cl)
	return gc != nil && gc.pinnedOn.Load() != nil
}

// takePubcomp handles a PUBCOMP of a pinned client itself (OnPacketRead):
// mochi's processPubcomp gives the quota a place back whatever it finds,
// and a publish reading the quota before keepQuotaPinned takes it again
// would go to mochi's write queue at once, beyond the client's Receive
// Maximum and ahead of held messages. The hub publishes nothing at QoS 2,
// so a PUBCOMP completes no flow of its: it ends a Pubrel entry if one
// has the id, gives the receive quota its place as mochi does, and mochi
// is handed a PUBACK of id 0 instead, which no message has.
func (h *hook) takePubcomp(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Pubcomp || !quotaPinned(cl) {
		return
	}
	if e, ok := cl.State.Inflight.Get(pk.PacketID); ok && e.FixedHeader.Type == packets.Pubrel {
		if forget(cl, pk.PacketID) && h.info != nil {
			atomic.AddInt64(&h.info.Inflight, -1)
		}
	}
	cl.State.Inflight.IncreaseReceiveQuota()
	*pk = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: pk.ProtocolVersion}
}

// takePubrel answers the PUBREL of a pinned client's own QoS 2 publish
// itself (OnPacketRead), as mochi's processPubrel would, but for the send
// quota: processPubrel gives it a place, and a publish to the client
// reading it before keepQuotaPinned took it again went to mochi's write
// queue at once, beyond the client's Receive Maximum and ahead of held
// messages; two such publishes could leave the quota at -1 for good.
// mochi is handed a PUBACK of id 0 instead, which no message has. The
// PUBCOMP goes back under the PUBREL's id (the id mochi's session knows
// the flow by, keepIDsApart; the write gives the client its own), stored
// first as mochi does (a resumed session drops it, dropStaleAnswers: the
// client resends its PUBREL and is answered); mochi's PUBCOMP also
// repeated the PUBREL's properties, this one
// carries none. mochi's OnQosComplete and OnQosDropped hooks do not run
// for it (the hub's OnQosDropped looks only at its own flows). A failed
// write of the PUBCOMP ends the read loop (the error returned), as it
// does in processPubrel.
func (h *hook) takePubrel(cl *mqtt.Client, pk *packets.Packet) error {
	if pk.FixedHeader.Type != packets.Pubrel || !quotaPinned(cl) {
		return nil
	}
	id, v := pk.PacketID, pk.ProtocolVersion
	forget := func() {
		if cl.State.Inflight.Delete(id) && h.info != nil {
			atomic.AddInt64(&h.info.Inflight, -1)
		}
	}
	comp := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: id, Created: time.Now().Unix()}
	var err error
	switch _, ok := cl.State.Inflight.Get(id); {
	case !ok: // [MQTT-4.3.3-7]
		comp.ReasonCode = packets.ErrPacketIdentifierNotFound.Code
		comp.Properties.ReasonString = packets.ErrPacketIdentifierNotFound.Reason
		err = cl.WritePacket(comp)
	case pk.ReasonCode >= packets.ErrUnspecifiedError.Code || !pk.ReasonCodeValid(): // [MQTT-4.3.3-9]
		forget()
	default:
		cl.State.Inflight.Set(comp)
		if err = cl.WritePacket(comp); err == nil { // [MQTT-4.3.3-11]
			cl.State.Inflight.IncreaseReceiveQuota()
			forget() // [MQTT-4.3.3-12]
		}
	}
	*pk = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: v}
	return err
}

// keepQuotaPinned takes back a place mochi gave the quota while it
// handled a packet, on the read loop, just before mochi looks for a held
// message. mochi's PUBACK, PUBCOMP and PUBREL handling, which gives
// places, finds nothing of a pinned client's to act on (takeAckForHeld,
// takePubcomp, takePubrel hand it a PUBACK of id 0); this keeps whatever
// else might from opening mochi's look. The maximum is 1, so one step
// brings it back to 0.
func keepQuotaPinned(cl *mqtt.Client) {
	if quotaPinned(cl) {
		cl.State.Inflight.DecreaseSendQuota()
	}
}

// takeAckForHeld handles a PUBACK of the hub's message itself, before
// mochi does (OnPacketRead, on the read loop, relMu held), when messages
// of the session are held: it removes the acknowledged message, so that
// mochi's processPuback finds nothing and leaves its send quota as it is
// (0, as messages are held), and the place goes to the first held
// message (releaseAfterAck, OnPacketProcessed). Left to mochi, the quota
// went up by one before that release: a publish read the place meanwhile
// and went to the write queue at once, and the release then found no room
// for the held message, which reached the client after the newer one
// (MQTT-4.6.0-6; TestPahoReceiveMaximumGetsEveryControl, 1 run in a few
// hundred). With the quota left at 0, every message published meanwhile
// is held behind those held already, and released in order.
//
// Not covered: a publish whose message was not yet held when this looked
// and whose quota step (DecreaseSendQuota, nothing at 0) came before
// processPuback gave the place back: its message is held with the quota
// at 1. mochi's publishToClient has no hook between that step and the
// held mark. (For a client whose quota is pinned, every PUBACK of a
// sent message is taken, and a PUBCOMP is too: takePubcomp.) mochi's
// OnQosComplete does not run for a PUBACK taken over; no hook of ours
// uses it.
func (h *hook) takeAckForHeld(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Puback || cl.Net.Inline ||
		cl.Properties.Props.ReceiveMaximum == 0 {
		return
	}
	pinned := quotaPinned(cl) // every PUBACK: the quota stays 0
	if !pinned && cl.State.Inflight.Len() < 2 {
		return
	}
	e, ok := cl.State.Inflight.Get(pk.PacketID)
	if pinned && ok && e.FixedHeader.Type == packets.Publish && e.Expiry < 0 {
		// A PUBACK of a message held, never sent: mochi would delete
		// it (the client never gets it) and give the quota a place. It
		// is handed a PUBACK of id 0 instead, which no message has.
		pk.PacketID = 0
		return
	}
	if !ok || e.FixedHeader.Type != packets.Publish || e.Expiry < 0 {
		return // not a message sent to the client: mochi's to answer
	}
	if !pinned && len(cl.State.Inflight.GetAll(true)) == 0 {
		return // nothing held: mochi gives the place back to its quota
	}
	if forget(cl, pk.PacketID) && h.info != nil {
		atomic.AddInt64(&h.info.Inflight, -1) // as processPuback does
	}
}

// releaseAfterAck runs releaseHeld on the read loop after a PUBACK or
// PUBCOMP gave a place back, in case mochi's quota lost it (see above).
func releaseAfterAck(cl *mqtt.Client, t byte) {
	// A SUBSCRIBE: a retained message sent for it is held like any
	// other, and no OnPublished follows to release it.
	if (t != packets.Puback && t != packets.Pubcomp && t != packets.Subscribe) || cl.Net.Inline ||
		cl.Properties.Props.ReceiveMaximum == 0 || cl.State.Inflight.Len() == 0 {
		return
	}
	releaseHeld(cl)
}

// releaseHeld sends cl's held messages, in the order sent, while fewer
// than the client's Receive Maximum are in flight. Called with relMu held
// (the read loop, or relDrain).
func releaseHeld(cl *mqtt.Client) {
	writeHeld(cl, claimHeld(cl))
}

// claimHeld marks as sent the held messages that go now, in the order
// the hub sent them, while fewer than the client's Receive Maximum are in
// flight, and returns them for writeHeld. Called with relMu held. A
// message marked stays in the session as sent (Expiry 0, as
// restoreReleased leaves those mochi sent), and takes its place from
// mochi's quota as mochi's own sending does. None goes ahead of an
// earlier message still queued or undecided (pend). The order and the
// count come from the connection's relTrack (relqueue.go), not from a
// copy of the session: the order is the packet ids' (sendOrder), as
// mochi's GetAll sorts by Created, in whole seconds, and an app's
// readings of one second would go out shuffled.
func claimHeld(cl *mqtt.Client) []packets.Packet {
	rm := int(cl.Properties.Props.ReceiveMaximum)
	if rm == 0 || cl.Closed() {
		return nil
	}
	gc := guardOf(cl)
	if gc == nil {
		return nil // no connection of the hub's: no relMu, nothing to release
	}
	orderHeld(cl)
	t := trackOf(gc)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.claim(cl, gc, rm)
}

// writeHeld writes the messages claimHeld marked, in order, with relMu
// held. One over the client's Maximum Packet Size can never be sent: it
// is dropped, as mochi drops a held message it sends, so that it does not
// count as in flight for good, and the place it took goes to the next.
func writeHeld(cl *mqtt.Client, pks []packets.Packet) {
	for len(pks) > 0 {
		dropped := false
		for _, pk := range pks {
			if err := cl.WritePacket(pk); err != nil {
				if !errors.Is(err, packets.ErrPacketTooLarge) {
					return // the connection is ending; the messages stay in the session
				}
				forget(cl, pk.PacketID)
				if !quotaPinned(cl) {
					cl.State.Inflight.IncreaseSendQuota()
				}
				dropped = true
			}
		}
		if !dropped {
			return
		}
		pks = claimHeld(cl)
	}
}
