// Package broker is Candor's embedded MQTT broker (3.1.1 and 5, built on
// mochi-mqtt): it authenticates every device with its own credential,
// confines it to its own topic namespace and hands each reading to the
// ingest policy path before acknowledging it.
//
// It serves clause 2C of the IoT Good Practice paper (no anonymous or
// default-password access; least privilege per device) and, through the
// ingest package, clause 2A (only declared, accountable data is kept).
//
// Topic layout (documented in the README):
//
//	candor/<device-id>/<stream>          device → hub readings
//	candor/<device-id>/control/<stream>  hub → device, publish is hub-only
//
// A control message reaches a device marked retained when it subscribes
// (sent from the hub's state, see Controls), and as a plain publish when
// it changes.
//
// A device may publish only to its own reading topics and subscribe only to
// filters inside candor/<device-id>/. Its MQTT username is its device id and
// its client id must be empty, the device id, or start with "<device-id>-",
// so one device can never take over another's session.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
)

// TopicRoot is the first level of every Candor topic.
const TopicRoot = "candor"

// ReadingTopic is the topic a device publishes a stream's readings to.
func ReadingTopic(deviceID, stream string) string {
	return TopicRoot + "/" + deviceID + "/" + stream
}

// ControlTopic is the topic on which the hub tells a device about one of
// its streams.
func ControlTopic(deviceID, stream string) string {
	return TopicRoot + "/" + deviceID + "/control/" + stream
}

// Authenticator checks device credentials.
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, o identity.Origin, id, secret string) (store.Device, error)
}

// Ingester is the policy path readings go through.
type Ingester interface {
	Submit(ctx context.Context, deviceID, stream string, payload []byte, wait bool) error
	Enqueue(ctx context.Context, deviceID, stream string, payload []byte) (ingest.Ticket, error)
	Vet(ctx context.Context, deviceID, stream string, payload []byte) error
	Refuse(deviceID string, err error)
	Count(deviceID string, delta store.DeviceCounters)
}

// Config configures a Broker: its listener addresses (an empty address
// disables that listener), its packet size limit, logging and metrics.
// Zero values take the defaults.
type Config struct {
	TCPAddr   string      // plain MQTT, e.g. 127.0.0.1:1883
	TLSAddr   string      // MQTT over TLS, e.g. 127.0.0.1:8883
	WSAddr    string      // MQTT over WebSocket, e.g. 127.0.0.1:8083
	TLSConfig *tls.Config // required when TLSAddr is set
	// MaxPacketBytes bounds a packet's size (default 256 KiB).
	MaxPacketBytes uint32
	// BridgeMaxPacketBytes, when larger, bounds instead the packets a
	// logged-in Zigbee2MQTT bridge sends on its zigbee2mqtt/bridge/…
	// topics (see bridge.go).
	BridgeMaxPacketBytes uint32
	Logger               *slog.Logger
	Registerer           prometheus.Registerer

	// ConnectTimeout closes a connection that has not sent a complete
	// CONNECT this long after it was accepted (default 5 s).
	ConnectTimeout time.Duration
	// PendingPerAddress bounds the connections from one address that have
	// not logged in yet (default 16); more are closed when accepted.
	PendingPerAddress int
	// Monitor, if set, is told about connections, wrong secrets and
	// attempts outside a device's namespace (the abuse monitor).
	Monitor Monitor

	// Apps, if set, lets a household's apps log in and receive the
	// readings they are allowed (see Apps).
	Apps Apps
	// AppLogin, if set, is told the client id of each app that logged in
	// (a hub node passes it on, so the other nodes end that session).
	AppLogin func(clientID string)
	// Bridge, if set, lets a Zigbee2MQTT bridge credential (an app of
	// kind zigbee2mqtt) publish its Zigbee devices' states (see Bridge).
	Bridge Bridge
	// State takes the messages devices publish on their reserved state
	// topic, candor/<id>/$state (their firmware version). Without it the
	// topic is denied like any other outside the streams.
	State StateReporter
	// System handles devices' other reserved topics (candor/<id>/$…), by
	// the part after candor/<id>/, e.g. "$update/progress".
	System map[string]SystemHandler
	// Controls, if set, gives a device that subscribes the current
	// message of each control topic its filters match (see Controls).
	Controls Controls
	// AckWithin, if positive, is the bounded-window ack mode (--ack
	// durable-within=…): a QoS 1 reading is acknowledged as soon as it has
	// passed the policy path and is queued, provided the oldest queued
	// reading not yet committed is younger than AckWithin; otherwise its
	// PUBACK waits for the commit as in the default mode. A crash loses at
	// most the readings acknowledged but not yet committed. The Ingester
	// must then report its queue's age (Lag).
	AckWithin time.Duration
}

// lagReporter is what the bounded-window ack mode needs of the Ingester.
type lagReporter interface {
	Lag() time.Duration
}

// StateReporter keeps what a device reports about itself. A refusal is an
// error of kind firmware.ErrInvalid (anything with a problem kind of
// status 4xx); any other error means it could not be stored.
type StateReporter interface {
	ReportState(ctx context.Context, deviceID string, payload []byte) error
}

// Broker is a running MQTT broker.
type Broker struct {
	srv   *mqtt.Server
	hook  *hook
	guard *guard
	log   *slog.Logger
	addrs map[string]string
	nets  []net.Listener // the TCP and TLS listeners, closed first by Close

	closeOnce sync.Once
	closeErr  error
}

// topicAliasMaximum is 0: MQTT 5 topic aliases are not offered. mochi
// checks the ACL on a publish's topic before resolving an alias, so an
// app's or a bridge's alias-only publish would be denied (a device's
// publish is judged in OnPublish, after resolution): the CONNACK says
// aliases are not supported rather than accept and then refuse them, and
// mochi ends a connection that uses one.
const topicAliasMaximum = 0

// New builds a broker and binds its TCP and TLS listeners, so a port in
// use fails here; Start begins accepting connections (and opens the
// WebSocket listener).
func New(cfg Config, auth Authenticator, in Ingester) (*Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPacketBytes == 0 {
		cfg.MaxPacketBytes = 256 << 10
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// mochi's limit is one for all: the larger one, each connection then
	// held to its own by the guard (guardConn.Read).
	caps.MaximumPacketSize = max(cfg.MaxPacketBytes, cfg.BridgeMaxPacketBytes)
	// Sessions of offline devices are kept for a day, not forever, so a
	// device that disappears does not pin memory.
	caps.MaximumSessionExpiryInterval = 24 * 60 * 60
	caps.TopicAliasMaximum = topicAliasMaximum
	// Each connection gets a channel of this many pending outbound
	// publishes, allocated up front: mochi's default (8192) costs 64 KiB
	// per idle device. Devices receive only their retained control
	// messages (PUBACKs are written directly, not queued here), so a small
	// queue is ample; one that overflows drops, and mochi counts it.
	caps.MaximumClientWritesPending = 128
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		// mochi logs whole packets on some paths; payloads are personal
		// data and must never reach a log line.
		Logger:                 slog.New(redact{log.Handler()}),
		InlineClient:           true,
		SysTopicResendInterval: 0,
		// Every connection holds this read buffer for life, idle or not
		// (mochi's default is 2 KiB): the smallest there is, since the
		// guard buffers a socket's reads itself, and only while it has
		// bytes to hand on (readbuf.go; 1 KiB where it cannot).
		ClientNetReadBufferSize: mochiReadBuffer,
	})
	h := newHook(auth, in, log, cfg.Registerer)
	h.info = srv.Info
	h.clients = srv.Clients
	h.pubs = new(publishes)
	if cfg.Monitor != nil {
		h.mon = cfg.Monitor
	}
	h.apps = cfg.Apps
	h.appLogin = cfg.AppLogin
	h.bridge = cfg.Bridge
	h.maxPacket = int(cfg.MaxPacketBytes)
	h.state = cfg.State
	h.system = cfg.System
	if cfg.AckWithin > 0 {
		lr, ok := in.(lagReporter)
		if !ok {
			return nil, errors.New("bounded-window acknowledgements: the ingest pipeline does not report its queue's age")
		}
		h.ackWithin, h.lag = cfg.AckWithin, lr
	}
	// First: its OnPacketRead moves packet ids (packetid.go) before any
	// other hook sees a packet.
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("add policy hook: %w", err)
	}
	if err := srv.AddHook(h.connack, nil); err != nil {
		return nil, fmt.Errorf("add connack hook: %w", err)
	}
	if cfg.Controls != nil {
		if err := srv.AddHook(&controlHook{src: cfg.Controls}, nil); err != nil {
			return nil, fmt.Errorf("add control hook: %w", err)
		}
	}
	if lv, ok := cfg.Apps.(LastValues); ok && lv != nil {
		if err := srv.AddHook(&lastValueHook{src: lv}, nil); err != nil {
			return nil, fmt.Errorf("add last value hook: %w", err)
		}
	}
	b := &Broker{srv: srv, hook: h, log: log, addrs: map[string]string{},
		guard: newGuard(cfg.ConnectTimeout, cfg.PendingPerAddress, int(cfg.MaxPacketBytes), log)}
	b.guard.bridgeMax = int(max(cfg.MaxPacketBytes, cfg.BridgeMaxPacketBytes))
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(b.guard.closed)
		cfg.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "candor_mqtt_connected_clients",
			Help: "MQTT connections currently open (devices).",
		}, func() float64 { return float64(b.connectedCount()) }))
	}
	fail := func(err error) (*Broker, error) {
		for _, ln := range b.nets {
			_ = ln.Close()
		}
		return nil, err
	}
	if cfg.TCPAddr != "" {
		if err := b.listen("tcp", cfg.TCPAddr, nil); err != nil {
			return fail(err)
		}
	}
	if cfg.TLSAddr != "" {
		if cfg.TLSConfig == nil {
			return fail(errors.New("mqtt TLS listener: no certificate configured"))
		}
		if err := b.listen("tls", cfg.TLSAddr, cfg.TLSConfig); err != nil {
			return fail(err)
		}
	}
	if cfg.WSAddr != "" {
		if err := b.add(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: cfg.WSAddr, TLSConfig: cfg.TLSConfig})); err != nil {
			return fail(err)
		}
	}
	return b, nil
}

// listen opens a TCP (or TLS) listener the broker owns, so that Close can
// stop new connections before it shuts mochi down.
func (b *Broker) listen(id, addr string, tlsConfig *tls.Config) error {
	lc := net.ListenConfig{Control: boundReceiveBuffer}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("mqtt %s listener on %s: %w", id, addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	b.nets = append(b.nets, ln)
	return b.add(listeners.NewNet(id, ln))
}

func (b *Broker) add(l listeners.Listener) error {
	if err := b.srv.AddListener(guardedListener{Listener: l, g: b.guard}); err != nil {
		return fmt.Errorf("mqtt %s listener on %s: %w", l.ID(), l.Address(), err)
	}
	b.addrs[l.ID()] = l.Address()
	return nil
}

// Addr returns the bound address of a listener ("tcp", "tls" or "ws"), which
// differs from the configured one when port 0 was asked for.
func (b *Broker) Addr(id string) string { return b.addrs[id] }

// Start begins accepting connections.
func (b *Broker) Start() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("start mqtt broker: %w", err)
	}
	return nil
}

// Close disconnects every client and stops the listeners.
//
// mochi v2.7.9's own Close walks the client list holding a read lock and
// takes that read lock again inside (Clients.GetByListener calls Len): a
// client added or removed in between waits for the write lock, the inner
// read lock waits behind it, and shutdown hangs forever. So no client may
// come or go while it runs: the broker's own TCP and TLS listeners are
// closed first and its hook refuses any connection still in flight, every
// live connection is ended, and mochi's Close runs once the client list
// has settled (or after closeWait, should a client not let go). Close is
// safe to call more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.hook.closing.Store(true)
		b.closeErr = Shutdown(b.srv, b.nets, closeWait, b.log, b.guard.drain)
	})
	return b.closeErr
}

// Shutdown closes a mochi server without the deadlock described at
// Broker.Close: it closes lns (the net.Listeners behind the server's
// listeners.NewNet listeners) so no connection arrives, ends every live
// connection, waits (at most wait) until no client is left that mochi will
// still remove from its list, then calls the server's Close.
//
// drains, if any, run after that and before Close: each stops handing
// connections to the server and reports whether the ones it handed over
// ended before deadline.
func Shutdown(srv *mqtt.Server, lns []net.Listener, wait time.Duration, log *slog.Logger, drains ...func(deadline time.Time) bool) error {
	for _, ln := range lns {
		_ = ln.Close()
	}
	deadline := time.Now().Add(wait)
	for quiet := 0; quiet < 2; {
		if settled(srv) {
			quiet++ // twice in a row: nothing was about to join
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			if log != nil {
				log.Warn("mqtt clients still connected at shutdown", "after", wait)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, drain := range drains {
		if !drain(deadline) && log != nil {
			log.Warn("mqtt connections still starting at shutdown", "after", wait)
		}
	}
	return srv.Close()
}

// settled ends every live connection and reports whether none is left
// that mochi will still remove from its client list.
func settled(srv *mqtt.Server) bool {
	ok := true
	for _, cl := range srv.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		if !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			ok = false
			continue
		}
		// A session that expires on disconnect is deleted from the list
		// once its connection's goroutine ends (mochi's attachClient):
		// until then, a write to the list is still to come.
		v5 := cl.Properties.ProtocolVersion == 5
		if (v5 && cl.Properties.Props.SessionExpiryInterval == 0) || (!v5 && cl.Properties.Clean) {
			ok = false
		}
	}
	return ok
}

// closeWait bounds how long Close waits for connections to end.
const closeWait = 5 * time.Second

// Disconnect cuts every live connection of a device, e.g. after its
// credential was revoked or rotated.
func (b *Broker) Disconnect(deviceID string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline || string(cl.Properties.Username) != deviceID {
			continue
		}
		if cl.Closed() {
			continue
		}
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		b.log.Info("device disconnected: credential no longer valid", "device", deviceID)
	}
}

func (b *Broker) connectedCount() int {
	n := 0
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			n++
		}
	}
	return n
}

// Connected reports whether the device has a live connection.
func (b *Broker) Connected(deviceID string) bool {
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() && string(cl.Properties.Username) == deviceID {
			return true
		}
	}
	return false
}

// Publish sends a hub message to a device's control topic.
func (b *Broker) Publish(topic string, payload []byte, retain bool) error {
	if err := b.publish(topic, payload, retain); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// publish is every publish of the hub's, at QoS 1, counted while under
// way (publishes, handover.go).
func (b *Broker) publish(topic string, payload []byte, retain bool) error {
	e := b.hook.pubs.enter()
	defer b.hook.pubs.exit(e)
	return b.srv.Publish(topic, payload, retain, 1)
}

// Retained reports whether mochi's retained store holds a message on
// topic. No device's control message or update offer is kept there: they
// are sent from the hub's state when a device subscribes (Controls), and
// wills are taken from mochi (acceptWill). What the hub does retain is
// Home Assistant discovery for apps (apps/discovery.go).
func (b *Broker) Retained(topic string) bool {
	_, ok := b.srv.Topics.Retained.Get(topic)
	return ok
}

// authTimeout bounds how long one CONNECT may wait for the credential check
// (the slow hash runs under a concurrency limit).
const authTimeout = 10 * time.Second

// deviceOf returns the device id behind a client (empty for the hub's
// inline client).
func deviceOf(cl *mqtt.Client) string {
	if gc := guardOf(cl); gc != nil && gc.dev != nil {
		return gc.dev.id // converted once at login, not per packet
	}
	return string(cl.Properties.Username)
}

// deviceConn is what the per-packet path needs of a logged-in device's
// connection, worked out once when it logs in: its id as a string (mochi
// keeps the user name as bytes) and its ack queue, instead of a string
// conversion and a map lookup on every reading.
type deviceConn struct {
	id   string
	acks atomic.Pointer[ackQueue] // nil until its first QoS 1 reading
	// subExisted: of the SUBSCRIBE being handled, the filters (by
	// position) with Retain Handling 1 the session already had. Only the
	// connection's read loop touches it (controlHook).
	subExisted uint64
}

// allowedClientID enforces the client-id rule that stops one device from
// taking over another's session.
func allowedClientID(clientID, deviceID string) bool {
	return clientID == "" || clientID == deviceID || strings.HasPrefix(clientID, deviceID+"-")
}

// publishStream returns the stream a device may publish on topic, or false.
// It runs on every publish, twice (ACL check and OnPublish), so it
// matches the prefix in pieces rather than building it.
func publishStream(deviceID, topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	if !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, deviceID); !ok || len(rest) == 0 || rest[0] != '/' {
		return "", false
	}
	stream := rest[1:]
	if !ingest.ValidStream(stream) {
		return "", false
	}
	return stream, true
}

// isStateTopic reports whether topic is the device's own state topic.
func isStateTopic(deviceID, topic string) bool {
	return topic == TopicRoot+"/"+deviceID+"/$state"
}

// subscribeAllowed reports whether a device may subscribe to filter.
func subscribeAllowed(deviceID, filter string) bool {
	prefix := TopicRoot + "/" + deviceID + "/"
	if strings.HasPrefix(filter, "$share/") {
		return false
	}
	return strings.HasPrefix(filter, prefix) || filter == TopicRoot+"/"+deviceID+"/#"
}
