package monitor

import (
	"hash/maphash"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// maxStreams bounds the streams tracked per device; readings on further
// streams share the last slot, so a device inventing names cannot grow
// its state.
const maxStreams = 6

// maxConns and maxKnown bound the live connections and the known source
// addresses remembered per device.
const (
	maxConns = 4
	maxKnown = 4
)

// learnRate is the weight of a new window in a learned baseline: about
// the last fifty windows count, so a daily rhythm is followed while a
// sudden change stands out.
const learnRate = 0.02

// run tracks one detector's bad and good windows in a row and whether its
// alarm is up.
type run struct {
	bad, good uint8
	active    bool
	sev       Severity
	peak      float32
	limit     float32
}

// Windowed detectors per stream.
const (
	wDeclRate = iota
	wDeclSize
	wOff
	wRate
	wSize
	wGap
	nStreamRuns
)

var streamKinds = [nStreamRuns]Kind{KindDeclaredRate, KindDeclaredSize, KindIgnoresOff, KindUnusualRate, KindUnusualSize, KindUnusualGap}

// Event detectors per device: raised as soon as a window's count reaches
// the limit, cleared after quiet windows.
type evKind uint8

const (
	evWrongSecrets evKind = iota
	evProbe
	evReconnects
	evClone
	evTakeover
	evNewAddress
	evUndeclared
	nEvents
)

var eventKinds = [nEvents]Kind{KindWrongSecrets, KindProbe, KindReconnects, KindClone, KindTakeover, KindNewAddress, KindUndeclared}

type event struct {
	n uint32 // this window
	run
}

type streamState struct {
	name string
	// declared profile, as last reported by ingest
	perMinute float32
	maxBytes  uint32
	// the current window; the gaps between readings are summed at the
	// window's close from its first and last times (they telescope), so
	// a reading does no float work
	count, off, over uint32
	maxSize          uint32
	bytes            uint64
	ref              int64 // unix ns where the window's gaps start
	gapN             uint32
	lastAt           int64 // unix ns of the last reading, across windows
	// learned per window
	rate, size, gap baseline
	runs            [nStreamRuns]run
}

func (s *streamState) observe(r *Reading, now int64) {
	s.perMinute, s.maxBytes = float32(r.PerMinute), clampUint32(r.MaxBytes)
	if s.count == 0 {
		// The window's gaps run from the reading before its first, or
		// from its first when the stream has none before.
		s.ref = s.lastAt
		if s.ref == 0 {
			s.ref = now
		}
	}
	if s.lastAt != 0 {
		s.gapN++
	}
	s.count++
	size := clampUint32(r.Size)
	s.bytes += uint64(size)
	s.maxSize = max(s.maxSize, size)
	if s.maxBytes > 0 && size > s.maxBytes {
		s.over++
	}
	if r.Off {
		s.off++
	}
	s.lastAt = max(s.lastAt, now)
}

// clampUint32 returns v within [0, math.MaxUint32]. The comparison is made
// in uint64 so it also compiles, and clamps nothing it need not, where int
// is 32 bits (linux/arm, linux/386).
func clampUint32(v int) uint32 {
	return uint32(min(uint64(max(v, 0)), math.MaxUint32))
}

// gaps returns the window's mean gap between readings in seconds, and how
// many gaps it averages.
func (s *streamState) gaps() (float64, uint32) {
	if s.gapN == 0 {
		return 0, 0
	}
	return float64(s.lastAt-s.ref) / 1e9 / float64(s.gapN), s.gapN
}

type conn struct {
	client uint64 // hash of the client id
	addr   netip.Addr
}

// deviceState is one device's record. Its fields are ordered for size,
// the small ones last: the record must stay within the runtime's 640-byte
// size class (see TestDeviceStateSize).
type deviceState struct {
	id       string
	typ      string
	win      int64 // index of the current window
	winEnd   int64 // unix ns at which it closes
	heldSeen int64 // the hold's refusals already counted in a window
	// The first streams live in the record itself, so the usual reading
	// touches one allocation; further ones grow more.
	inline     [inlineStreams]streamState
	more       []streamState
	conns      [maxConns]conn
	known      [maxKnown]netip.Addr
	ev         [nEvents]event
	undeclared uint32 // readings refused as undeclared this window
	connects   uint32 // ever, saturating
	nInline    uint8
	nConns     uint8
	nKnown     uint8
	troubled   bool // a detector was bad in the current window
}

// inlineStreams is how many streams a device record holds without a
// second allocation. One: with two the record was 824 bytes (832 with
// the runtime's 8-byte header on objects over 512 bytes that hold
// pointers), in the 896-byte size class; with one, and its fields
// ordered, 616 (624), in the 640-byte class: 256 bytes less for every
// device. A device with more streams costs no more than before either
// (more grows by exactly one stream, 184 bytes in the 192-byte class:
// 640 + 192 against 896 for two streams, 640 + 384 against 896 + 192
// for three), at one more pointer followed for its second stream's
// readings. See docs/benchmarks.md, session 9.
const inlineStreams = 1

func (d *deviceState) nStreams() int { return int(d.nInline) + len(d.more) }

func (d *deviceState) streamAt(i int) *streamState {
	if i < inlineStreams {
		return &d.inline[i]
	}
	return &d.more[i-inlineStreams]
}

// stream returns the slot of the named stream, taking a new one if there
// is room. Names are interned, so the comparison reads bytes shared by
// every device rather than a copy of each device's own.
func (d *deviceState) stream(name string, in *names) *streamState {
	for i := range d.nInline {
		if d.inline[i].name == name {
			return &d.inline[i]
		}
	}
	for i := range d.more {
		if d.more[i].name == name {
			return &d.more[i]
		}
	}
	switch n := d.nStreams(); {
	case n == maxStreams:
		return d.streamAt(maxStreams - 1)
	case n < inlineStreams:
		d.inline[n].name = in.intern(name)
		d.nInline++
		return &d.inline[n]
	}
	// Grow by one: a new stream is rare, and spare capacity would cost
	// a whole stream's state per device.
	grown := make([]streamState, len(d.more)+1)
	copy(grown, d.more)
	grown[len(d.more)].name = in.intern(name)
	d.more = grown
	return &d.more[len(d.more)-1]
}

// names interns stream and type names. They come from manifests, so
// there are few; the table is bounded anyway, past which names are kept
// as given.
type names struct {
	mu sync.Mutex
	m  map[string]string
}

const maxNames = 4096

func (n *names) intern(s string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v, ok := n.m[s]; ok {
		return v
	}
	s = strings.Clone(s) // not a slice of a topic buffer
	if n.m == nil {
		n.m = make(map[string]string)
	}
	if len(n.m) < maxNames {
		n.m[s] = s
	}
	return s
}

var clientSeed = maphash.MakeSeed()

func (m *Monitor) connect(d *deviceState, clientID string, addr netip.Addr, now time.Time, out []effect) []effect {
	d.ev[evReconnects].n++
	out = m.checkEvent(d, evReconnects, now, out)
	h := maphash.String(clientSeed, clientID)

	// The same client id live from another address: someone else holding
	// the secret is taking the session over.
	replaced := false
	for i := 0; i < int(d.nConns); i++ {
		if d.conns[i].client == h {
			if d.conns[i].addr != addr {
				d.ev[evTakeover].n++
				out = m.checkEvent(d, evTakeover, now, out)
			}
			d.conns[i].addr = addr
			replaced = true
			break
		}
	}
	if !replaced {
		if int(d.nConns) == maxConns {
			copy(d.conns[:], d.conns[1:])
			d.nConns--
		}
		d.conns[d.nConns] = conn{client: h, addr: addr}
		d.nConns++
	}
	// Two places at once is judged when the window closes: a device that
	// moved networks may leave a dead connection behind for up to a
	// keep-alive period, but a clone stays.
	d.ev[evClone].n = max(d.ev[evClone].n, uint32(d.liveAddrs()))
	if !addr.IsValid() {
		return out // no address known (some proxies): nothing more to compare
	}

	known := false
	for i := 0; i < int(d.nKnown); i++ {
		if d.known[i] == addr {
			known = true
		}
	}
	if !known {
		// Only a device with a settled history can appear somewhere new.
		if d.connects >= 3 {
			d.ev[evNewAddress].n++
			out = m.checkEvent(d, evNewAddress, now, out)
		}
		if int(d.nKnown) == maxKnown {
			copy(d.known[:], d.known[1:])
			d.nKnown--
		}
		d.known[d.nKnown] = addr
		d.nKnown++
	}
	if d.connects < math.MaxUint32 {
		d.connects++
	}
	return out
}

func (d *deviceState) disconnect(clientID string) {
	h := maphash.String(clientSeed, clientID)
	for i := 0; i < int(d.nConns); i++ {
		if d.conns[i].client == h {
			copy(d.conns[i:], d.conns[i+1:d.nConns])
			d.nConns--
			d.conns[d.nConns] = conn{}
			return
		}
	}
}

// liveAddrs counts the distinct source addresses of live connections.
func (d *deviceState) liveAddrs() int {
	n := 0
	for i := 0; i < int(d.nConns); i++ {
		seen := false
		for j := 0; j < i; j++ {
			if d.conns[j].addr == d.conns[i].addr {
				seen = true
			}
		}
		if !seen {
			n++
		}
	}
	return n
}

func (m *Monitor) eventLimit(k evKind) (int, Severity) {
	c := &m.cfg
	switch k {
	case evWrongSecrets:
		return c.WrongSecrets, Warning
	case evProbe:
		return c.Probes, Warning
	case evReconnects:
		return c.Reconnects, Warning
	case evClone:
		return 2, Critical
	case evTakeover:
		// One takeover from a new address is a device that moved while
		// its old connection had not timed out; two holders of one secret
		// keep taking the session from each other.
		return 2, Critical
	case evNewAddress:
		return 1, Info
	case evUndeclared:
		return c.Undeclared, Warning
	}
	return math.MaxInt32, Info
}

// checkEvent raises an event detector's alarm as soon as its count in the
// current window reaches the limit.
func (m *Monitor) checkEvent(d *deviceState, k evKind, now time.Time, out []effect) []effect {
	e := &d.ev[k]
	lim, sev := m.eventLimit(k)
	if int64(e.n) < int64(lim) {
		return out
	}
	d.troubled = true
	e.good = 0
	e.peak = max(e.peak, float32(e.n))
	if e.active {
		return out
	}
	e.active, e.sev, e.limit = true, sev, float32(lim)
	return append(out, effect{op: opRaise, alarm: m.alarm(d, "", eventKinds[k], &e.run, now)})
}

func (m *Monitor) alarm(d *deviceState, stream string, k Kind, r *run, now time.Time) Alarm {
	return Alarm{Device: d.id, Type: d.typ, Kind: k, Severity: r.sev, Stream: stream,
		Observed: float64(r.peak), Limit: float64(r.limit), Window: m.cfg.Window, Raised: now}
}

// advance closes every window of d that ended before now.
func (m *Monitor) advance(d *deviceState, now time.Time, out []effect) []effect {
	idx := m.windowOf(now)
	if idx <= d.win {
		return out
	}
	// After this many idle windows every alarm has cleared and the state
	// is as settled as it will get; a long silence need not cost a loop
	// per window.
	limit := int64(m.cfg.RaiseAfter + m.cfg.ClearAfter + 2)
	for i := int64(0); i < min(idx-d.win, limit); i++ {
		out = m.closeWindow(d, d.win+i, now, out)
	}
	m.setWindow(d, idx)
	return out
}

func (m *Monitor) closeWindow(d *deviceState, idx int64, now time.Time, out []effect) []effect {
	m.keepWindow(d, idx)
	for i := range d.nStreams() {
		out = m.closeStream(d, d.streamAt(i), now, out)
	}
	d.ev[evUndeclared].n = d.undeclared
	out = m.checkEvent(d, evUndeclared, now, out)
	d.undeclared = 0
	out = m.closeClone(d, now, out)
	for k := range d.ev {
		e := &d.ev[k]
		quiet := e.n == 0
		if evKind(k) == evClone {
			quiet = e.bad == 0
		}
		if quiet && e.active {
			e.good++
			if int(e.good) >= m.cfg.ClearAfter {
				out = append(out, effect{op: opClear, alarm: m.alarm(d, "", eventKinds[k], &e.run, now)})
				e.run = run{}
			}
		}
		if e.active {
			d.troubled = true
		}
		e.n = 0
	}
	if d.troubled && d.typ != "" {
		m.types.troubled(d.typ, idx)
	}
	d.troubled = false
	return out
}

// closeClone judges the window for a clone: two source addresses live at
// once, in two windows in a row.
func (m *Monitor) closeClone(d *deviceState, now time.Time, out []effect) []effect {
	e := &d.ev[evClone]
	n := max(e.n, uint32(d.liveAddrs()))
	if n < 2 {
		e.bad = 0
		return out
	}
	d.troubled = true
	e.bad++
	e.good = 0
	e.peak = max(e.peak, float32(n))
	if !e.active && e.bad >= 2 {
		e.active, e.sev, e.limit = true, Critical, 1
		out = append(out, effect{op: opRaise, alarm: m.alarm(d, "", KindClone, &e.run, now)})
	}
	return out
}

// step moves a windowed detector on by one window and returns the effect
// of raising or clearing its alarm, if any.
func (m *Monitor) step(d *deviceState, s *streamState, i int, bad bool, obs, lim float64, sev Severity, now time.Time, out []effect) []effect {
	r := &s.runs[i]
	if bad {
		d.troubled = true
		r.good = 0
		if r.bad < math.MaxUint8 {
			r.bad++
		}
		r.peak = max(r.peak, float32(obs))
		r.limit = float32(lim)
		r.sev = max(r.sev, sev)
		if !r.active && int(r.bad) >= m.cfg.RaiseAfter {
			r.active = true
			out = append(out, effect{op: opRaise, alarm: m.alarm(d, s.name, streamKinds[i], r, now)})
		}
		return out
	}
	r.bad = 0
	if !r.active {
		r.peak, r.sev = 0, 0
		return out
	}
	d.troubled = true
	if r.good < math.MaxUint8 {
		r.good++
	}
	if int(r.good) >= m.cfg.ClearAfter {
		out = append(out, effect{op: opClear, alarm: m.alarm(d, s.name, streamKinds[i], r, now)})
		*r = run{}
	}
	return out
}

func (m *Monitor) closeStream(d *deviceState, s *streamState, now time.Time, out []effect) []effect {
	c := &m.cfg
	mins := c.Window.Minutes()
	cnt := float64(s.count)
	declBad := false
	if s.perMinute > 0 {
		declared := float64(s.perMinute) * mins
		lim := max(c.RateFactor*declared, float64(c.MinCount))
		bad := cnt > lim
		sev := Warning
		if cnt > max(lim, c.CriticalFactor*declared) {
			sev = Critical
		}
		out = m.step(d, s, wDeclRate, bad, cnt, lim, sev, now, out)
		declBad = declBad || bad
	}
	if s.maxBytes > 0 {
		bad := s.over > 0
		out = m.step(d, s, wDeclSize, bad, float64(s.maxSize), float64(s.maxBytes), Warning, now, out)
		declBad = declBad || bad
	}
	out = m.step(d, s, wOff, s.off > 0, float64(s.off), 0, Critical, now, out)

	warm := int(s.rate.n) >= c.WarmUp
	k := c.Deviations
	var meanSize float64
	if s.count > 0 {
		meanSize = float64(s.bytes) / cnt
	}
	gap, gapN := s.gaps()
	badRate := warm && s.rate.above(cnt, k, 1, float64(c.MinCount))
	badSize := warm && s.count > 0 && s.size.above(meanSize, k, 0.5, 64)
	badGap := warm && !badRate && gapN >= uint32(c.MinCount) && s.gap.below(gap, k, 0.8, 0)
	out = m.step(d, s, wRate, badRate, cnt, float64(s.rate.mean), Warning, now, out)
	out = m.step(d, s, wSize, badSize, meanSize, float64(s.size.mean), Warning, now, out)
	out = m.step(d, s, wGap, badGap, gap, float64(s.gap.mean), Warning, now, out)

	// Learn only from windows that look normal, so an attack is not
	// absorbed into what the device "usually" does.
	if s.off == 0 && !declBad && !badRate && !badSize && !badGap {
		s.rate.learn(cnt, learnRate)
		if s.count > 0 {
			s.size.learn(meanSize, learnRate)
		}
		if gapN > 0 {
			s.gap.learn(gap, learnRate)
		}
	}
	s.count, s.off, s.over, s.maxSize, s.bytes, s.ref, s.gapN = 0, 0, 0, 0, 0, 0, 0
	return out
}

// active lists d's raised alarms.
func (d *deviceState) active(m *Monitor) []Alarm {
	var out []Alarm
	now := m.cfg.Now()
	for i := range d.nStreams() {
		s := d.streamAt(i)
		for k := range s.runs {
			if s.runs[k].active {
				out = append(out, m.alarm(d, s.name, streamKinds[k], &s.runs[k], now))
			}
		}
	}
	for k := range d.ev {
		if d.ev[k].active {
			out = append(out, m.alarm(d, "", eventKinds[k], &d.ev[k].run, now))
		}
	}
	return out
}
