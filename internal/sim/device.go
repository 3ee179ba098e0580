package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

var errConnectionLost = errors.New("connection lost")

// device is one simulated device: its model, its schedule and its counters.
// The model and the schedule belong to the device's goroutine; the control
// handler and Stats touch only atomics and the mutex-guarded last error.
type device struct {
	sim       *Simulator
	id        string
	secret    string
	kind      Kind
	model     model
	sched     *rand.Rand // scheduling and backoff jitter, kept apart from the model
	index     map[string]int
	paused    []atomic.Bool   // by stream index
	published []atomic.Uint64 // by stream index
	total     atomic.Uint64
	errors    atomic.Uint64
	connects  atomic.Uint64
	connected atomic.Bool

	mu      sync.Mutex
	lastErr string
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
	}
	for i, s := range d.kind.StreamSpecs {
		st.Streams[s.Name] = d.published[i].Load()
		if d.paused[i].Load() {
			st.Paused = append(st.Paused, s.Name)
		}
	}
	slices.Sort(st.Paused)
	d.mu.Lock()
	st.LastError = d.lastErr
	d.mu.Unlock()
	return st
}

// fail records an error. Errors never contain the secret or a payload.
func (d *device) fail(err error) {
	d.errors.Add(1)
	d.mu.Lock()
	d.lastErr = err.Error()
	d.mu.Unlock()
}

// run keeps the device connected and publishing until ctx is done.
func (d *device) run(ctx context.Context, delay time.Duration) {
	if !sleep(ctx, delay) {
		return
	}
	backoff := d.sim.minBack
	for {
		worked, err := d.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if worked {
			backoff = d.sim.minBack
		}
		if err == nil {
			err = errConnectionLost
		}
		d.fail(err)
		// Full jitter on the upper half keeps a fleet from reconnecting in step.
		wait := backoff/2 + time.Duration(d.sched.Int64N(int64(backoff/2)+1))
		d.sim.log.Warn("device offline, will retry", "device", d.id, "error", err, "retry_in", wait, "errors", d.errors.Load())
		if !sleep(ctx, wait) {
			return
		}
		backoff = min(backoff*2, d.sim.maxBack)
	}
}

// sleep waits for d or until ctx is done, reporting whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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

// session runs one MQTT connection: connect, subscribe to control, publish
// until ctx is done or the connection drops. worked reports whether the
// device got as far as publishing, so that backoff can start over.
func (d *device) session(ctx context.Context) (worked bool, err error) {
	conn, err := d.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	lost := make(chan error, 1)
	report := func(err error) {
		select {
		case lost <- err:
		default:
		}
	}
	cli := paho.NewClient(paho.ClientConfig{
		ClientID:          d.id,
		Conn:              conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){d.onControl},
		OnClientError:     report,
		OnServerDisconnect: func(p *paho.Disconnect) {
			report(fmt.Errorf("broker disconnected us: %s", reasonText(p.ReasonCode)))
		},
	})
	ca, err := cli.Connect(ctx, &paho.Connect{
		ClientID:     d.id,
		Username:     d.id,
		UsernameFlag: true,
		Password:     []byte(d.secret),
		PasswordFlag: true,
		KeepAlive:    keepAlive,
		CleanStart:   true,
	})
	if err != nil {
		// paho's own message carries only the broker's optional reason
		// string; the reason code says more.
		if ca != nil {
			return false, fmt.Errorf("connect refused: %s (reason 0x%02x)", reasonText(ca.ReasonCode), ca.ReasonCode)
		}
		return false, fmt.Errorf("connect: %w", err)
	}
	d.connected.Store(true)
	d.connects.Add(1)
	defer d.connected.Store(false)
	defer func() {
		// Disconnect closes the connection even if sending DISCONNECT fails.
		_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}()
	d.sim.log.Info("device connected", "device", d.id, "kind", d.kind.Name)

	// Without the control subscription the device could not be told to
	// stop, so it does not publish at all.
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: ControlFilter(d.id), QoS: 1}},
	}); err != nil {
		return false, fmt.Errorf("subscribe %s: %w", ControlFilter(d.id), err)
	}
	select {
	case <-ctx.Done():
		return true, nil
	case <-cli.Done():
		return false, lostError(lost)
	case <-time.After(controlGrace):
	}
	return true, d.publish(ctx, cli, lost)
}

// lostError is the reason a connection ended, if paho told us one.
func lostError(lost <-chan error) error {
	select {
	case err := <-lost:
		return fmt.Errorf("%w: %w", errConnectionLost, err)
	default:
		return errConnectionLost
	}
}

func reasonText(code byte) string {
	r := (&packets.Connack{ReasonCode: code}).Reason()
	if i := strings.Index(r, " - "); i > 0 {
		r = r[:i]
	}
	if r == "" {
		r = fmt.Sprintf("reason 0x%02x", code)
	}
	return r
}

// gap is the real time until the stream's next reading.
func (d *device) gap(st Stream) time.Duration {
	g := st.Interval
	if st.Event() {
		g += time.Duration(d.sched.Int64N(int64(st.MaxInterval - st.Interval)))
	}
	return time.Duration(float64(g) / d.sim.speed)
}

// publish sends readings on schedule until ctx is done (nil) or the
// connection is lost (an error).
func (d *device) publish(ctx context.Context, cli *paho.Client, lost <-chan error) error {
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
			return nil
		case <-cli.Done():
			return lostError(lost)
		case <-timer.C:
		}
		st := specs[i]
		d.model.advance(d.sim.simNow())
		if !d.paused[i].Load() {
			d.send(ctx, cli, i, st)
		}
		// Keep the rhythm, but after a stall skip what was missed rather
		// than sending a burst.
		next[i] = next[i].Add(d.gap(st))
		if now := time.Now(); next[i].Before(now) {
			next[i] = now.Add(d.gap(st))
		}
	}
}

func (d *device) send(ctx context.Context, cli *paho.Client, i int, st Stream) {
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
	_, err = cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: d.sim.qos, Payload: payload})
	if err != nil {
		if ctx.Err() == nil {
			d.fail(fmt.Errorf("publish %s: %w", topic, err))
			d.sim.log.Warn("publish failed", "device", d.id, "topic", topic, "error", err)
		}
		return
	}
	d.published[i].Add(1)
	d.total.Add(1)
}

// onControl handles a message on candor/<id>/control/<stream>:
// {"collect": false} stops the stream, {"collect": true} resumes it, and an
// empty payload (the hub clearing its retained message) resumes it too.
// Anything else is ignored and the stream keeps its state.
func (d *device) onControl(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	prefix := TopicRoot + "/" + d.id + "/control/"
	name, ok := strings.CutPrefix(p.Topic, prefix)
	if !ok {
		d.sim.log.Warn("message on unexpected topic ignored", "device", d.id, "topic", p.Topic)
		return false, nil
	}
	i, ok := d.index[name]
	if !ok {
		d.sim.log.Warn("control for unknown stream ignored", "device", d.id, "topic", p.Topic)
		return true, nil
	}
	collect := true
	if len(p.Payload) > 0 {
		var msg struct {
			Collect *bool `json:"collect"`
		}
		if err := json.Unmarshal(p.Payload, &msg); err != nil || msg.Collect == nil {
			d.sim.log.Warn("malformed control message ignored", "device", d.id, "topic", p.Topic, "bytes", len(p.Payload))
			return true, nil
		}
		collect = *msg.Collect
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
