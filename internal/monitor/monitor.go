package monitor

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
)

// Config tunes the detectors and says what to do about alarms. Zero values
// take the defaults, which are chosen to raise no alarm on a day of
// ordinary traffic from the demo devices.
type Config struct {
	// Window is the length of one counting window (default one minute).
	Window time.Duration
	// RaiseAfter and ClearAfter are how many windows in a row must be bad
	// to raise a windowed alarm, and good to clear any alarm (defaults 3
	// and 5).
	RaiseAfter, ClearAfter int
	// WarmUp is how many windows a stream's learned baseline needs before
	// it may raise alarms (default 120).
	WarmUp int
	// Deviations is how many mean absolute deviations above the learned
	// mean count as unusual (default 8).
	Deviations float64
	// RateFactor is how far above the declared rate a window may go
	// before it counts (default 2); CriticalFactor makes it critical
	// (default 10). MinCount is the fewest messages in a window that can
	// breach a declared rate, so short windows do not turn one early
	// message into an alarm (default 3).
	RateFactor, CriticalFactor float64
	MinCount                   int
	// Per-window limits of the event detectors.
	WrongSecrets int // wrong secrets against one device id (default 10)
	Reconnects   int // connections of one device (default 20)
	Probes       int // publishes and subscriptions outside its namespace (default 5)
	Undeclared   int // readings on undeclared streams or fields (default 5)
	// WaveDevices and WaveShare: a wave is at least WaveDevices devices of
	// one type, and at least WaveShare of those seen, in trouble in the
	// same window (defaults 3 and 0.5).
	WaveDevices int
	WaveShare   float64
	// Policy maps severity to action (default DefaultPolicy). A choice
	// kept in Actions wins over it.
	Policy  Policy
	Actions ActionStore

	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
	// Log records alarms, actions and releases in the transparency log.
	Log auditlog.Recorder
	// Store keeps quarantines across restarts.
	Store Store
	// History keeps the counts of each device's windows; Keep is how long
	// (default 30 days, as the Learn page and the assessment say).
	History History
	Keep    time.Duration
	// Devices resolves a device's household for the log and notifications.
	Devices Devices
	// Revoker revokes a device's credential (the revoke action).
	Revoker Revoker
	// Control is told, with the device's id, that its quarantine status
	// changed, once the hold in memory is changed: the hub publishes the
	// device's control message, which it reads with HoldMessage.
	Control func(deviceID string)
	// Notifier sends alarms outside the hub (webhook, e-mail).
	Notifier Notifier
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	def(&c.RaiseAfter, 3)
	def(&c.ClearAfter, 5)
	def(&c.WarmUp, 120)
	deff(&c.Deviations, 8)
	deff(&c.RateFactor, 2)
	deff(&c.CriticalFactor, 10)
	def(&c.MinCount, 3)
	def(&c.WrongSecrets, 10)
	def(&c.Reconnects, 20)
	def(&c.Probes, 5)
	def(&c.Undeclared, 5)
	def(&c.WaveDevices, 3)
	deff(&c.WaveShare, 0.5)
	if c.Policy == nil {
		c.Policy = DefaultPolicy()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Keep <= 0 {
		c.Keep = DefaultKeep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultKeep is how long the monitor's per-window counts are kept.
const DefaultKeep = 30 * 24 * time.Hour

// Reading is what ingest reports about one reading: metadata, never the
// payload.
type Reading struct {
	Device string
	Type   string // the device type (its manifest), for fleet waves
	Stream string
	Size   int
	// PerMinute and MaxBytes are the stream's declared profile (0: none
	// declared, or the stream itself is undeclared).
	PerMinute float64
	MaxBytes  int
	// Undeclared is set when the reading was refused for an undeclared
	// stream or field.
	Undeclared bool
	// Off is set when the person's choice says the stream is not to be
	// collected, so the device was told to stop sending it.
	Off bool
	// At is when the reading arrived. Ingest has read the clock already;
	// passing it saves the monitor a second read (zero: the monitor's
	// clock).
	At time.Time
}

// Monitor runs the detectors and applies the actions. Its observation
// methods are safe for concurrent use and cheap enough for the reading
// path; everything slow happens in Run.
type Monitor struct {
	cfg    Config
	hash   hasher
	shards [nShards]shard
	win    int64 // window length in ns

	types typeTable
	names names

	restricted  sync.Map // device id → *restriction
	nRestricted atomic.Int32
	// holds is held across each change of a hold that pairs the store
	// with memory: a hold placed, changed or lifted here (store write,
	// then memory) and a Reload (store read, then memory). Without it a
	// Reload that read the store just before this node's own write would
	// drop the hold it just placed, or bring back one it just released.
	// Admit never takes it. Taken before a shard's lock, never after.
	holds sync.Mutex

	effects chan effect
	dropped atomic.Int64

	pending pending

	policyMu sync.RWMutex
	policy   Policy
	// policyChanged are told after ChangePolicy (OnPolicyChange).
	policyChanged []func()

	holdMu sync.RWMutex
	// holdChanged are told after this monitor stored a hold it placed,
	// changed or lifted (OnHoldChange).
	holdChanged []func(deviceID string)
}

const (
	shardBits = 6
	nShards   = 1 << shardBits
)

// shard holds the states of the devices whose id hashes to it.
type shard struct {
	mu sync.Mutex
	t  table
	_  [24]byte // keep shards on separate cache lines
}

// New returns a monitor. Call Load to restore quarantines, then Run.
func New(cfg Config) *Monitor {
	cfg.defaults()
	m := &Monitor{
		cfg:     cfg,
		hash:    newHasher(),
		win:     int64(cfg.Window),
		effects: make(chan effect, 4096),
		types:   typeTable{m: make(map[string]*typeState)},
		policy:  maps.Clone(cfg.Policy),
	}
	return m
}

// shard returns id's shard and hash.
func (m *Monitor) shard(id string) (*shard, uint64) {
	h := m.hash.hash(id)
	return &m.shards[h>>(64-shardBits)], h // the top bits: the table indexes by the low ones
}

// lookup returns id's state or nil, and its shard locked; the caller
// unlocks sh.mu.
func (m *Monitor) lookup(id string) (*shard, *deviceState) {
	sh, h := m.shard(id)
	sh.mu.Lock()
	return sh, sh.t.get(h, id)
}

// device returns the state of id, created if new, and its shard locked;
// the caller unlocks sh.mu.
func (m *Monitor) device(id string, now time.Time) (*shard, *deviceState) {
	sh, h := m.shard(id)
	sh.mu.Lock()
	d := sh.t.get(h, id)
	if d == nil {
		d = &deviceState{id: id}
		m.setWindow(d, m.windowOf(now))
		sh.t.put(h, d)
	}
	return sh, d
}

func (m *Monitor) windowOf(t time.Time) int64 { return t.UnixNano() / m.win }

// setWindow makes idx d's current window. The end is kept in nanoseconds
// so that a reading needs one comparison, not a division, to know its
// window is still open.
func (m *Monitor) setWindow(d *deviceState, idx int64) {
	d.win = idx
	d.winEnd = (idx + 1) * m.win
}

// Reading observes one reading, accepted or refused. It is on the
// ingest path, so it does no allocation, no float work and, when the
// caller passes the reading's time in r.At, no clock read: statistics
// wait until the window closes.
func (m *Monitor) Reading(r Reading) {
	now := r.At
	if now.IsZero() {
		now = m.cfg.Now()
	}
	ns := now.UnixNano()
	var out []effect
	sh, d := m.device(r.Device, now)
	if ns >= d.winEnd {
		out = m.advance(d, now, out)
	}
	if r.Type != "" && d.typ != r.Type {
		d.typ = m.names.intern(r.Type)
		m.types.seen(r.Type)
	}
	if r.Undeclared {
		d.undeclared++
	} else {
		d.stream(r.Stream, &m.names).observe(&r, ns)
	}
	sh.mu.Unlock()
	if len(out) > 0 {
		m.emit(out)
	}
}

// Connect observes an accepted connection of a device from addr, with
// the client id it chose.
func (m *Monitor) Connect(deviceID, clientID string, addr netip.Addr) {
	now := m.cfg.Now()
	var out []effect
	sh, d := m.device(deviceID, now)
	out = m.advance(d, now, out)
	out = m.connect(d, clientID, addr.Unmap(), now, out)
	sh.mu.Unlock()
	m.emit(out)
}

// Disconnect observes the end of a device's connection.
func (m *Monitor) Disconnect(deviceID, clientID string) {
	sh, d := m.lookup(deviceID)
	if d != nil {
		d.disconnect(clientID)
	}
	sh.mu.Unlock()
}

// AuthFailure observes a wrong secret given for deviceID. It counts only
// devices that exist: counting any name tried would let anyone grow the
// monitor's memory.
func (m *Monitor) AuthFailure(ctx context.Context, deviceID string) {
	if !m.known(deviceID) && m.cfg.Devices != nil {
		if _, err := m.cfg.Devices.Device(ctx, deviceID); err != nil {
			return
		}
	}
	m.event(deviceID, evWrongSecrets)
}

// AuthThrottled observes a login refused without a check because of
// earlier wrong secrets. It counts like a wrong secret, but only for a
// device the monitor already knows: looking the id up would undo the
// throttle's point, which is to make a flood cheap.
func (m *Monitor) AuthThrottled(deviceID string) {
	if m.known(deviceID) {
		m.event(deviceID, evWrongSecrets)
	}
}

func (m *Monitor) known(deviceID string) bool {
	sh, d := m.lookup(deviceID)
	sh.mu.Unlock()
	return d != nil
}

// Denied observes a publish, subscription, client id or will topic
// outside the device's namespace.
func (m *Monitor) Denied(deviceID string) {
	m.event(deviceID, evProbe)
}

func (m *Monitor) event(deviceID string, k evKind) {
	now := m.cfg.Now()
	var out []effect
	sh, d := m.device(deviceID, now)
	out = m.advance(d, now, out)
	d.ev[k].n++
	out = m.checkEvent(d, k, now, out)
	sh.mu.Unlock()
	m.emit(out)
}

// Tick closes the windows of every device that has gone quiet, so alarms
// clear and fleet waves are counted without waiting for the next reading.
// Run calls it once a window; tests call it with their own clock.
func (m *Monitor) Tick() {
	now := m.cfg.Now()
	var out []effect
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.t.each(func(d *deviceState) { out = m.advance(d, now, out) })
		sh.mu.Unlock()
	}
	out = m.types.evaluate(m, m.windowOf(now), out)
	m.emit(out)
}

// emit hands effects to Run. The reading path must never wait on the
// log or the network, so a full queue drops (and counts) the effect.
func (m *Monitor) emit(out []effect) {
	for _, e := range out {
		select {
		case m.effects <- e:
		default:
			m.dropped.Add(1)
		}
	}
}

// Run applies actions and records them until ctx ends. It also ticks once
// a window.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Keep what the windows closed so far counted; the store
			// gets a moment of its own after the hub stops.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			m.Flush(wctx)
			cancel()
			return
		case <-t.C:
			m.Tick()
			m.Flush(ctx)
		case e := <-m.effects:
			m.apply(ctx, e)
		}
	}
}

// Active returns the alarms raised and not yet cleared for a device.
func (m *Monitor) Active(deviceID string) []Alarm {
	sh, d := m.lookup(deviceID)
	defer sh.mu.Unlock()
	if d == nil {
		return nil
	}
	return d.active(m)
}

// Forget drops what the monitor keeps about erased devices (their holds
// went with their rows in the store).
func (m *Monitor) Forget(ids []string) {
	for _, id := range ids {
		sh, h := m.shard(id)
		sh.mu.Lock()
		sh.t.del(h, id)
		sh.mu.Unlock()
		// Under holds: a Reload that read the rows before the erasure
		// deleted them finishes first, so it cannot bring the hold back.
		m.holds.Lock()
		if _, ok := m.restricted.LoadAndDelete(id); ok {
			m.nRestricted.Add(-1)
		}
		m.holds.Unlock()
	}
}
