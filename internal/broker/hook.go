package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// hook is the mochi hook that puts every connection and message through
// Candor's policy.
type hook struct {
	mqtt.HookBase
	// info is mochi's $SYS counters: a PUBACK taken over (takeAckForHeld)
	// keeps its Inflight count as mochi's processPuback would.
	info *system.Info
	auth Authenticator
	in   Ingester
	apps Apps // nil: no app may log in
	// appLogin, if set, is told each app's client id once it logged in.
	appLogin func(clientID string)
	// bridge, if set, serves Zigbee2MQTT bridge credentials (bridge.go).
	bridge Bridge
	// maxPacket is the packet size limit of all but a bridge's
	// zigbee2mqtt/bridge/… topics.
	maxPacket int
	log       *slog.Logger
	state     StateReporter // nil: the state topic is denied

	authFail  *prometheus.CounterVec
	aclDenied *prometheus.CounterVec
	acks      sync.Map // *mqtt.Client → *ackQueue
	// ackRuns counts the ack queues' run goroutines started (tests: most
	// PUBACKs should need none).
	ackRuns atomic.Int64
	// ackWrites counts the non-blocking PUBACK writes the socket took
	// (tests: PUBACKs of readings read together leave together).
	ackWrites atomic.Int64
	// ackShort counts non-blocking PUBACK writes the socket did not take
	// in full (or mochi's lock was busy), whose rest went to the run
	// goroutine (tests).
	ackShort atomic.Int64
	// ackTails counts non-blocking PUBACK writes the socket took in the
	// middle of a packet, whose rest the connection kept (guardConn.tail;
	// tests).
	ackTails atomic.Int64
	connack  *connackCodes
	// clients are mochi's, to tell whether a connection may resume a
	// session (mayResume).
	clients *mqtt.Clients
	// pubs counts the hub's publishes under way (handover.go); its own
	// allocation, apart from the fields every publish reads.
	pubs *publishes
	// handovers are the client ids' handover locks (handover.go).
	handovers handoverLocks
	// gateWaiting, if set, is told of each publish about to wait at a
	// connection's gate (tests; resumeGate).
	gateWaiting func(*mqtt.Client)
	mon         Monitor // never nil
	// closing refuses every new connection while the broker shuts down.
	closing atomic.Bool
	// system handles devices' reserved topics, by the part after
	// candor/<device-id>/ (e.g. "$update/progress").
	system map[string]SystemHandler
	// ackWithin and lag: Config.AckWithin (0: acknowledge after commit).
	ackWithin time.Duration
	lag       lagReporter
	// und: connections with messages stored but not yet sent or held
	// (release.go).
	und undecided
}

func newHook(auth Authenticator, in Ingester, log *slog.Logger, reg prometheus.Registerer) *hook {
	h := &hook{
		auth: auth, in: in, log: log, connack: &connackCodes{}, mon: noMonitor{},
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_mqtt_auth_failures_total",
			Help: "Refused MQTT connections, by reason.",
		}, []string{"reason"}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_mqtt_acl_denied_total",
			Help: "Publishes and subscriptions outside the device's namespace, by action.",
		}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(h.authFail, h.aclDenied)
	}
	return h
}

func (h *hook) ID() string { return "candor-policy" }

// Provides is asked for every hook on every event mochi raises (several
// per packet), so it is a plain switch.
func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPacketSent,
		mqtt.OnPacketRead,
		mqtt.OnPacketProcessed,
		mqtt.OnPublishDropped,
		mqtt.OnQosPublish,
		mqtt.OnQosDropped,
		mqtt.OnPublished:
		return true
	}
	return false
}

func (h *hook) refuseConnect(reason, deviceID string) bool {
	h.authFail.WithLabelValues(reason).Inc()
	if deviceID != "" {
		h.log.Info("mqtt connection refused", "reason", reason, "device", deviceID)
	} else {
		h.log.Info("mqtt connection refused", "reason", reason)
	}
	return false
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.closing.Load() {
		return false // shutting down: the device reconnects to the next run
	}
	user := string(pk.Connect.Username)
	pass := string(pk.Connect.Password)
	switch {
	case user == "" || !pk.Connect.PasswordFlag || pass == "":
		return h.refuseConnect("anonymous", "")
	case user == pass:
		return h.refuseConnect("username_equals_password", "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	if apps.IsApp(user) {
		return h.connectApp(ctx, cl, pk, user, pass)
	}
	d, err := h.auth.AuthenticateDevice(ctx, identity.Origin{Addr: cl.Net.Remote}, user, pass)
	var te *identity.ThrottledError
	if errors.As(err, &te) {
		code := codeRateExceeded
		if te.Reason == identity.ReasonBusy {
			code = codeServerBusy
		}
		h.connack.refuseWith(cl, code)
		// Throttling answers a flood thousands of times a second, cheaply:
		// the refusals are counted, not logged one line each.
		h.authFail.WithLabelValues("throttled_" + te.Reason).Inc()
		if te.Reason == identity.ReasonDevice || te.Reason == identity.ReasonAddress {
			h.mon.AuthThrottled(user)
		}
		return false
	}
	if err != nil {
		if errors.Is(err, identity.ErrUnauthenticated) {
			// Counted against the device only if the id exists; the
			// counter update ignores unknown ids.
			h.in.Count(user, store.DeviceCounters{AuthFailures: 1})
			h.mon.AuthFailure(ctx, user)
			return h.refuseConnect("bad_credentials", "")
		}
		h.log.Error("mqtt authentication failed", "err", err)
		return h.refuseConnect("error", "")
	}
	if !allowedClientID(pk.Connect.ClientIdentifier, d.ID) {
		refuseWith(cl, packets.ErrClientIdentifierNotValid.Code, v3RefusedIdentifier)
		h.mon.Denied(d.ID)
		return h.refuseConnect("client_id_outside_namespace", d.ID)
	}
	if pk.Connect.WillFlag && !h.acceptWill(ctx, cl, d.ID, pk) {
		return false
	}
	if gc := guardOf(cl); gc != nil {
		// Before mochi registers the client, so every later reader of
		// gc.dev (this read loop, the ack queue, a shutdown) sees it.
		gc.dev = &deviceConn{id: user}
		gc.loggedIn()
	}
	h.mon.Connect(d.ID, cl.ID, remoteAddr(cl))
	return true
}

// refuseWith sets the CONNACK code of a refused connection when it is not
// mochi's "bad user name or password".
func refuseWith(cl *mqtt.Client, code, v3code byte) {
	if gc := guardOf(cl); gc != nil {
		gc.refuseWith(code, v3code)
	}
}

// acceptWill holds a will to the rules of a reading before the device may
// rely on it: its topic must be one of the device's reading topics and
// its payload must pass the policy path (size, JSON object, manifest).
//
// mochi then never sees the will (its flag is cleared): mochi would
// deliver it to subscribers and keep it retained in memory, outside the
// policy path. The hook hands it to ingest instead when the connection
// ends without a DISCONNECT (OnDisconnect). A will's retain flag is
// ignored, as a reading's is; a Will Delay Interval is not honoured (the
// will is handled when the connection ends).
func (h *hook) acceptWill(ctx context.Context, cl *mqtt.Client, deviceID string, pk packets.Packet) bool {
	stream, ok := publishStream(deviceID, pk.Connect.WillTopic)
	if !ok {
		h.in.Count(deviceID, store.DeviceCounters{ACLDenied: 1})
		h.mon.Denied(deviceID)
		h.aclDenied.WithLabelValues("will").Inc()
		refuseWith(cl, packets.ErrNotAuthorized.Code, v3NotAuthorized)
		return h.refuseConnect("will_topic_outside_namespace", deviceID)
	}
	if err := h.in.Vet(ctx, deviceID, stream, pk.Connect.WillPayload); err != nil {
		var re *ingest.RefusedError
		if !errors.As(err, &re) {
			h.log.Error("mqtt will not checked", "device", deviceID, "err", err)
			return h.refuseConnect("error", deviceID)
		}
		h.log.Info("will refused", "device", deviceID, "stream", stream, "reason", re.Reason)
		refuseWith(cl, refusalCode(re.Reason).Code, v3NotAuthorized)
		return h.refuseConnect("will_refused", deviceID)
	}
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	cl.Properties.Will.Retain = false
	return true
}

// sendWill hands a will to ingest like a reading: stored if it passes the
// policy path and consent, refused (and counted) otherwise; never
// delivered over MQTT.
func (h *hook) sendWill(cl *mqtt.Client) {
	id := deviceOf(cl)
	stream, ok := publishStream(id, cl.Properties.Will.TopicName)
	if !ok {
		return // checked at CONNECT
	}
	ctx, cancel := context.WithTimeout(context.Background(), willTimeout)
	defer cancel()
	if err := h.in.Submit(ctx, id, stream, cl.Properties.Will.Payload, false); err != nil {
		var re *ingest.RefusedError
		if errors.As(err, &re) {
			h.log.Info("will refused", "device", id, "stream", stream, "reason", re.Reason)
			return
		}
		h.log.Error("will not stored", "device", id, "stream", stream, "err", err)
	}
}

// willTimeout bounds how long a closing connection waits for room in the
// ingest queue for its will.
const willTimeout = 10 * time.Second

// refusalCode is the MQTT 5 reason code for a refused reading (in a PUBACK)
// or a refused will (in a CONNACK).
func refusalCode(reason string) packets.Code {
	switch reason {
	case ingest.ReasonTooLarge: // also manifest.ViolTooLarge
		return packets.ErrPacketTooLarge
	case ingest.ReasonBadStream, manifest.ViolUndeclaredStream:
		return packets.ErrTopicNameInvalid
	case ingest.ReasonNoManifest, ingest.ReasonQuarantined:
		return packets.ErrNotAuthorized
	case ingest.ReasonRateLimited:
		return packets.ErrQuotaExceeded
	}
	return packets.ErrPayloadFormatInvalid
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if !write {
		// Before mochi numbers and stores a message for the client, or
		// queues one of QoS 0 (also asked for a SUBSCRIBE's filters, from
		// the read loop).
		if gc := guardOf(cl); gc != nil {
			gc.awaitGate(cl, h.gateWaiting) // a session being resumed (resumeGate)
			if cl.Properties.Props.ReceiveMaximum != 0 {
				settleSession(cl, gc)
			}
		}
	}
	if isAppClient(cl) {
		return h.appACL(cl, topic, write)
	}
	if write {
		// A device's publish is judged in OnPublish, topic and all, never
		// here: mochi answers a publish this check denies at once (an
		// MQTT 5 QoS 1 one with a PUBACK "not authorized", ahead of the
		// PUBACKs of earlier readings still waiting for their commit,
		// where MQTT requires them in the order the PUBLISH packets came;
		// a 3.1.1 one with a DISCONNECT, which 3.1.1 does not have).
		// OnPublish refuses a topic outside the device's namespace through
		// the connection's ack queue instead (refusePublish), and nothing
		// it refuses is forwarded or retained. mochi asks with write set
		// only for a client's PUBLISH (processPublish): a will never comes
		// here, acceptWill checks it at CONNECT.
		return true
	}
	id := deviceOf(cl)
	if _, own := publishStream(id, topic); own {
		// The device's own reading topics: its readings are handed to
		// apps, never echoed back to the device that sent them.
		return false
	}
	if subscribeAllowed(id, topic) {
		return true
	}
	h.in.Count(id, store.DeviceCounters{ACLDenied: 1})
	h.mon.Denied(id)
	h.aclDenied.WithLabelValues("subscribe").Inc()
	h.log.Info("mqtt subscribe denied: filter outside device namespace", "device", id, "filter", topic)
	return false
}

func (h *hook) denyPublish(id, topic string) {
	h.in.Count(id, store.DeviceCounters{ACLDenied: 1})
	h.mon.Denied(id)
	h.aclDenied.WithLabelValues("publish").Inc()
	h.log.Info("mqtt publish denied: topic outside device namespace", "device", id, "topic", topic)
}

func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if isAppClient(cl) {
		return h.appPublish(cl, pk)
	}
	id := deviceOf(cl)
	// A reading's topic is checked first: it is nearly every publish, and
	// a stream name (ingest.ValidStream) can never be "$state" or another
	// "$" system topic, so the order changes no outcome.
	stream, ok := publishStream(id, pk.TopicName)
	if !ok {
		if h.state != nil && isStateTopic(id, pk.TopicName) {
			return h.onState(cl, id, pk)
		}
		if handle, ok := h.systemHandler(id, pk.TopicName); ok {
			return h.onSystem(cl, pk, id, handle)
		}
		return h.refusePublish(cl, id, pk)
	}
	// A reading lives in the store, where consent, retention and deletion
	// apply; a retained copy in broker memory would escape all three.
	pk.FixedHeader.Retain = false
	qos := pk.FixedHeader.Qos
	v5 := cl.Properties.ProtocolVersion == 5
	var err error
	if qos == 1 {
		// QoS 1: queue the reading and acknowledge it from the client's ack
		// queue once its batch is committed, so the connection keeps
		// reading while earlier readings commit (one reading in flight per
		// connection would cap throughput at connections ÷ commit time).
		var t ingest.Ticket
		if t, err = h.in.Enqueue(context.Background(), id, stream, pk.Payload); err == nil {
			if h.ackWithin > 0 && h.lag.Lag() < h.ackWithin {
				// Bounded-window mode, and the queue is keeping up: the
				// reading is acknowledged now and committed within about
				// the window. Through the queue all the same, so this
				// PUBACK does not overtake earlier ones still waiting.
				t = acceptedTicket
			}
			h.queue(cl).push(ackItem{id: wireID(cl, pk.PacketID), ticket: t})
			return handled(pk), nil // we send the PUBACK ourselves
		}
	} else {
		err = h.in.Submit(context.Background(), id, stream, pk.Payload, qos > 0)
		if err == nil && qos == 0 {
			// Readings are kept by the hub, not forwarded over MQTT:
			// forwarding to recipients is governed by consent.
			return handled(pk), nil
		}
		if err == nil {
			return pk, packets.CodeSuccessIgnore // mochi runs QoS 2's handshake
		}
	}
	var re *ingest.RefusedError
	if errors.As(err, &re) {
		h.log.Info("reading refused", "device", id, "stream", stream, "reason", re.Reason)
		// mochi answers a negative code with PUBACK even for QoS 2, which
		// breaks the QoS 2 handshake; QoS 2 refusals take the 3.1.1 path.
		if v5 && qos == 1 {
			code := refusalCode(re.Reason)
			code.Reason = re.Detail
			return h.ackInOrder(cl, pk, code)
		}
		// MQTT 3.1.1 has no negative acknowledgement: acknowledge without
		// keeping or forwarding it, so the device does not resend forever.
		return h.ackInOrder(cl, pk, packets.CodeSuccess)
	}
	// Storage failed: the reading must not be acknowledged.
	h.notStored(id, stream, err)
	if v5 && qos == 1 {
		return h.ackInOrder(cl, pk, packets.ErrImplementationSpecificError)
	}
	if qos > 0 {
		// Without a negative ack in 3.1.1, closing the connection makes the
		// client resend the unacknowledged message after it reconnects.
		go func() { _ = cl.Net.Conn.Close() }()
	}
	return pk, packets.ErrRejectPacket
}

// refusePublish answers a device's publish to a topic outside its
// namespace: counted and logged once, never kept, forwarded or retained
// (handled and ackInOrder mark it Ignore, which mochi's retain and
// delivery both honour).
//
// MQTT 5 QoS 1 gets a PUBACK "not authorized" from the ack queue, after
// those of earlier readings; QoS 2 a PUBREC "not authorized" at once, as
// mochi's own ACL denial sends it (PUBRECs are ordered only among
// themselves, and a QoS 2 reading's PUBREC is written once it is
// committed, before the next packet is read); QoS 0 nothing. MQTT 3.1.1
// has no negative acknowledgement: the publish is acknowledged (in turn)
// without being kept, as a refused reading is, so the device does not
// resend it forever.
func (h *hook) refusePublish(cl *mqtt.Client, id string, pk packets.Packet) (packets.Packet, error) {
	h.denyPublish(id, pk.TopicName)
	if cl.Properties.ProtocolVersion < 5 {
		return h.ackInOrder(cl, pk, packets.CodeSuccess)
	}
	switch pk.FixedHeader.Qos {
	case 1:
		return h.ackInOrder(cl, pk, packets.ErrNotAuthorized)
	case 2:
		pubrecRefused(cl, pk.PacketID)
	}
	return handled(pk), nil
}

// pubrecRefused writes a PUBREC "not authorized" for a refused QoS 2
// publish, byte for byte the one mochi writes for a publish its ACL check
// denies; MQTT 3.1.1 has no reason code, so there it is a plain PUBREC
// (success), and mochi answers the client's PUBREL with a PUBCOMP.
func pubrecRefused(cl *mqtt.Client, id uint16) {
	rec := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: id,
		ReasonCode: packets.ErrNotAuthorized.Code}
	rec.Properties.ReasonString = packets.ErrNotAuthorized.Reason
	_ = cl.WritePacket(rec) // a failed write ends the connection; the client resends
}

// OnPacketRead answers a device's publish that mochi would drop without
// any answer: one to a topic name mochi does not route (one beginning
// with $SYS, a bare $share: mqtt.IsValidFilter), which processPublish
// returns from before any hook is asked. Left alone, a QoS 1 one would
// never be acknowledged while later readings' PUBACKs go out, and MQTT
// requires an answer to each, in the order the PUBLISH packets came. It
// is a publish outside the device's namespace: answered and counted as
// refusePublish does, and mochi still drops it (nothing is routed or
// retained). Every packet comes here, so anything that does not begin
// with '$' leaves at once; a packet that fails mochi's checks
// (unprocessable) is left to mochi, which ends the connection, once the
// PUBACKs the read loop holds are written.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	keepIDsApart(cl, &pk) // first: every later step sees the id mochi will use
	h.takeAckForHeld(cl, &pk)
	h.takePubcomp(cl, &pk)
	if h.takePubrel(cl, &pk) != nil {
		// The PUBCOMP's write failed: mochi's read loop ends on this, as
		// on processPubrel's own failed write, and reads nothing more.
		flushBeforeEnd(cl)
		return pk, packets.ErrRejectPacket
	}
	if pk.FixedHeader.Type == packets.Disconnect || (mayHoldAcks(cl) && unprocessable(&pk)) {
		flushBeforeEnd(cl) // mochi closes the connection without reading again
		return pk, nil
	}
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName == "" || pk.TopicName[0] != '$' ||
		cl.Net.Inline || isAppClient(cl) || mqtt.IsValidFilter(pk.TopicName, true) ||
		pk.PublishValidate(topicAliasMaximum) != packets.CodeSuccess {
		return pk, nil
	}
	h.denyPublish(deviceOf(cl), pk.TopicName)
	switch pk.FixedHeader.Qos {
	case 1:
		code := packets.ErrNotAuthorized
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.CodeSuccess // no negative PUBACK in 3.1.1
		}
		_, _ = h.ackInOrder(cl, pk, code)
	case 2:
		pubrecRefused(cl, pk.PacketID)
	}
	return pk, nil
}

// mayHoldAcks reports whether cl's read loop may hold PUBACKs (a device's
// connection with an ack queue), so that a packet ending the connection
// needs looking at (unprocessable: some 30 ns a PUBLISH) before mochi
// ends it. An invalid packet from anyone else is left to mochi alone.
func mayHoldAcks(cl *mqtt.Client) bool {
	gc := guardOf(cl)
	return gc != nil && gc.dev != nil && gc.dev.acks.Load() != nil
}

// unprocessable reports whether mochi's processPacket (v2.7.9) refuses pk
// before OnPacketProcessed, ending the connection (an MQTT 5 client is
// sent a DISCONNECT first): it fails the same validity check mochi makes,
// or is of a type only a server sends.
func unprocessable(pk *packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return pk.PublishValidate(topicAliasMaximum) != packets.CodeSuccess
	case packets.Subscribe:
		return pk.SubscribeValidate() != packets.CodeSuccess
	case packets.Unsubscribe:
		return pk.UnsubscribeValidate() != packets.CodeSuccess
	case packets.Auth:
		return pk.AuthValidate() != packets.CodeSuccess
	case packets.Connect, packets.Disconnect, packets.Pingreq,
		packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return false
	}
	return true // CONNACK, SUBACK, UNSUBACK, PINGRESP: "no valid packet"
}

// OnPacketProcessed: a packet mochi could not process ends the connection
// (an MQTT 5 client is first sent a DISCONNECT saying why) without another
// read, so the PUBACKs the read loop holds go out now, before that. An
// acknowledgement of the hub's message gives a place back for a held one
// (releaseAfterAck, release.go).
func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	keepQuotaPinned(cl) // first: mochi looks at the quota right after this
	if err != nil {
		flushBeforeEnd(cl)
		return
	}
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		ended(cl, pk.PacketID) // mochi may have ended the flow (relqueue.go)
	}
	releaseAfterAck(cl, pk.FixedHeader.Type)
}

// OnQosDropped: mochi ended a flow of the session (expired, refused by
// a PUBREC, or the session cleared); a release stops counting it.
func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	ended(cl, pk.PacketID)
}

// ackInOrder answers a QoS 1 publish the hook dealt with itself (refused,
// ignored, or a device message that is not a reading) with a PUBACK of
// code, through the connection's ack queue. Left to mochi, that PUBACK
// would be written at once, ahead of those of earlier readings still
// waiting for their commit, and MQTT requires PUBACKs in the order the
// PUBLISH packets came (3.1.1 §4.6, 5.0 §4.6). Any other QoS is left to
// mochi as ignored: nothing to send for QoS 0, the PUBREC of QoS 2's
// handshake. (Callers pass a refusal code only for QoS 1 in MQTT 5.)
func (h *hook) ackInOrder(cl *mqtt.Client, pk packets.Packet, code packets.Code) (packets.Packet, error) {
	if pk.FixedHeader.Qos != 1 {
		return pk, packets.CodeSuccessIgnore
	}
	it := ackItem{id: wireID(cl, pk.PacketID), ticket: ingest.Completed(nil)}
	if code.Code != packets.CodeSuccess.Code {
		it.refusal = &code
	}
	h.queue(cl).push(it)
	return handled(pk), nil
}

// handled returns pk as mochi should take a reading the hook has dealt
// with: neither forwarded (Ignore) nor acknowledged by mochi (QoS 0 as far
// as mochi is concerned: a QoS 1 reading's PUBACK comes from its ack
// queue once committed). Returning it with a nil error instead of
// packets.ErrRejectPacket matters on the hot path: for a rejected packet
// mochi builds a debug log call with the whole packet as an argument,
// which cost a ~900-byte allocation per QoS 1 reading even with debug
// logging off (BenchmarkPublishQoS1).
func handled(pk packets.Packet) packets.Packet {
	pk.Ignore = true
	pk.FixedHeader.Qos = 0
	pk.FixedHeader.Retain = false
	return pk
}

// onState hands a device's state message to the state reporter, never to
// ingest: it describes the device, it is not a reading, so the stream
// rules do not apply. It is not retained or forwarded either.
func (h *hook) onState(cl *mqtt.Client, id string, pk packets.Packet) (packets.Packet, error) {
	pk.FixedHeader.Retain = false
	qos := pk.FixedHeader.Qos
	err := h.state.ReportState(context.Background(), id, pk.Payload)
	if err == nil {
		// Through the ack queue, so this PUBACK does not overtake those of
		// readings still committing.
		return h.ackInOrder(cl, pk, packets.CodeSuccess)
	}
	if kind, detail, ok := problem.Of(err); ok && kind.Status < 500 {
		h.in.Count(id, store.DeviceCounters{Refused: 1})
		h.log.Info("device state refused", "device", id, "err", err)
		if cl.Properties.ProtocolVersion == 5 && qos == 1 {
			code := packets.ErrPayloadFormatInvalid
			code.Reason = detail
			return h.ackInOrder(cl, pk, code)
		}
		return h.ackInOrder(cl, pk, packets.CodeSuccess)
	}
	h.log.Error("device state not stored; not acknowledged", "device", id, "err", err)
	if cl.Properties.ProtocolVersion == 5 && qos == 1 {
		return h.ackInOrder(cl, pk, packets.ErrImplementationSpecificError)
	}
	if qos > 0 {
		// As for a reading not stored: with no negative answer to give,
		// closing makes the device resend it. Left unanswered on an open
		// connection, the device would wait for this acknowledgement while
		// later readings' PUBACKs went out.
		go func() { _ = cl.Net.Conn.Close() }()
	}
	return pk, packets.ErrRejectPacket
}

// OnDisconnect closes the client's ack queue; readings already queued are
// still committed, their acknowledgements simply have nowhere to go (the
// client resends unacknowledged QoS 1 messages after reconnecting).
//
// A connection that ended without a DISCONNECT (err is set; mochi's rule
// for publishing a will) sends its will, which acceptWill took from mochi,
// unless the hub ended it: a revoked credential sends nothing more, and a
// hub shutting down says nothing about the device.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if gc := guardOf(cl); gc != nil {
		gc.restoreReleased() // before a new connection copies the session
		h.settlePending(gc)  // forgets its undecided ids (release.go)
	}
	if err != nil && !cl.Net.Inline && cl.Properties.Will.TopicName != "" &&
		!errors.Is(cl.StopCause(), packets.ErrNotAuthorized) && !errors.Is(cl.StopCause(), packets.ErrServerShuttingDown) {
		h.sendWill(cl)
	}
	if gc := guardOf(cl); gc != nil && gc.dev != nil {
		if q := gc.dev.acks.Swap(nil); q != nil {
			q.close()
		}
	} else if q, ok := h.acks.LoadAndDelete(cl); ok {
		q.(*ackQueue).close()
	}
	if !cl.Net.Inline {
		h.mon.Disconnect(deviceOf(cl), cl.ID)
	}
}

// OnSessionEstablish pins the send quota (release.go) before mochi makes
// the client one publishes reach (Clients.Add): a publish taking from the
// quota at the same moment could otherwise leave it below 0, where mochi
// holds nothing. A connection that may resume a session first waits for
// the gate of the connection it takes it from, then closes its own until
// its resend has read the session (resumeGate, packetid.go).
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if gc := guardOf(cl); gc != nil {
		pinSendQuota(cl, gc)
		if h.mayResume(cl, &pk) {
			var waiting func()
			if h.gateWaiting != nil {
				waiting = func() { h.gateWaiting(cl) }
			}
			// Until this connection's gate opens (openGate).
			release := h.handovers.acquire(cl.ID, waiting)
			// Looked up under the lock: a connection that took the session
			// over meanwhile is the one to wait for.
			if prev, ok := h.clients.Get(cl.ID); ok {
				if pg := guardOf(prev); pg != nil {
					pg.awaitHandover(prev, h.gateWaiting)
				}
			}
			gc.closeGate(release, h.pubs)
		}
	}
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if gc := guardOf(cl); gc != nil {
		gc.openGate() // if the resend sent nothing (resumeGate)
		gc.unpark()   // mochi has resent the session (parkBeyondReceiveMaximum)
		// A session taken over, if no publish and no parking settled it.
		settleSession(cl, gc)
	}
	h.log.Debug("device connected", "device", deviceOf(cl), "protocol", cl.Properties.ProtocolVersion)
}

// redact is a slog handler that drops attributes which may carry message
// contents (mochi logs whole packets on some error paths), wherever they
// appear: on the record, in groups, or attached with With.
type redact struct{ slog.Handler }

var redactedKeys = map[string]bool{"packet": true, "payload": true, "pk": true, "will": true}

func redactAttr(a slog.Attr) slog.Attr {
	if redactedKeys[a.Key] {
		return slog.String(a.Key, "[redacted]")
	}
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = redactAttr(ga)
		}
		return slog.Group(a.Key, out...)
	}
	if a.Value.Kind() == slog.KindLogValuer {
		return redactAttr(slog.Attr{Key: a.Key, Value: a.Value.Resolve()})
	}
	return a
}

func (r redact) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.Handler.Handle(ctx, out)
}

func (r redact) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(a)
	}
	return redact{r.Handler.WithAttrs(out)}
}

func (r redact) WithGroup(name string) slog.Handler { return redact{r.Handler.WithGroup(name)} }
