package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

const (
	dialTimeout = 10 * time.Second
	keepAlive   = 30 // seconds
	// controlGrace is how long a device waits after subscribing to its
	// control topics before it publishes anything. The broker sends retained
	// control messages right after the SUBACK; waiting lets a device that
	// (re)connects learn that a stream is switched off before it sends a
	// single reading of it.
	controlGrace = 300 * time.Millisecond
)

// device is one simulated device: its model, its schedule and its counters.
// The model and the schedule belong to the device's goroutine; autopaho's
// callbacks, the control handler and Stats touch only atomics and
// mutex-guarded fields.
type device struct {
	sim    *Simulator
	id     string
	secret string
	kind   Kind
	model  model
	sched  *rand.Rand // scheduling, kept apart from the model
	index  map[string]int
	paused []atomic.Bool // by stream index
	// noLearn and noDecide are the hub's "learn": false and "decide":
	// false, by stream index; the device's goroutine hands them to a
	// model that learns (learner) before each step.
	noLearn   []atomic.Bool
	noDecide  []atomic.Bool
	published []atomic.Uint64 // by stream index
	total     atomic.Uint64
	errors    atomic.Uint64
	connects  atomic.Uint64
	connected atomic.Bool
	// quarantined: the hub's last word on candor/<id>/control/quarantine-status.
	quarantined atomic.Bool

	mu      sync.Mutex
	lastErr string
	conn    uint64 // counts connections up and down, to tell a stale one
	ready   bool   // connected, subscribed to control, grace over
	prep    sync.WaitGroup
	// The live connection and the run's context, for update work that
	// starts from a control message; fw is the firmware an update
	// installed ("" for the kind's); updating is true while one runs.
	cm       *autopaho.ConnectionManager
	ctx      context.Context
	fw       string
	updating bool
}

func newDevice(s *Simulator, d Device, k Kind, seed uint64) *device {
	dev := &device{
		sim:       s,
		id:        d.ID,
		secret:    d.Secret,
		kind:      k,
		model:     k.newModel(rand.New(rand.NewPCG(seed, 1)), s.simNow()),
		sched:     rand.New(rand.NewPCG(seed, 2)),
		index:     make(map[string]int, len(k.StreamSpecs)),
		paused:    make([]atomic.Bool, len(k.StreamSpecs)),
		noLearn:   make([]atomic.Bool, len(k.StreamSpecs)),
		noDecide:  make([]atomic.Bool, len(k.StreamSpecs)),
		published: make([]atomic.Uint64, len(k.StreamSpecs)),
	}
	for i, st := range k.StreamSpecs {
		dev.index[st.Name] = i
	}
	return dev
}

func (d *device) stats() DeviceStats {
	st := DeviceStats{
		ID:        d.id,
		Kind:      d.kind.Name,
		Connected: d.connected.Load(),
		Connects:  d.connects.Load(),
		Published: d.total.Load(),
		Errors:    d.errors.Load(),
		Streams:   make(map[string]uint64, len(d.kind.StreamSpecs)),

		Quarantined: d.quarantined.Load(),
	}
	for i, s := range d.kind.StreamSpecs {
		st.Streams[s.Name] = d.published[i].Load()
		if d.paused[i].Load() {
			st.Paused = append(st.Paused, s.Name)
		}
		if d.noLearn[i].Load() {
			st.NotLearning = append(st.NotLearning, s.Name)
		}
		if d.noDecide[i].Load() {
			st.NotDeciding = append(st.NotDeciding, s.Name)
		}
	}
	slices.Sort(st.Paused)
	slices.Sort(st.NotLearning)
	slices.Sort(st.NotDeciding)
	d.mu.Lock()
	st.LastError = d.lastErr
	d.mu.Unlock()
	return st
}

// fail records and logs an error. Errors never contain the secret or a
// payload.
func (d *device) fail(err error) {
	n := d.errors.Add(1)
	d.mu.Lock()
	d.lastErr = err.Error()
	d.mu.Unlock()
	d.sim.log.Warn("device error", "device", d.id, "error", err, "errors", n)
}

// run keeps the device connected and publishing until ctx is done. autopaho
// owns the connection (dial, CONNECT, reconnect with backoff); the device
// subscribes to its control topics each time the connection comes up and
// publishes only while it is up.
func (d *device) run(ctx context.Context, delay time.Duration) {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{d.sim.url},
		TlsCfg:                        d.sim.tls,
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                dialTimeout,
		ReconnectBackoff:              d.backoff(delay),
		// Our own dialer: autopaho's would route through $all_proxy.
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
			return d.dial(ctx)
		},
		ConnectUsername:  d.id,
		ConnectPassword:  []byte(d.secret),
		OnConnectionUp:   func(cm *autopaho.ConnectionManager, _ *paho.Connack) { d.up(ctx, cm) },
		OnConnectionDown: func() bool { d.down(); return true },
		OnConnectError:   func(err error) { d.fail(connectError(err)) },
		ClientConfig: paho.ClientConfig{
			ClientID:          d.id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){d.onControl},
			OnClientError:     func(err error) { d.fail(fmt.Errorf("connection lost: %w", err)) },
			OnServerDisconnect: func(p *paho.Disconnect) {
				r := (&packets.Disconnect{ReasonCode: p.ReasonCode}).Reason()
				d.fail(fmt.Errorf("broker disconnected us: %s (reason 0x%02x)", shortReason(r), p.ReasonCode))
			},
		},
	})
	if err != nil {
		d.fail(err)
		return
	}
	d.publish(ctx, cm)
	<-cm.Done() // autopaho sends DISCONNECT when ctx ends
	d.prep.Wait()
	d.down()
}

// backoff is the delay before connection attempt n after the connection
// was last up (n = 0 is the first attempt): the start delay the first time,
// a short jitter for a reconnect, then doubling from MinBackoff to
// MaxBackoff, the upper half drawn at random so that a fleet does not
// reconnect in step.
func (d *device) backoff(first time.Duration) func(int) time.Duration {
	started := false // only autopaho's connection goroutine calls this
	return func(n int) time.Duration {
		if !started {
			started = true
			return first
		}
		if n <= 0 {
			return rand.N(d.sim.minBack + 1)
		}
		b := d.sim.maxBack
		if n < 32 {
			b = min(d.sim.minBack<<(n-1), d.sim.maxBack)
		}
		return b/2 + rand.N(b/2+1)
	}
}

func (d *device) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if d.sim.tls != nil {
		td := tls.Dialer{Config: d.sim.tls}
		c, err := td.DialContext(ctx, "tcp", d.sim.addr)
		if err != nil {
			return nil, err
		}
		// tls.Conn is not safe for concurrent writes; paho writes from
		// several goroutines.
		return packets.NewThreadSafeConn(c), nil
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.sim.addr)
}

// connectError says why a connection attempt failed, with the CONNACK
// reason by name when the broker refused us.
func connectError(err error) error {
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		r := (&packets.Connack{ReasonCode: ce.ReasonCode}).Reason()
		return fmt.Errorf("connect refused: %s (reason 0x%02x)", shortReason(r), ce.ReasonCode)
	}
	return err
}

// shortReason keeps the name of a reason from paho's "Name - explanation".
func shortReason(r string) string {
	if i := strings.Index(r, " - "); i > 0 {
		return r[:i]
	}
	if r == "" {
		return "unknown reason"
	}
	return r
}

// up runs when a connection is established. autopaho's callback must not
// block, so subscribing happens in a goroutine.
func (d *device) up(ctx context.Context, cm *autopaho.ConnectionManager) {
	d.connects.Add(1)
	d.connected.Store(true)
	d.mu.Lock()
	d.conn++
	conn := d.conn
	d.cm = cm
	d.mu.Unlock()
	d.sim.log.Info("device connected", "device", d.id, "kind", d.kind.Name)
	d.prep.Add(1)
	go func() {
		defer d.prep.Done()
		d.prepare(ctx, cm, conn)
	}()
}

// down runs when the connection is lost or closed.
func (d *device) down() {
	d.mu.Lock()
	d.conn++
	d.ready = false
	d.mu.Unlock()
	if d.connected.Swap(false) {
		d.sim.log.Info("device disconnected", "device", d.id)
	}
}

// current reports whether connection conn is still the live one.
func (d *device) current(conn uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn == conn
}

func (d *device) isReady() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// prepare subscribes connection conn to the device's control topics and,
// after the grace for retained control messages, lets readings flow. A
// device that cannot hear "stop" publishes nothing, so a failed subscribe
// is retried for as long as the connection lasts.
func (d *device) prepare(ctx context.Context, cm *autopaho.ConnectionManager, conn uint64) {
	filter := ControlFilter(d.id)
	wait := d.sim.minBack
	for {
		_, err := cm.Subscribe(ctx, &paho.Subscribe{
			Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}},
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil || !d.current(conn) {
			return
		}
		d.fail(fmt.Errorf("subscribe %s: %w", filter, err))
		if !sleep(ctx, wait) {
			return
		}
		wait = min(wait*2, d.sim.maxBack)
	}
	d.reportState(ctx, cm)
	if !sleep(ctx, controlGrace) {
		return
	}
	d.mu.Lock()
	if d.conn == conn {
		d.ready = true
	}
	d.mu.Unlock()
}

// reportState tells the hub which firmware the device runs, on its
// reserved state topic, once per connection (docs/DEVICES.md). A failure
// is counted and the device carries on: the hub then just does not know
// the version.
func (d *device) reportState(ctx context.Context, cm *autopaho.ConnectionManager) {
	fw := d.firmware()
	if fw == "" {
		return
	}
	body, err := json.Marshal(struct {
		Firmware string `json:"firmware"`
		Hardware string `json:"hardware,omitempty"`
	}{fw, d.kind.Hardware})
	if err != nil {
		d.fail(fmt.Errorf("encode state: %w", err))
		return
	}
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: StateTopic(d.id), QoS: 1, Payload: body}); err != nil && ctx.Err() == nil {
		d.fail(fmt.Errorf("publish state: %w", err))
	}
}

// sleep waits for d or until ctx is done, reporting whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// gap is the real time until the stream's next reading.
func (d *device) gap(st Stream) time.Duration {
	g := st.Interval
	if st.Event() {
		g += time.Duration(d.sched.Int64N(int64(st.MaxInterval - st.Interval)))
	}
	return time.Duration(float64(g) / d.sim.speed)
}

// publish sends readings on schedule until ctx is done. While the device
// is offline (or not yet subscribed to control) its readings are not made:
// like a real sensor without a buffer, it simply misses them.
func (d *device) publish(ctx context.Context, cm *autopaho.ConnectionManager) {
	specs := d.kind.StreamSpecs
	next := make([]time.Time, len(specs))
	now := time.Now()
	for i, st := range specs {
		if st.Event() {
			next[i] = now.Add(d.gap(st))
		} else {
			// A random phase, so that streams and devices do not all tick together.
			period := time.Duration(float64(st.Interval) / d.sim.speed)
			next[i] = now.Add(time.Duration(d.sched.Int64N(int64(period) + 1)))
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		i := 0
		for j := range next {
			if next[j].Before(next[i]) {
				i = j
			}
		}
		timer.Reset(time.Until(next[i]))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		st := specs[i]
		d.tellModel()
		d.model.advance(d.sim.simNow())
		if !d.paused[i].Load() && d.isReady() {
			d.send(ctx, cm, i, st)
		}
		// Keep the rhythm, but after a stall skip what was missed rather
		// than sending a burst.
		next[i] = next[i].Add(d.gap(st))
		if now := time.Now(); next[i].Before(now) {
			next[i] = now.Add(d.gap(st))
		}
	}
}

func (d *device) send(ctx context.Context, cm *autopaho.ConnectionManager, i int, st Stream) {
	fields := d.model.reading(st.Name)
	if fields == nil {
		return // nothing happened
	}
	payload, err := json.Marshal(fields)
	if err != nil {
		d.fail(fmt.Errorf("encode %s: %w", st.Name, err))
		return
	}
	topic := Topic(d.id, st.Name)
	_, err = cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: d.sim.qos, Payload: payload})
	switch {
	case err == nil:
		d.published[i].Add(1)
		d.total.Add(1)
	case ctx.Err() != nil, errors.Is(err, autopaho.ConnectionDownError):
		// Shutting down, or the connection just dropped (already counted).
	default:
		d.fail(fmt.Errorf("publish %s: %w", topic, err))
	}
}

// tellModel hands the hub's learning switches to a model that learns.
// It runs on the device's goroutine, which owns the model.
func (d *device) tellModel() {
	l, ok := d.model.(learner)
	if !ok {
		return
	}
	for i, st := range d.kind.StreamSpecs {
		l.setLearning(st.Name, !d.noLearn[i].Load(), !d.noDecide[i].Load())
	}
}

// onControl handles a message on candor/<id>/control/<stream>:
// {"collect": false} stops the stream, {"collect": true} resumes it, and an
// empty payload (the hub clearing its retained message) resumes it too.
// "learn" and "decide", when present, say whether the device may learn
// from the stream and act on what it learned by itself; a member left
// out means yes (the hub sends them only for streams the manifest marks).
// Anything else is ignored and the stream keeps its state.
func (d *device) onControl(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	prefix := TopicRoot + "/" + d.id + "/control/"
	name, ok := strings.CutPrefix(p.Topic, prefix)
	if !ok {
		d.sim.log.Warn("message on unexpected topic ignored", "device", d.id, "topic", p.Topic)
		return false, nil
	}
	if name == updateStream {
		d.onUpdate(p.Payload)
		return true, nil
	}
	if name == quarantineStream {
		d.onQuarantine(p.Payload)
		return true, nil
	}
	i, ok := d.index[name]
	if !ok {
		d.sim.log.Warn("control for unknown stream ignored", "device", d.id, "topic", p.Topic)
		return true, nil
	}
	collect, learn, decide := true, true, true
	if len(p.Payload) > 0 {
		var msg struct {
			Collect *bool `json:"collect"`
			Learn   *bool `json:"learn"`
			Decide  *bool `json:"decide"`
		}
		if err := json.Unmarshal(p.Payload, &msg); err != nil || msg.Collect == nil {
			d.sim.log.Warn("malformed control message ignored", "device", d.id, "topic", p.Topic, "bytes", len(p.Payload))
			return true, nil
		}
		collect = *msg.Collect
		if msg.Learn != nil {
			learn = *msg.Learn
		}
		if msg.Decide != nil {
			decide = *msg.Decide
		}
	}
	if was := d.noLearn[i].Swap(!learn); was != !learn {
		d.sim.log.Info("learning switched", "device", d.id, "stream", name, "learn", learn)
	}
	if was := d.noDecide[i].Swap(!decide); was != !decide {
		d.sim.log.Info("automatic decisions switched", "device", d.id, "stream", name, "decide", decide)
	}
	if was := d.paused[i].Swap(!collect); was != !collect {
		if collect {
			d.sim.log.Info("stream resumed", "device", d.id, "stream", name)
		} else {
			d.sim.log.Info("stream paused", "device", d.id, "stream", name)
		}
	}
	return true, nil
}

// quarantineStream is the control topic on which the hub tells a device
// whether it holds it (internal/hub's QuarantineStream): every time the
// device subscribes, and whenever the hold changes, as
// {"quarantined": true|false, "reason": "…"}.
const quarantineStream = "quarantine-status"

// onQuarantine records what the hub says of the device's hold and logs a
// change. A simulated device keeps its schedule while held: the hub
// refuses what it sends, which is what the demo shows.
func (d *device) onQuarantine(payload []byte) {
	var msg struct {
		Quarantined *bool  `json:"quarantined"`
		Reason      string `json:"reason"`
	}
	if err := json.Unmarshal(payload, &msg); err != nil || msg.Quarantined == nil {
		d.sim.log.Warn("quarantine status not understood, ignored", "device", d.id)
		return
	}
	if was := d.quarantined.Swap(*msg.Quarantined); was != *msg.Quarantined {
		if *msg.Quarantined {
			d.sim.log.Info("device quarantined by the hub", "device", d.id, "reason", msg.Reason)
		} else {
			d.sim.log.Info("device released by the hub", "device", d.id)
		}
	}
}
