package broker

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet ids are unique per direction (MQTT 5 §2.2.1, 3.1.1 §2.3.1): the
// id a client gives its PUBLISH, SUBSCRIBE or UNSUBSCRIBE says nothing
// about the ids the server gave the messages it is sending the client.
// mochi (v2.7.9) keeps both directions in one map per session
// (Client.State.Inflight), keyed by id alone, so a client packet whose id
// equals that of one of the hub's messages still in flight did damage:
//
//   - a QoS 1 or 2 PUBLISH deleted the hub's message from the session
//     (processPublish's "[MQTT-4.3.2-5]" delete): never resent after a
//     reconnect, and its place in the client's Receive Maximum never
//     given back, so a client with a small one stopped receiving;
//   - a QoS 2 PUBLISH then put its own PUBREC state under the id, which
//     the client's PUBACK of the hub's message deleted (the client's
//     PUBREL then got PUBCOMP "packet identifier not found");
//   - a SUBSCRIBE or UNSUBSCRIBE was refused "packet identifier in use";
//   - a PUBREL for a flow the hub did not know took the hub's message's
//     place and was answered "success" instead of "not found".
//
// Devices commonly number their packets from 1, as mochi numbers each
// connection's, so the ids meet on the first control message a device is
// sent while it publishes.
//
// keepIDsApart (from the policy hook's OnPacketRead, before anything else
// looks at the packet) keeps the directions apart without touching mochi:
// a client packet whose id would meet one of the hub's entries is handed
// to mochi under another id, free in the session, and every answer mochi
// or the hook writes under that id goes out under the client's again
// (answerID, from OnPacketEncode; wireID, for the ack queue). The
// same goes the other way for an acknowledgement (PUBACK, PUBREC, PUBCOMP)
// of an id under which the session holds only the client's own state.
// Nothing else changes: a packet that meets nothing, nearly every packet,
// keeps its id and costs one look-up in the session. This is not a hook
// of its own: mochi passes each hook every packet by value (800 bytes in
// and out), and the hooks that already see these packets can do it. The
// same code makes mochi's answer to a QoS 2 PUBLISH resent before its
// PUBREL a plain PUBREC (noteResent), and repairs mochi's handling of the
// client's Receive Maximum: a held message stays in the session once sent
// (restoreReleased), a device's held messages go in the order published
// (orderHeld), and a resumed session is resent within the maximum
// (parkBeyondReceiveMaximum).
//
// What is not covered: a session resumed on a new connection while one of
// the client's QoS 2 flows held another id (mochi resends its PUBREC under
// that id, which the client does not know, and answers the client's
// PUBREL "not found"); and an id the hub hands a message of its own in the
// instant between this look-up and mochi's (both run per packet, this
// one just before).

// packetIDs is one connection's ids handed to mochi in place of the
// client's. Only the connection's read loop adds and removes entries;
// answers written from other goroutines read them under mu.
type packetIDs struct {
	// n counts sub and a resend noted, read without mu so that a
	// connection with nothing moved (nearly all) takes no lock. Only the
	// read loop raises it.
	n   atomic.Int32
	mu  sync.Mutex
	sub map[uint16]uint16 // the id mochi sees → the one on the wire
	// own maps a client id to the one mochi sees, for the client's packets
	// that use the id again (its PUBREL, a resent PUBLISH).
	own map[uint16]uint16
	// next is where the search for a free id starts: from the top down,
	// away from mochi's own numbering, which counts up from 1.
	next uint16
	// resent is the id of the QoS 2 PUBLISH being handled if it is a
	// resend mochi holds the PUBREC state of (isResent; noteResent).
	resent   uint16
	isResent bool
	// released are messages of the hub's mochi held for the client's
	// Receive Maximum and has just sent, to be put back in the session
	// (restoreReleased); held says there are some, read without mu.
	released []packets.Packet
	held     atomic.Bool
	inflight *mqtt.Inflight // the session released and parked go back in
	// parked are messages of a resumed session beyond the client's
	// Receive Maximum, kept out of mochi's resend (parkBeyondReceiveMaximum).
	// isParked says there are some.
	parked   []packets.Packet
	client   *mqtt.Client // the client parked for (its NextPacketID)
	isParked atomic.Bool
}

func newPacketIDs() *packetIDs {
	return &packetIDs{sub: map[uint16]uint16{}, own: map[uint16]uint16{}, next: 0xFFFF}
}

// idsOf returns gc's packetIDs, made on first use (by the read loop only).
func idsOf(gc *guardConn) *packetIDs {
	ids := gc.ids.Load()
	if ids == nil {
		ids = newPacketIDs()
		gc.ids.Store(ids)
	}
	return ids
}

// hubsEntry reports whether a session entry is the hub's own flow: a
// message it sent (awaiting PUBACK or PUBREC) or its PUBREL.
func hubsEntry(t byte) bool { return t == packets.Publish || t == packets.Pubrel }

// entryType is the type of the session's entry under id, if any. Most
// sessions hold nothing, which Len tells without copying a packet.
func entryType(cl *mqtt.Client, id uint16) (byte, bool) {
	if cl.State.Inflight.Len() == 0 {
		return 0, false
	}
	e, ok := cl.State.Inflight.Get(id)
	return e.FixedHeader.Type, ok
}

// keepIDsApart hands mochi a packet whose id would meet an entry of the
// other direction under a free id instead. It runs first for every packet
// read (the policy hook's OnPacketRead), when mochi is done with the one
// before.
func keepIDsApart(cl *mqtt.Client, pk *packets.Packet) {
	gc := guardOf(cl)
	if gc == nil {
		return
	}
	gc.restoreReleased()
	if ids := gc.ids.Load(); ids != nil && ids.n.Load() != 0 {
		ids.settle(cl)
	}
	orderHeld(cl)
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 {
			return
		}
		pk.PacketID = clientsID(gc, cl, pk.PacketID)
		if pk.FixedHeader.Qos == 2 && pk.FixedHeader.Dup {
			noteResent(gc, cl, pk.PacketID)
		}
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		pk.PacketID = clientsID(gc, cl, pk.PacketID)
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		// The hub's numbering: only the hub's own entry may be touched.
		// mochi finds nothing under a free id, as for any id it never
		// sent (a PUBREC is answered PUBREL "not found").
		if t, ok := entryType(cl, pk.PacketID); ok && !hubsEntry(t) {
			pk.PacketID = movedID(gc, cl, pk.PacketID, false)
		}
	}
}

// settle forgets the moved ids whose flows are over: all but the client's
// QoS 2 flows that mochi holds (a PUBREC entry), whose PUBREL follows
// under the same id. Called by the read loop between packets, every
// answer to the packet before having been written or, for the ack
// queue's, translated (wireID) while mochi handled it.
func (p *packetIDs) settle(cl *mqtt.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isResent = false
	for y, x := range p.sub {
		if t, ok := entryType(cl, y); ok && t == packets.Pubrec {
			continue
		}
		delete(p.sub, y)
		if p.own[x] == y {
			delete(p.own, x)
		}
	}
	p.recount()
}

// recount sets n; called with mu held.
func (p *packetIDs) recount() {
	n := len(p.sub)
	if p.isResent {
		n++
	}
	p.n.Store(int32(n))
}

// clientsID is the id mochi is to handle a packet in the client's
// numbering by: the one its flow was moved to, a new one if the hub's
// entries (or another moved flow) hold x, else x.
func clientsID(gc *guardConn, cl *mqtt.Client, x uint16) uint16 {
	if ids := gc.ids.Load(); ids != nil && ids.n.Load() != 0 {
		ids.mu.Lock()
		y, moved := ids.own[x]
		_, taken := ids.sub[x]
		if !moved && taken {
			y, moved = ids.move(cl, x, true), true
		}
		ids.mu.Unlock()
		if moved {
			return y
		}
	}
	if t, ok := entryType(cl, x); ok && hubsEntry(t) {
		return movedID(gc, cl, x, true)
	}
	return x
}

// movedID moves id x of a packet gc's read loop just read (packetIDs.move).
func movedID(gc *guardConn, cl *mqtt.Client, x uint16, own bool) uint16 {
	ids := idsOf(gc)
	ids.mu.Lock()
	defer ids.mu.Unlock()
	return ids.move(cl, x, own)
}

// move picks a free id for a packet that came with id x, notes it, and
// returns it; own says x is in the client's numbering (its later packets
// with x follow). With every id taken it returns x: mochi then does what
// it would have. Called with mu held, from the read loop.
func (p *packetIDs) move(cl *mqtt.Client, x uint16, own bool) uint16 {
	y := p.next
	for range 0xFFFF {
		if y == 0 {
			y = 0xFFFF
		}
		if _, taken := p.sub[y]; !taken {
			if _, taken = entryType(cl, y); !taken {
				p.next = y - 1
				p.sub[y] = x
				if own {
					p.own[x] = y
				}
				p.recount()
				return y
			}
		}
		y--
	}
	return x
}

// noteResent notes a QoS 2 PUBLISH sent again (DUP) under id while mochi
// still holds its PUBREC state: mochi answers it "packet identifier in
// use" (0x91) without delivering it again, and answerID makes that the
// plain PUBREC MQTT requires [MQTT-4.3.3-10]. A resend tells the device
// its reading was taken; 0x91 told it the reading was not, ended the flow
// without a PUBREL (so mochi's state, and its place in the receive quota,
// stayed for the session's life), and invited the reading again as a new
// message.
func noteResent(gc *guardConn, cl *mqtt.Client, id uint16) {
	if t, ok := entryType(cl, id); !ok || t != packets.Pubrec {
		return
	}
	ids := idsOf(gc)
	ids.mu.Lock()
	ids.resent, ids.isResent = id, true
	ids.recount() // answers are looked at until the next packet
	ids.mu.Unlock()
}

// answerID writes an answer to a moved packet under the id the client gave
// it (the policy of OnPacketEncode). Only answers carry the other
// direction's ids: a PUBLISH the hub sends has an id of the hub's.
func answerID(cl *mqtt.Client, pk *packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp, packets.Suback, packets.Unsuback:
	default:
		return
	}
	gc := guardOf(cl)
	if gc == nil {
		return
	}
	ids := gc.ids.Load()
	if ids == nil || ids.n.Load() == 0 {
		return
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.isResent && pk.FixedHeader.Type == packets.Pubrec && pk.PacketID == ids.resent &&
		pk.ReasonCode == packets.ErrPacketIdentifierInUse.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
		pk.Properties.ReasonString = ""
	}
	if x, ok := ids.sub[pk.PacketID]; ok {
		pk.PacketID = x
	}
}

// wireID is the id on the wire of the client packet mochi knows as id.
func wireID(cl *mqtt.Client, id uint16) uint16 {
	gc := guardOf(cl)
	if gc == nil {
		return id
	}
	ids := gc.ids.Load()
	if ids == nil || ids.n.Load() == 0 {
		return id
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if x, ok := ids.sub[id]; ok {
		return x
	}
	return id
}

// A client's Receive Maximum bounds the hub's QoS 1 and 2 messages it
// has not acknowledged. mochi holds a message beyond it in the session
// (Expiry -1) and sends it once a PUBACK gives back room, at the end of
// handling that packet; but it then deletes the message from the session
// while it is still unacknowledged. Its PUBACK found nothing, so gave
// back no room: a device with a small Receive Maximum sent two control
// messages in quick succession never received another on that connection
// (and the message was not resent on resuming the session).
//
// noteReleased (OnPacketSent) notes such a message as mochi writes it,
// just before the delete; restoreReleased puts it back once mochi is done
// with the packet: before the connection's read loop handles its next
// packet (the PUBACK cannot come sooner) or waits for one, and when the
// connection ends.

// noteReleased notes a held message of the hub's that mochi has just sent.
func noteReleased(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || pk.Expiry >= 0 {
		return
	}
	gc := guardOf(cl)
	if gc == nil {
		return
	}
	ids := idsOf(gc) // mochi sends these from the read loop
	ids.mu.Lock()
	ids.released = append(ids.released, *pk)
	ids.inflight = cl.State.Inflight
	ids.held.Store(true)
	ids.mu.Unlock()
}

// restoreReleased puts the held messages mochi sent back in the session,
// as sent (no longer held), unless their id was given to another message
// meanwhile. A session taken over by a new connection before this runs
// would be copied without them, so the read loop runs it as soon as it is
// between packets (keepIDsApart, guardConn.Read), and OnDisconnect.
func (c *guardConn) restoreReleased() {
	ids := c.ids.Load()
	if ids == nil || !ids.held.Load() {
		return
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	for _, pk := range ids.released {
		if _, taken := ids.inflight.Get(pk.PacketID); !taken {
			pk.Expiry = 0 // -1 would have mochi send it again as held
			ids.inflight.Set(pk)
		}
	}
	clear(ids.released)
	ids.released = ids.released[:0]
	ids.held.Store(false)
}

// When a client resumes its session, mochi resends every message of the
// hub's it holds at once, whatever the client's Receive Maximum
// [MQTT-3.3.4-9], and then sends those it had held for that maximum a
// second time. parkBeyondReceiveMaximum (when the CONNACK is sent, just
// before the resend) takes the messages beyond the maximum out of the
// session, in sending order; unpark (just after) puts them back as held,
// so mochi (or releaseHeld, release.go) sends the rest one by one as
// PUBACKs come, as on a live connection.
//
// The connection is live from just before the CONNACK on, so the hub may
// publish to it while its session is parked, resent and unparked. Until
// mochi's resend has read the session such a publish waits at the
// connection's gate (resumeGate, below); after, its message goes after
// the parked ones: settleSession (release.go) has pinned the quota and
// moved mochi's numbering past the session's ids before it is numbered,
// so it is held, under an id that sorts after every parked one
// (sendOrder), and the parked messages keep their ids. A parked message
// that may have been sent is marked (Dup), as MQTT requires of a resend
// [MQTT-3.3.1-1], and keeps its id, as it must [MQTT-4.4.0-1]; one held
// and never sent is not marked.
//
// Where no gate was closed (resumeGate's residual), a message stored
// while the session is parked, before mochi's resend reads it, is parked
// too (after the others), as the resend would send it ahead of them; one
// stored in the instant between the parking's last look at the session
// and the resend reading it is resent with the first ones, ahead of the
// parked ones, and stays in the session as sent (noteReleased, unpark);
// if its publisher marks it held only after the resend wrote it, it is
// not recorded as sent: a release sends it again under the same id, and
// the resend exceeded the Receive Maximum by one (found in review).

// parkBeyondReceiveMaximum parks the messages of a resumed session beyond
// the client's Receive Maximum. pks are the hub's messages in the session,
// in sending order (keepOrder).
func parkBeyondReceiveMaximum(cl *mqtt.Client, pks []packets.Packet) {
	rm := int(cl.Properties.Props.ReceiveMaximum)
	gc := guardOf(cl)
	if rm == 0 || gc == nil || len(pks) == 0 {
		return // 0: no maximum given (mochi holds nothing back either)
	}
	ids := idsOf(gc) // the connection's goroutine, before its read loop
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if gc.closed.Load() {
		// Closed (a takeover) before parking: Close's unpark may be done,
		// and a new connection copying the session now must find it whole.
		return
	}
	ids.client = cl
	ids.inflight = cl.State.Inflight
	// Set before the first message leaves the session, not after the
	// last: unpark (also from a takeover's Close) puts back whatever this
	// parked.
	ids.isParked.Store(true)
	seen := make(map[uint16]struct{}, len(pks))
	for i, pk := range pks {
		seen[pk.PacketID] = struct{}{}
		if i < rm {
			if pk.Expiry < 0 {
				pk.Expiry = 0 // resent now: no longer held
				cl.State.Inflight.Set(pk)
			}
			// The quota is pinned (settleSession): a live publish is
			// held, and releases count what is in flight (relqueue.go).
			continue
		}
		cl.State.Inflight.Delete(pk.PacketID)
		ids.parked = append(ids.parked, pk)
	}
	// Messages published since pks were read (pruneInflight asks the
	// app's policy about each message) follow the parked ones: their ids
	// come after (settleSession). There are none unless no gate was
	// closed (resumeGate). One stored and not yet held may be stored
	// again by its publisher (unpark then leaves it).
	var since []packets.Packet
	for _, pk := range hubMessages(cl) {
		if _, ok := seen[pk.PacketID]; !ok {
			since = append(since, pk)
		}
	}
	for _, pk := range sendOrder(since) {
		cl.State.Inflight.Delete(pk.PacketID)
		pk.Expiry = -1 // never sent (unpark leaves it unmarked)
		ids.parked = append(ids.parked, pk)
	}
}

// unpark puts parked messages back in the session, held for the client's
// Receive Maximum, under their own ids (see above). The read loop has not
// started (it runs from OnSessionEstablished) or the connection is gone
// (Close), so nothing but a publish to the client adds to the session
// meanwhile, and that takes an id after theirs.
func (c *guardConn) unpark() {
	ids := c.ids.Load()
	if ids == nil {
		return
	}
	// All under mu, isParked included, so that a Close on another
	// goroutine (a takeover, about to copy the session) waits until a
	// park under way is done and every parked message is back: read
	// without mu, isParked let Close return while the old connection was
	// still parking, and mochi copied the session without those messages.
	// Once per connection. NextPacketID takes the client's lock under mu:
	// mochi holds that lock only to hand out an id or to write, and
	// neither takes mu.
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if !ids.isParked.Load() {
		return
	}
	parked, cl, inflight := ids.parked, ids.client, ids.inflight
	ids.parked, ids.client = nil, nil
	ids.isParked.Store(false)
	// A message held when mochi's resend read the session was resent
	// (noteReleased): it is out, and stays in the session as sent.
	for _, pk := range inflight.GetAll(true) {
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if i := slices.IndexFunc(ids.released, func(r packets.Packet) bool { return r.PacketID == pk.PacketID }); i >= 0 {
			ids.released = slices.Delete(ids.released, i, i+1)
			pk.Expiry = 0
			inflight.Set(pk)
		}
	}
	ids.held.Store(len(ids.released) > 0)
	if len(parked) == 0 {
		return
	}
	for _, pk := range parked {
		if e, taken := inflight.Get(pk.PacketID); taken {
			if e.FixedHeader.Type == packets.Publish && e.TopicName == pk.TopicName && bytes.Equal(e.Payload, pk.Payload) {
				// Parked while its publisher stored it, which then
				// stored it again, held (or it was resent, above).
				continue
			}
			// Not expected: the numbering (settleSession) is past the
			// parked ids, and sessions hold far fewer than 65,535
			// messages. No loss first: a fresh id.
			id, err := cl.NextPacketID()
			if err != nil {
				continue // every id taken: mochi drops a message of its own so too
			}
			pk.PacketID = uint16(id)
		}
		if pk.Expiry >= 0 {
			pk.FixedHeader.Dup = true // may have been sent [MQTT-3.3.1-1]
		}
		pk.Expiry = -1 // held: sent when fewer than the maximum are in flight
		inflight.Set(pk)
	}
	// A release once the read loop waits: a message parked with room in
	// the maximum (published while parked) has no PUBACK to wait for.
	c.relCl.Store(cl)
	c.relWant.Store(true)
}

// Close puts parked messages back first: a resend that failed ends the
// connection without OnSessionEstablished, and a connection taking the
// session over closes this one (mochi's DisconnectClient) just before it
// copies the session. closed is set first so that a park racing with
// this either finishes before unpark takes mu or parks nothing.
func (c *guardConn) Close() error {
	c.closed.Store(true)
	c.openGate() // a connection that ends before its resend read the session
	c.unpark()
	if !c.bye.Load() {
		c.flushHeld(false) // before the socket closes (ack.go)
	}
	return c.Conn.Close()
}

// resumeGate: mochi's resend writes every message its session holds
// when it reads it, and a publish to the client could store one there
// after the parking's last look at the session and before that read
// (mochi has no hook between the two): resent with the first ones, a
// reading published during the resume went out ahead of the resent and
// parked ones, and beyond the client's Receive Maximum (1-2% of runs of
// TestAppBacklogStaleEntries under load; pinned down by
// TestResumePublishesFollowParked, "parked, before the resend"). And a
// message to a client without a Receive Maximum (MQTT 3.1.1 has none),
// or at QoS 0, goes to mochi's write queue at once, which can write it
// ahead of the CONNACK (MQTT requires the CONNACK first [MQTT-3.2.0-1];
// TestResumeConnackFirst). So a
// connection that may resume a session closes a gate before mochi makes
// it the client publishes reach (OnSessionEstablish, before Clients.Add),
// every publish to the client waits at the gate before mochi numbers and
// stores its message (OnACLCheck), and the gate opens once the resend has
// read the session: at its first OnQosPublish, which mochi calls after
// the read and before the first write; at OnSessionEstablished if it
// resent nothing; or when the connection ends first (Close). The socket
// writes a publish may wait for there: the CONNACK's (which it waited for
// before too: mochi's NextPacketID takes the client's lock, held while it
// writes) and, on a takeover, the DISCONNECT mochi writes to the previous
// connection first, each bounded by writeTimeout. A publish held at the
// gate holds no lock of mochi's or of the connection's: it waits in the
// ACL check, before settleSession.
//
// For a client without a Receive Maximum mochi's resend writes the
// whole session, and a message published once the gate opened may go
// out between resent ones (the gate does not wait for the resend's
// writes, which a client can slow: a publish would wait for all of them).
//
// A connection taking the session over (mochi's DisconnectClient of the
// previous one, then its copy of the session) must not copy it while
// publishes wait at the previous connection's gate: its Close would open
// the gate, and they would store their messages in the session just
// copied, lost (found in review: 19 of 20 runs). So a connection that
// may resume holds its client id's handover lock (handoverLocks) from
// OnSessionEstablish until its gate opens: of two taking over at once,
// the second waits for the first (a second review lost a reading 3 of 3
// times when the second had looked up a connection the first then took
// the session from). Under the lock it looks the previous connection up,
// waits for its gate (awaitHandover: open already unless it was closed
// without the lock) and, if publishes waited there, for the drain of the
// hub's publishes under way that the gate's opening started (publishes,
// handover.go): letting them leave the gate first still lost the reading
// 2 of 40 times (the copy came before the publish had stored it). The
// previous connection's way to its resend waits for nothing of the new
// one's, which is not yet reachable, and a publish under way waits for
// no handover. Costs and residuals: such a drain waits for every publish
// of the hub's under way, also to other clients, one of them as long as
// a write to a client that does not read (writeTimeout), and only after
// a gate that publishes waited at; a connection waits behind its own
// client id's earlier connection for as long as that one holds the lock
// (its drain, its DISCONNECT to the connection before, its CONNACK:
// each bounded by writeTimeout), without a bound of its own; a publish
// that looks the client up after the gate opened, or that found it gated
// and reached the gate only after it opened, and stores its message only
// after the copy is lost, as in mochi without the hub (microseconds
// against the DISCONNECT's write).
//
// Nothing may publish to the client from its own connection's goroutine
// between OnSessionEstablish and the resend (no hook of the hub's does):
// it would wait for itself.
//
// Residual: two connections under one client id at once, the second
// asking before the first is made reachable, find no session to resume
// and close no gate; if the first then took publishes, the second
// resumes them ungated, as before the gate (parkBeyondReceiveMaximum
// parks what it finds stored since it read the session).

// mayResume reports whether cl's connection may resume a session: no
// clean start, and a session under its client id (mochi copies it in
// inheritClientSession, after this). A guess too many costs a gate opened
// at OnSessionEstablished that no publish met.
func (h *hook) mayResume(cl *mqtt.Client, pk *packets.Packet) bool {
	if h.clients == nil || cl.Net.Inline || pk.Connect.Clean {
		return false
	}
	_, ok := h.clients.Get(cl.ID)
	return ok
}

// closeGate closes the gate (the connection's goroutine, once, from
// OnSessionEstablish), holding the handover lock of its client id until
// it opens (release lets go of it): one connection per client id at a
// time is between its OnSessionEstablish and its resend's read of the
// session. pubs is drained when the gate opens if publishes waited at
// it. A Close already begun has opened it, or opens it after this:
// closed is set before Close's openGate.
func (c *guardConn) closeGate(release func(), pubs *publishes) {
	p := pendOf(c)
	p.gateMu.Lock()
	p.hand, p.pubs = release, pubs
	p.gated.Store(true)
	if c.closed.Load() {
		c.openGate()
	}
}

// openGate opens the gate if it is closed; only the first call does. If
// publishes waited at it, a drain of the hub's publishes under way starts
// (drained is closed when it is done): a takeover waits for it before
// mochi copies the session (awaitHandover), so that their messages are in
// the session copied.
func (c *guardConn) openGate() {
	p := c.pend.Load()
	if p == nil || !p.gated.Load() || !p.gated.CompareAndSwap(true, false) {
		return
	}
	if p.waited.Load() && p.pubs != nil {
		done := make(chan struct{})
		p.drained.Store(&done)
		go func() {
			defer close(done)
			p.pubs.drain()
		}()
	}
	p.gateMu.Unlock()
	if p.hand != nil {
		p.hand()
	}
}

// awaitGate waits until the gate is open (a publish to the client, from
// the ACL check). waiting, if set, is called first (tests). It marks the
// gate waited at before it looks a second time, so that openGate sees the
// mark unless the gate opened in the instant between the two looks (the
// publish then goes on at once, as one that came just after).
func (c *guardConn) awaitGate(cl *mqtt.Client, waiting func(*mqtt.Client)) {
	p := c.pend.Load()
	if p == nil || !p.gated.Load() {
		return
	}
	p.waited.Store(true)
	if !p.gated.Load() {
		return
	}
	if waiting != nil {
		waiting(cl)
	}
	p.waitOpen()
}

// waitOpen waits until the gate is open.
func (p *pendingPubs) waitOpen() {
	p.gateMu.Lock()
	//lint:ignore SA2001 a wait for the gate to open, not a critical section
	p.gateMu.Unlock()
}

// awaitHandover, for a connection about to take over cl's session (mochi
// copies it after this), waits until cl's gate is open and, if publishes
// waited at it, until the drain its opening started is done. Under the
// client id's handover lock cl's gate is open already (cl held the lock
// until it opened); the wait covers a gate closed without it. waiting,
// if set, is called first (tests).
func (c *guardConn) awaitHandover(cl *mqtt.Client, waiting func(*mqtt.Client)) {
	p := c.pend.Load()
	if p == nil {
		return
	}
	if p.gated.Load() {
		if waiting != nil {
			waiting(cl)
		}
		p.waitOpen() // without marking it waited at: a takeover stores nothing
	}
	if d := p.drained.Load(); d != nil {
		<-*d
	}
}

// orderHeld puts the messages mochi holds for a device's Receive Maximum
// in the order the hub sent them, before mochi picks the next to send (at
// the end of handling the packet just read). mochi picks by Created, a
// time in whole seconds, and messages of the same second in map order:
// two control changes made within a second (a hold set, then lifted)
// reached a device with a small Receive Maximum in either order, and it
// could end with the older one.
//
// Unless they already are, the held messages get strictly increasing
// Created times in sending order (sendOrder), the last two seconds before
// now, so that a message being held now or a moment ago (stamped with
// the current second or the one before) sorts after them. Their expiry
// (Expiry) is not touched. Only a session holding more of the hub's
// messages than the maximum holds any back, which costs a read lock to
// tell. Devices only: their messages are the hub's control changes, a
// few at a time; an app's held readings could number a thousand, and
// redoing them at every PUBACK is not done (an app with a small Receive
// Maximum may still get readings of the same second out of order).
func orderHeld(cl *mqtt.Client) {
	rm := int(cl.Properties.Props.ReceiveMaximum)
	if rm == 0 || cl.State.Inflight.Len() <= rm || isAppClient(cl) {
		return
	}
	held := sendOrder(cl.State.Inflight.GetAll(true))
	n := len(held)
	if n == 0 {
		return
	}
	last := time.Now().Unix() - 2
	ordered := held[n-1].Created <= last
	for i := 1; ordered && i < n; i++ {
		ordered = held[i].Created > held[i-1].Created
	}
	if ordered {
		return
	}
	for i := range held {
		held[i].Created = last - int64(n-1-i)
		cl.State.Inflight.Set(held[i])
	}
}
