package broker

import (
	"sync"
	"sync/atomic"

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
// packetIDHook keeps the directions apart without touching mochi: a
// client packet whose id would meet one of the hub's entries is handed to
// mochi under another id, free in the session, and every answer mochi or
// the hook writes under that id goes out under the client's again. The
// same goes the other way for an acknowledgement (PUBACK, PUBREC, PUBCOMP)
// of an id under which the session holds only the client's own state.
// Nothing else changes: a packet that meets nothing, nearly every packet,
// keeps its id and costs one look-up in the session.
//
// What is not covered: a session resumed on a new connection while one of
// the client's QoS 2 flows held another id (mochi resends its PUBREC under
// that id, which the client does not know, and answers the client's
// PUBREL "not found"); and an id the hub hands a message of its own in the
// instant between this hook's look-up and mochi's (both run per packet,
// this one just before).
type packetIDHook struct{ mqtt.HookBase }

func (packetIDHook) ID() string { return "candor-packet-ids" }

func (packetIDHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketProcessed || b == mqtt.OnPacketEncode
}

// packetIDs is one connection's ids handed to mochi in place of the
// client's. Only the connection's read loop adds and removes entries
// (OnPacketRead, OnPacketProcessed); answers written from other
// goroutines read them under mu.
type packetIDs struct {
	// n is len(sub), read without mu so that a connection with nothing
	// moved (nearly all) takes no lock. Only the read loop raises it.
	n   atomic.Int32
	mu  sync.Mutex
	sub map[uint16]uint16 // the id mochi sees → the one on the wire
	// own maps a client id to the one mochi sees, for the client's packets
	// that use the id again (its PUBREL, a resent PUBLISH).
	own map[uint16]uint16
	// next is where the search for a free id starts: from the top down,
	// away from mochi's own numbering, which counts up from 1.
	next uint16
}

// hubsEntry reports whether a session entry is the hub's own flow: a
// message it sent (awaiting PUBACK or PUBREC) or its PUBREL.
func hubsEntry(pk packets.Packet) bool {
	t := pk.FixedHeader.Type
	return t == packets.Publish || t == packets.Pubrel
}

// OnPacketRead hands mochi a packet whose id would meet an entry of the
// other direction under a free id instead.
func (packetIDHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	gc := guardOf(cl)
	if gc == nil {
		return pk, nil
	}
	ids := gc.ids.Load() // nil until an id was moved
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 {
			return pk, nil
		}
		fallthrough
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		// The client's numbering: the hub's entries under the id must be
		// left alone, and so must another of the client's flows moved
		// there.
		if ids != nil && ids.n.Load() != 0 {
			ids.mu.Lock()
			y, moved := ids.own[pk.PacketID]
			_, taken := ids.sub[pk.PacketID]
			if !moved && taken {
				y, moved = ids.move(cl, pk.PacketID, true), true
			}
			ids.mu.Unlock()
			if moved {
				pk.PacketID = y
				return pk, nil
			}
		}
		if e, ok := cl.State.Inflight.Get(pk.PacketID); ok && hubsEntry(e) {
			pk.PacketID = movedID(gc, cl, pk.PacketID, true)
		}
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		// The hub's numbering: only the hub's own entry may be touched.
		// mochi finds nothing under a free id, as for any id it never
		// sent (a PUBREC is answered PUBREL "not found").
		if e, ok := cl.State.Inflight.Get(pk.PacketID); ok && !hubsEntry(e) {
			pk.PacketID = movedID(gc, cl, pk.PacketID, false)
		}
	}
	return pk, nil
}

// movedID moves id x of a packet gc's read loop just read (packetIDs.move).
func movedID(gc *guardConn, cl *mqtt.Client, x uint16, own bool) uint16 {
	ids := gc.ids.Load()
	if ids == nil {
		ids = &packetIDs{sub: map[uint16]uint16{}, own: map[uint16]uint16{}, next: 0xFFFF}
		gc.ids.Store(ids) // only the read loop stores
	}
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
			if _, taken = cl.State.Inflight.Get(y); !taken {
				p.next = y - 1
				p.sub[y] = x
				if own {
					p.own[x] = y
				}
				p.n.Store(int32(len(p.sub)))
				return y
			}
		}
		y--
	}
	return x
}

// OnPacketProcessed forgets a moved id once its flow is over: at once for
// everything but a client's QoS 2 PUBLISH that mochi holds, whose PUBREL
// follows under the same id.
func (packetIDHook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	gc := guardOf(cl)
	if gc == nil {
		return
	}
	ids := gc.ids.Load()
	if ids == nil || ids.n.Load() == 0 {
		return
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 {
		if e, ok := cl.State.Inflight.Get(pk.PacketID); ok && e.FixedHeader.Type == packets.Pubrec {
			return
		}
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	x, ok := ids.sub[pk.PacketID]
	if !ok {
		return
	}
	delete(ids.sub, pk.PacketID)
	if y, ok := ids.own[x]; ok && y == pk.PacketID {
		delete(ids.own, x)
	}
	ids.n.Store(int32(len(ids.sub)))
}

// OnPacketEncode writes an answer to a moved packet under the id the
// client gave it. Only answers carry the other direction's ids: a PUBLISH
// the hub sends has an id of the hub's.
func (packetIDHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp, packets.Suback, packets.Unsuback:
		pk.PacketID = wireID(cl, pk.PacketID)
	}
	return pk
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
