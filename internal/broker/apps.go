package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/store"
)

// Apps decides what a household's apps may receive (package apps). An app
// logs in with its id (apps.IDPrefix) as MQTT username and its secret as
// password, subscribes to reading topics candor/<device-id>/<stream> with
// ordinary filters, and receives only the readings a person allowed it.
// It may not publish.
type Apps interface {
	Authenticate(ctx context.Context, id, secret string) (store.App, error)
	// MayMatch says whether a filter can match a reading the app could
	// be allowed to receive; Visible whether it may receive the reading
	// on topic now.
	MayMatch(ctx context.Context, appID, filter string) bool
	Visible(appID, topic string) bool
	Delivered(appID string)
	Dropped(appID string)
	// Command checks a command an app publishes to
	// candor/<device-id>/command/<name> and sends it to the device.
	Command(ctx context.Context, appID, deviceID, name string, payload []byte) error
}

// maxAppInflight bounds the QoS 1 readings waiting for an app's PUBACK:
// beyond it a reading is counted as dropped for the app rather than
// dropped by mochi without a trace.
const maxAppInflight = 1024

func isAppClient(cl *mqtt.Client) bool {
	return !cl.Net.Inline && apps.IsApp(string(cl.Properties.Username))
}

// connectApp authenticates an app's CONNECT. Apps publish nothing, so a
// will (a publish on the app's behalf) is refused.
func (h *hook) connectApp(ctx context.Context, cl *mqtt.Client, pk packets.Packet, user, pass string) bool {
	if h.apps == nil {
		return h.refuseConnect("bad_credentials", "")
	}
	a, err := h.apps.Authenticate(ctx, user, pass)
	if err != nil {
		if errors.Is(err, apps.ErrUnauthenticated) {
			return h.refuseConnect("bad_credentials", "")
		}
		h.log.Error("mqtt app authentication failed", "err", err)
		return h.refuseConnect("error", "")
	}
	if !allowedClientID(pk.Connect.ClientIdentifier, a.ID) {
		refuseWith(cl, packets.ErrClientIdentifierNotValid.Code, v3RefusedIdentifier)
		return h.refuseConnect("client_id_outside_namespace", a.ID)
	}
	if pk.Connect.WillFlag && !h.acceptBridgeWill(cl, a.ID, pk) {
		refuseWith(cl, packets.ErrNotAuthorized.Code, v3NotAuthorized)
		return h.refuseConnect("app_will", a.ID)
	}
	if gc := guardOf(cl); gc != nil {
		gc.loggedIn()
		if h.isBridge(cl) {
			gc.big.Store(true)
		}
	}
	if h.appLogin != nil {
		h.appLogin(cl.ID)
	}
	return true
}

// appACL answers the ACL check for an app. mochi asks it both for a
// SUBSCRIBE's filters and for every message it is about to deliver, with
// the message's topic; a topic has no wildcards, so apps.MayMatch gives
// the per-reading answer for those.
func (h *hook) appACL(cl *mqtt.Client, topic string, write bool) bool {
	if h.isBridge(cl) {
		return h.bridgeACL(cl, topic, write)
	}
	id := string(cl.Properties.Username)
	if write {
		if _, _, ok := apps.SplitCommandTopic(topic); ok {
			return true // checked in OnPublish (appPublish)
		}
		if cl.Properties.ProtocolVersion < 5 {
			return true // refused in OnPublish: 3.1.1 has no negative PUBACK
		}
		h.aclDenied.WithLabelValues("app_publish").Inc()
		h.log.Info("mqtt publish denied: apps do not publish", "app", id)
		return false
	}
	ok := h.apps.MayMatch(context.Background(), id, topic)
	if !ok {
		h.aclDenied.WithLabelValues("app_subscribe").Inc()
		return false
	}
	if cl.State.Inflight.Len() >= maxAppInflight {
		h.apps.Dropped(id)
		return false
	}
	return true
}

// OnPacketSent counts readings written to an app's connection, and
// prunes a resumed session before mochi resends it (see pruneInflight);
// for every client it notes a held message mochi sent (noteReleased) and
// a message no longer undecided (sentPending, release.go). A DISCONNECT
// is not noted here: mochi calls this also for a packet it only put in
// its buffer, which may never be written; the guard notes one as it
// writes it (guardConn.Write, bye).
func (h *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	noteReleased(cl, &pk)
	landed(cl, &pk) // before sentPending: never out of both (relqueue.go)
	sentPending(cl, &pk)
	app := h.apps != nil && isAppClient(cl)
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if app {
			h.apps.Delivered(string(cl.Properties.Username))
		}
	case packets.Connack:
		if cl.Net.Inline || cl.State.Inflight.Len() == 0 {
			return
		}
		if gc := guardOf(cl); gc != nil {
			settleSession(cl, gc) // before anything is parked
		}
		h.dropStaleAnswers(cl)
		var pks []packets.Packet
		if app {
			pks = h.pruneInflight(cl)
		} else {
			pks = keepOrder(cl, hubMessages(cl))
		}
		parkBeyondReceiveMaximum(cl, pks)
	}
}

// dropStaleAnswers deletes, from a resumed session before mochi resends
// it, the hub's answers to the client's own QoS 1 and 2 flows on the
// connection before: PUBACKs of its QoS 1 publishes, PUBCOMPs of its
// PUBRELs. mochi (and takePubrel) writes such an answer from a session
// entry it deletes right after the write; a session copied in between
// (the client resumed at once) keeps it, and mochi's resend wrote it again
// on the new connection: a PUBACK under the id the hub may have moved the
// publish to (keepIDsApart: an id of the client's that met one of the
// hub's), which the client never used; a PUBCOMP for a flow the client
// completed, whose id it may already have used again for its next QoS 2
// publish. The client had its answer, or resends the publish (PUBACK) or
// the PUBREL (PUBCOMP, [MQTT-4.4.0-1]) and gets one; a PUBCOMP answering
// a PUBREL whose flow the session no longer holds carries 0x92 in MQTT 5,
// which the specification calls "not an error during recovery".
func (h *hook) dropStaleAnswers(cl *mqtt.Client) {
	for _, p := range cl.State.Inflight.GetAll(false) {
		t := p.FixedHeader.Type
		if (t == packets.Puback || t == packets.Pubcomp) && cl.State.Inflight.Delete(p.PacketID) && h.info != nil {
			atomic.AddInt64(&h.info.Inflight, -1) // as mochi's resend does
		}
	}
}

// hubMessages are the messages of the hub's in cl's session.
func hubMessages(cl *mqtt.Client) []packets.Packet {
	var pks []packets.Packet
	for _, p := range cl.State.Inflight.GetAll(false) {
		if p.FixedHeader.Type == packets.Publish {
			pks = append(pks, p)
		}
	}
	return pks
}

// pruneInflight drops, from an app's resumed session, the queued messages
// it may no longer receive. mochi keeps QoS 1 messages for an app that is
// offline and resends them right after the CONNACK, without asking the
// ACL again; a person who withdrew a use meanwhile must not see those
// readings go out anyway. The CONNACK is written just before the resend,
// on the same goroutine, so this runs first.
func (h *hook) pruneInflight(cl *mqtt.Client) []packets.Packet {
	id := string(cl.Properties.Username)
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	var kept []packets.Packet
	for _, p := range cl.State.Inflight.GetAll(false) {
		if p.FixedHeader.Type != packets.Publish {
			continue
		}
		if !h.apps.MayMatch(ctx, id, p.TopicName) {
			cl.State.Inflight.Delete(p.PacketID)
			continue
		}
		kept = append(kept, p)
	}
	return keepOrder(cl, kept)
}

// keepOrder makes mochi resend a resumed session's messages in the order
// they were first sent, as MQTT requires of an ordered topic (3.1.1
// section 4.6, 5.0 section 4.6) and as Mosquitto does. mochi resends in
// the order of Created, a time in whole seconds, and messages of the same
// second in map order: readings queued in one second came back shuffled.
// Packet ids are handed out in sending order (wrapping after 65535), so
// they give the order; Created is moved forward just enough to be strictly
// increasing in it, which delays a message's expiry by at most a second
// per message queued before it. (mochi compares Created modulo 65536
// seconds, so a queue that straddles such a boundary, once in about 18
// hours, can still come back out of order.)
func keepOrder(cl *mqtt.Client, pks []packets.Packet) []packets.Packet {
	pks = sendOrder(pks)
	for i := 1; i < len(pks); i++ {
		if pks[i].Created <= pks[i-1].Created {
			pks[i].Created = pks[i-1].Created + 1
			cl.State.Inflight.Set(pks[i])
		}
	}
	return pks
}

// sendOrder sorts messages of the hub's to one client in the order they
// were first sent: by packet id, handed out in sending order (wrapping
// after 65535), the first following the widest gap between ids.
func sendOrder(pks []packets.Packet) []packets.Packet {
	if len(pks) < 2 {
		return pks
	}
	slices.SortFunc(pks, func(a, b packets.Packet) int { return cmp.Compare(a.PacketID, b.PacketID) })
	start, gap := 0, int(pks[0].PacketID)+65536-int(pks[len(pks)-1].PacketID)
	for i := 1; i < len(pks); i++ {
		if g := int(pks[i].PacketID) - int(pks[i-1].PacketID); g > gap {
			start, gap = i, g
		}
	}
	return append(pks[start:], pks[:start]...)
}

// OnPublishDropped counts readings an app's full queue could not take:
// the app reads too slowly, and catches up from the stored history.
func (h *hook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) {
	if h.apps != nil && isAppClient(cl) {
		h.apps.Dropped(string(cl.Properties.Username))
	}
}

// PublishReading hands an accepted reading to the apps subscribed to its
// topic; each is asked about through the ACL check (Apps.Visible).
func (b *Broker) PublishReading(deviceID, stream string, payload []byte) {
	// mochi queues the packet for each receiving connection, so the
	// payload must not change afterwards.
	p := append([]byte(nil), payload...)
	if err := b.publish(ReadingTopic(deviceID, stream), p, false); err != nil {
		b.log.Warn("hand reading to apps", "device", deviceID, "stream", stream, "err", err)
	}
}

// Subscribed reports whether a live connection of the client (device or
// app) named username holds at least one subscription.
func (b *Broker) Subscribed(username string) bool {
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() && string(cl.Properties.Username) == username && cl.State.Subscriptions.Len() > 0 {
			return true
		}
	}
	return false
}

// appPublish handles what an app publishes: a command on a command topic
// goes to the device if apps.Command lets it; anything else is refused.
// mochi never routes an app's publish itself.
func (h *hook) appPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.isBridge(cl) {
		return h.bridgePublish(cl, pk)
	}
	id := string(cl.Properties.Username)
	v5qos1 := cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1
	device, name, ok := apps.SplitCommandTopic(pk.TopicName)
	if !ok {
		// Only a 3.1.1 app gets here (the ACL check refused MQTT 5):
		// acknowledged, as 3.1.1 has no refusal, and not kept.
		h.aclDenied.WithLabelValues("app_publish").Inc()
		return pk, packets.CodeSuccessIgnore
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	err := h.apps.Command(ctx, id, device, name, pk.Payload)
	switch {
	case err == nil:
		return pk, packets.CodeSuccessIgnore
	case errors.Is(err, apps.ErrCommandNotAllowed):
		h.aclDenied.WithLabelValues("app_command").Inc()
		h.log.Info("command refused: not declared or not allowed", "app", id, "device", device, "command", name)
		if v5qos1 {
			return pk, packets.ErrNotAuthorized
		}
	case errors.Is(err, apps.ErrCommandInvalid):
		h.log.Info("command refused: payload outside its schema", "app", id, "device", device, "command", name)
		if v5qos1 {
			return pk, packets.ErrPayloadFormatInvalid
		}
	default:
		h.log.Error("command not sent", "app", id, "device", device, "command", name, "err", err)
		if v5qos1 {
			return pk, packets.ErrImplementationSpecificError
		}
	}
	return pk, packets.CodeSuccessIgnore
}

// SendCommand hands a checked command to the device on its control
// namespace (not retained: a command is for now, not for later).
func (b *Broker) SendCommand(deviceID, name string, payload []byte) error {
	topic := apps.DeviceCommandTopic(deviceID, name)
	if err := b.publish(topic, append([]byte(nil), payload...), false); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}
