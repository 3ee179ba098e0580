package broker

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/ingest"
)

// Bridge lets a Zigbee2MQTT bridge credential (an app of kind
// zigbee2mqtt, package bridge) use the hub as its broker: it publishes
// its devices' states under zigbee2mqtt/, and receives on
// zigbee2mqtt/<friendly_name>/set the commands apps were allowed.
type Bridge interface {
	IsBridge(username string) bool
	// Publish handles what the bridge published; it returns once the
	// readings it made are committed.
	Publish(ctx context.Context, bridgeID, topic string, payload []byte) error
	// Visible reports whether the bridge may receive a message on topic
	// (a command for one of its household's Zigbee devices).
	Visible(ctx context.Context, bridgeID, topic string) bool
}

// bridgeTimeout bounds how long a bridge's publish waits for its commit.
const bridgeTimeout = 30 * time.Second

func (h *hook) isBridge(cl *mqtt.Client) bool {
	return h.bridge != nil && h.bridge.IsBridge(string(cl.Properties.Username))
}

// acceptBridgeWill takes the will Zigbee2MQTT always sets (its
// bridge/state "offline") from mochi: it says nothing about anyone, and
// the hub sees the disconnect anyway. Any other will is refused.
func (h *hook) acceptBridgeWill(cl *mqtt.Client, appID string, pk packets.Packet) bool {
	if h.bridge == nil || !h.bridge.IsBridge(appID) || pk.Connect.WillTopic != bridge.StateTopic {
		return false
	}
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	cl.Properties.Will.Retain = false
	return true
}

// bridgeACL answers the ACL check for a bridge: it publishes and
// subscribes under zigbee2mqtt/ only, and receives only commands for its
// own household's devices.
func (h *hook) bridgeACL(cl *mqtt.Client, topic string, write bool) bool {
	id := string(cl.Properties.Username)
	ok := bridge.Topic(topic)
	if ok && !write && !strings.ContainsAny(topic, "+#") {
		ok = h.bridge.Visible(context.Background(), id, topic)
	}
	if !ok {
		h.aclDenied.WithLabelValues("bridge").Inc()
		h.log.Info("mqtt bridge topic denied", "app", id, "write", write)
	}
	return ok
}

// bridgePublish hands what a bridge publishes to package bridge. Nothing
// is routed or retained by mochi: states become readings, messages about
// the bridge itself are dropped.
func (h *hook) bridgePublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	id := string(cl.Properties.Username)
	pk.FixedHeader.Retain = false
	qos := pk.FixedHeader.Qos
	v5qos1 := cl.Properties.ProtocolVersion == 5 && qos == 1
	if h.maxPacket > 0 && pk.FixedHeader.Remaining+1 > h.maxPacket && !strings.HasPrefix(pk.TopicName, bridgeTopics) {
		// Only what the bridge says about itself may be larger.
		h.log.Info("bridge message over the packet size limit dropped", "app", id, "bytes", pk.FixedHeader.Remaining+1)
		if v5qos1 {
			return pk, packets.ErrPacketTooLarge
		}
		return pk, packets.CodeSuccessIgnore
	}
	ctx, cancel := context.WithTimeout(context.Background(), bridgeTimeout)
	defer cancel()
	err := h.bridge.Publish(ctx, id, pk.TopicName, pk.Payload)
	var re *ingest.RefusedError
	switch {
	case err == nil:
		return pk, packets.CodeSuccessIgnore
	case errors.As(err, &re):
		h.log.Info("bridge reading refused", "app", id, "device", re.DeviceID, "stream", re.Stream, "reason", re.Reason)
		if v5qos1 {
			code := refusalCode(re.Reason)
			code.Reason = re.Detail
			return pk, code
		}
		return pk, packets.CodeSuccessIgnore
	case errors.Is(err, bridge.ErrUnknownDevice):
		h.log.Info("bridge state for an unknown Zigbee device dropped", "app", id)
		if v5qos1 {
			return pk, packets.ErrTopicNameInvalid
		}
		return pk, packets.CodeSuccessIgnore
	}
	h.log.Error("bridge state not stored; not acknowledged", "app", id, "err", err)
	if v5qos1 {
		return pk, packets.ErrImplementationSpecificError
	}
	if qos > 0 {
		// As for a device: closing makes the bridge resend it.
		go func() { _ = cl.Net.Conn.Close() }()
	}
	return pk, packets.ErrRejectPacket
}

// bridgeTopics are where Zigbee2MQTT speaks about itself: its retained
// device list and definitions there outgrow the packet size limit of
// readings (bridge/definitions is about a megabyte in a network of a
// hundred device models), so a bridge's connection has a limit of its own
// (Config.BridgeMaxPacketBytes) and only these topics may use it.
const bridgeTopics = bridge.BaseTopic + "/bridge/"

// errPacketTooLarge ends a connection that sent a packet over its limit.
var errPacketTooLarge = errors.New("mqtt packet over the connection's size limit")

// limit is the largest packet c may send: the bridge limit once a bridge
// logged in on it, else the limit of all.
func (c *guardConn) limit() int {
	if c.big.Load() {
		return c.g.bridgeMax
	}
	return c.g.maxPacket
}

// tooLarge answers a packet over the limit as mochi does (MQTT 5: a
// DISCONNECT 0x95, then the connection closes) before mochi reads it, so
// nothing that large is ever allocated for a connection that may not
// send it.
func (c *guardConn) tooLarge() error {
	// The PUBACKs owed for readings read before it go first (sendAcks):
	// mochi closes the connection without another read or hook.
	if !c.v5 {
		c.flushHeld(true)
		return errPacketTooLarge
	}
	c.mu.Lock()
	// Never after a failed write (writeFailed) or a DISCONNECT, and
	// not into the middle of a PUBACK (sendTail, in sendAcks).
	// Bounded like every other write (review): unbounded, a WebSocket
	// client that stopped reading held mu, and so mochi's write loop
	// and publishers to it, for good; on TCP a deadline left from the
	// last write, long past for a device sent nothing for a while,
	// failed the DISCONNECT at once.
	stop := c.boundWrite()
	if !c.broken && !c.bye.Load() && c.sendAcks() == nil {
		_, err := c.Conn.Write([]byte{typeDisconnect << 4, 1, packets.ErrPacketTooLarge.Code})
		_ = c.writeFailed(err)
		c.bye.Store(true) // PUBACKs still waiting for a commit must not follow it
	}
	stop()
	c.mu.Unlock()
	return errPacketTooLarge
}

// inSizes follows the packets a connection sends, header by header, to
// hold each to its connection's limit; mochi's own limit is the largest
// of all (Config.BridgeMaxPacketBytes).
type inSizes struct {
	left int     // body bytes of the current packet still to come
	hdr  [5]byte // the fixed header read so far
	nh   int
}

// fit reports whether the packets that b starts or continues are within
// limit bytes (no limit when it is 0), as mochi counts: the remaining
// length plus one.
func (s *inSizes) fit(b []byte, limit int) bool {
	for len(b) > 0 {
		if s.left > 0 {
			k := min(s.left, len(b))
			s.left -= k
			b = b[k:]
			continue
		}
		s.hdr[s.nh] = b[0]
		s.nh++
		b = b[1:]
		if s.nh == 1 || (s.hdr[s.nh-1]&0x80 != 0 && s.nh < len(s.hdr)) {
			continue
		}
		size, _ := remainingLength(s.hdr[:s.nh])
		s.nh = 0
		if limit > 0 && size+1 > limit {
			return false
		}
		s.left = size
	}
	return true
}
