package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the limits before login.
const (
	DefaultConnectTimeout    = 5 * time.Second
	DefaultPendingPerAddress = 16
)

// guard stands between every listener and mochi. Before login it bounds
// what a connection may cost: it must send a complete, valid CONNECT within
// the connect timeout, and one address may hold only so many connections
// that have not logged in yet. It also answers what mochi gets wrong about
// MQTT on the wire: CONNECT packets the specifications say to refuse,
// CONNACK codes 3.1.1 does not have, and DISCONNECT packets sent to 3.1.1
// clients (3.1.1 has no server DISCONNECT).
//
// Connections that have logged in are no longer counted, so a flood of
// strangers from one address delays no known device (though a device
// behind that same address shares its pending limit).
type guard struct {
	timeout   time.Duration
	perAddr   int
	maxPacket int
	bridgeMax int // a bridge's limit once logged in (bridge.go)
	log       *slog.Logger
	closed    *prometheus.CounterVec

	mu      sync.Mutex
	pending map[string]int
	// At shutdown no connection may be handed to mochi any more: a
	// handover racing the server's Close is a data race inside mochi.
	// conns are the connections the guard holds (reading their CONNECT
	// or handed over), live counts handovers whose mochi connection has
	// not ended yet.
	closing bool
	conns   map[*guardConn]struct{}
	held    sync.WaitGroup // connections in conns
	live    sync.WaitGroup
}

func newGuard(timeout time.Duration, perAddr, maxPacket int, log *slog.Logger) *guard {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	if perAddr <= 0 {
		perAddr = DefaultPendingPerAddress
	}
	return &guard{
		timeout: timeout, perAddr: perAddr, maxPacket: maxPacket, log: log,
		pending: map[string]int{}, conns: map[*guardConn]struct{}{},
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_mqtt_preauth_closed_total",
			Help: "MQTT connections closed before login: too many pending from one address, no CONNECT in time, or an invalid CONNECT.",
		}, []string{"reason"}),
	}
}

// guardedListener puts a mochi listener's connections through the guard.
type guardedListener struct {
	listeners.Listener
	g *guard
}

func (l guardedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error { return l.g.establish(id, c, establish) })
}

// addrKey groups connections by the address they come from; an IPv6 host
// usually holds a whole /64, so that is one address here.
func addrKey(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

func (g *guard) acquire(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending[key] >= g.perAddr {
		return false
	}
	g.pending[key]++
	return true
}

func (g *guard) release(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending[key] <= 1 {
		delete(g.pending, key)
		return
	}
	g.pending[key]--
}

// pendingCount reports how many connections from key have not logged in.
func (g *guard) pendingCount(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending[key]
}

func (g *guard) refuse(c net.Conn, reason string) error {
	g.closed.WithLabelValues(reason).Inc()
	g.log.Debug("mqtt connection closed before login", "reason", reason)
	_ = c.Close()
	return nil // counted here; mochi would log every one, which a flood turns into a log flood
}

// establish reads and checks the CONNECT under the deadline, then hands the
// connection to mochi with the CONNECT replayed in front of it.
func (g *guard) establish(id string, c net.Conn, next listeners.EstablishFn) error {
	key := addrKey(c.RemoteAddr())
	if !g.acquire(key) {
		return g.refuse(c, "pending_limit")
	}
	gc := &guardConn{Conn: c, g: g, key: key, watch: !deadlineBounds(c)}
	gc.relBusy()        // this goroutine becomes mochi's for the connection (release.go)
	defer gc.loggedIn() // releases the slot if the connection ends before login
	if !g.track(gc) {
		return g.refuse(c, "shutting_down")
	}
	defer g.untrack(gc)
	// One deadline for everything before the CONNECT is complete,
	// including a TLS handshake, so trickling bytes does not extend it.
	_ = c.SetDeadline(time.Now().Add(g.timeout))
	ci, err := readConnect(c, g.maxPacket)
	if err != nil {
		var ec *errConnect
		var ne net.Error
		switch {
		case errors.As(err, &ec):
			if ec.code != 0 {
				_, _ = c.Write(connack(ec.v5, ec.code))
			}
			return g.refuse(c, "invalid_connect")
		// The WebSocket library reports the deadline as a plain net.Error.
		case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			return g.refuse(c, "connect_timeout")
		}
		return g.refuse(c, "connect_read_error")
	}
	_ = c.SetDeadline(time.Time{}) // mochi sets its own from the keep-alive
	raw := ci.raw
	if ci.emptyWill {
		raw = ci.withoutWill()
	}
	gc.v5 = ci.version == 5
	gc.in = bytes.NewReader(raw)
	gc.sock = newSockReader(c)
	if !g.handOver() {
		return g.refuse(c, "shutting_down")
	}
	defer g.live.Done()
	return next(id, gc)
}

// track holds c until untrack, unless the guard is shutting down.
func (g *guard) track(c *guardConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.conns[c] = struct{}{}
	g.held.Add(1)
	return true
}

// untrack lets go of c, which has ended: its pending slot too.
func (g *guard) untrack(c *guardConn) {
	c.loggedIn()
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.held.Done()
}

// handOver reports whether a connection may go to mochi, and counts it
// as live if so.
func (g *guard) handOver() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.live.Add(1)
	return true
}

// drain stops handing connections to mochi, closes every connection the
// guard still holds, and waits (until deadline) for mochi to be done with
// those it was handed and for the rest to end, so the server's Close
// races no connection that is still starting.
func (g *guard) drain(deadline time.Time) bool {
	g.mu.Lock()
	g.closing = true
	for c := range g.conns {
		_ = c.Conn.Close()
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.live.Wait(); g.held.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}

// connack encodes a refusing CONNACK (no session, no properties).
func connack(v5 bool, code byte) []byte {
	if v5 {
		return []byte{typeConnack << 4, 3, 0, code, 0}
	}
	return []byte{typeConnack << 4, 2, 0, code}
}

// guardConn is a connection as mochi sees it: the CONNECT the guard read
// is replayed first, and outgoing packets pass a filter that speaks the
// client's protocol version.
type guardConn struct {
	net.Conn
	g    *guard
	key  string
	in   *bytes.Reader // the CONNECT; read only by mochi's read loop
	v5   bool
	once sync.Once

	mu      sync.Mutex
	out     outFilter
	acked   bool // the CONNACK went out
	refused bool // the CONNACK refused: nothing more goes out
	broken  bool // a write failed: nothing more goes out (writeFailed)
	// watch: a write deadline cannot bound this connection's writes (a
	// WebSocket: its library sets its own deadline on the socket for
	// every frame), so each write is bounded by a timer instead. (Next
	// to the other flags, in what would be padding; see writeBy.)
	watch bool
	big   atomic.Bool // a bridge logged in: bridgeMax holds (here for size too)

	answer []byte // a CONNACK to send instead of mochi's refusal
	buf    []byte
	// tail is the rest of a PUBACK the ack queue's non-blocking write
	// (tryWrite) got into the socket only in part: the stream is in the
	// middle of that packet until tail is sent, so every write sends it
	// first (sendTail), and the ack queue's run goroutine sends it if no
	// write comes (finishTail). It is never sent by the goroutine that
	// left it, which must not wait for the socket (the batcher's, the
	// read loop). Under mu.
	tail []byte

	// dev is set when a device logs in on this connection (nil for an
	// app, or before login); see deviceConn.
	dev *deviceConn

	// ids: the packet ids moved apart from the hub's, held messages and
	// the like (packetid.go); nil until first needed (a pointer: most
	// connections never need one, and each connection's struct is kept
	// small).
	ids atomic.Pointer[packetIDs]
	// closed: Close has begun; nothing is parked after (unpark).
	closed atomic.Bool
	// bye: a DISCONNECT went to the client (MQTT 5 only: a 3.1.1 client
	// gets none; set by Write, which looks for one among the packets of
	// every write, and tooLarge), after which
	// MQTT 5 allows nothing more [MQTT-3.14.4-1]; Close flushes no PUBACKs.
	bye atomic.Bool

	sizes inSizes     // the packets after the CONNECT (read loop only)
	sock  *sockReader // a plain TCP socket's reads (readbuf.go); nil otherwise

	// relMu: whoever sends the session's held messages holds it; the
	// connection's goroutine does except while it waits for the client
	// (relOwned, its own field), and a release goroutine (relWrite) a kick
	// started may meanwhile. relWant: a kick found it held; relCl: the
	// client to release for; pend: messages not yet written or held.
	// See release.go.
	relMu    sync.Mutex
	relOwned bool
	relWant  atomic.Bool
	relCl    atomic.Pointer[mqtt.Client]
	pend     atomic.Pointer[pendingPubs]
	// pinnedOn: the session whose send quota is kept at 0 (pinSendQuota),
	// so that mochi holds every message of the hub's and release.go sends
	// it; nil if none is.
	pinnedOn atomic.Pointer[mqtt.Inflight]

	// writeBy is the write deadline armed (under mu; see armWrite), as
	// an offset on the monotonic clock from monoEpoch: 8 bytes where a
	// time.Time takes 24, which with watch and big moved among the flags keeps
	// guardConn in the 320-byte size class instead of 352 (one per
	// connection; docs/benchmarks.md, session 9).
	writeBy time.Duration
}

// monoEpoch is the origin of guardConn.writeBy. It carries a monotonic
// reading, so monoEpoch.Add(d) does too, and deadlines and comparisons
// made from it are unaffected by changes of the wall clock, as
// time.Time's were.
var monoEpoch = time.Now()

// writeTimeout bounds how long a write to a client may wait for the client
// to read. mochi's only write deadline is the keep-alive's (1.5 times the
// keep-alive from the last packet read, none at all for a keep-alive of
// 0), and a write that waits holds the client's lock, which every publish
// to the client takes for its packet id: a device that stopped reading
// would hold up whoever publishes to it (a consent change, a hold) for as
// long as it liked. Past this the write fails and mochi ends the
// connection. It does not follow the client's keep-alive (tried in
// session 6 as max(30 s, 1.5 × keep-alive)): the keep-alive is the
// client's to choose, up to 65535 s, and this bound is also how long a
// publisher to the client may wait, some of them under hub-wide locks
// (consent's listeners, the monitor's holds), so the client must not set
// it (TestLongKeepAliveCannotHoldPublishes). A variable for tests.
var writeTimeout = 30 * time.Second

// SetDeadline takes mochi's keep-alive deadline (refreshDeadline, after
// every packet read) for reads only: writes have their own (armWrite). One
// timer to re-arm per packet instead of two.
func (c *guardConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// deadlineBounds reports whether a write deadline set on c bounds its
// writes: a plain TCP or TLS connection. A WebSocket connection's library
// resets the socket's deadline for every frame it writes.
func deadlineBounds(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *tls.Conn:
		return true
	}
	return false
}

// boundWrite bounds the writes that follow to writeTimeout and returns
// what ends the bound: a write deadline where the connection has one
// (plain TCP, TLS), else a timer that closes the connection (WebSocket,
// whose library sets none). Every blocking write holds mu, which mochi's
// write loop, and through its client lock publishers to this client,
// wait for. Called with mu held.
func (c *guardConn) boundWrite() (stop func()) {
	if c.watch {
		t := time.AfterFunc(writeTimeout, func() { _ = c.Conn.Close() })
		return func() { t.Stop() }
	}
	c.armWrite()
	return func() {}
}

// armWrite keeps the write deadline between writeTimeout/2 and
// writeTimeout ahead of a write, re-arming the timer only when it comes
// nearer than that, not on every write. Called with mu held.
func (c *guardConn) armWrite() {
	now := time.Since(monoEpoch)
	if now+writeTimeout/2 < c.writeBy {
		return
	}
	c.writeBy = now + writeTimeout
	_ = c.Conn.SetWriteDeadline(monoEpoch.Add(c.writeBy))
}

// loggedIn releases the connection's pending slot; the hook calls it once
// the device is authenticated, establish when the connection ends.
func (c *guardConn) loggedIn() { c.once.Do(func() { c.g.release(c.key) }) }

// refuseWith makes the connection's refusing CONNACK carry code (v5) or
// v3code (3.1.1) instead of mochi's "bad user name or password".
func (c *guardConn) refuseWith(code, v3code byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.v5 {
		c.answer = connack(true, code)
	} else {
		c.answer = connack(false, v3code)
	}
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.in != nil {
		n, _ := c.in.Read(p)
		if c.in.Len() == 0 {
			// Read: let go of the CONNECT's bytes, which an idle
			// connection would otherwise hold for its lifetime.
			c.in = nil
		}
		if n > 0 {
			return n, nil
		}
	}
	if c.sock != nil && c.sock.buffered() {
		return c.handOn(p, c.sock.take(p), nil)
	}
	if c.dev != nil {
		// Whatever was read from the socket has been handed on and mochi
		// asks for more, so the read loop is about to wait for the
		// client: the PUBACKs gathered from what it read go out now
		// (ackQueue.rbuf).
		if q := c.dev.acks.Load(); q != nil {
			q.flushBeforeRead()
		}
	}
	c.restoreReleased() // see packetid.go
	c.relIdle()         // held messages may be sent meanwhile (release.go)
	var n int
	var err error
	if c.sock != nil {
		n, err = c.sock.read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	c.relBusy()
	return c.handOn(p, n, err)
}

// handOn passes the n bytes read into p on to mochi, unless they begin a
// packet over the connection's limit.
func (c *guardConn) handOn(p []byte, n int, err error) (int, error) {
	if n > 0 && !c.sizes.fit(p[:n], c.limit()) {
		return 0, c.tooLarge()
	}
	return n, err
}

// outFilter follows the packet boundaries of the outgoing byte stream.
type outFilter struct {
	hdr  [5]byte
	nh   int  // bytes of the current fixed header seen
	body bool // inside the current packet's body
	left int  // body bytes still to come
	act  byte // what to do with the current packet
	held []byte
}

const (
	actPass byte = iota
	actDrop
	actHold // a CONNACK, decided on once complete
)

func (c *guardConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken || c.bye.Load() {
		// Nothing after a failed write, nor after a DISCONNECT: MQTT 5
		// lets the server send nothing more [MQTT-3.14.4-1].
		return 0, net.ErrClosed
	}
	defer c.boundWrite()()
	if err := c.sendTail(); err != nil {
		return 0, err
	}
	// mochi writes whole packets, one per Write or several gathered in
	// its buffer (while messages to the client are queued), a DISCONNECT
	// among them, not always first.
	end := 0 // where the DISCONNECT among p's packets ends, if there is one
	if c.acked && !c.refused && (c.v5 || c.dev != nil) {
		end = disconnectEnd(p)
	}
	if end > 0 {
		// MQTT 5 lets nothing follow the DISCONNECT [MQTT-3.14.4-1], and
		// a 3.1.1 connection (whose DISCONNECT the filter drops) is
		// closed right after it: the PUBACKs the hub owes go first.
		if err := c.sendAcks(); err != nil {
			return 0, err
		}
	}
	if c.v5 && c.acked && !c.refused {
		if end == 0 {
			n, err := c.Conn.Write(p) // nothing left to correct for MQTT 5
			return n, c.writeFailed(err)
		}
		// Nor what mochi's buffer holds behind it: a message to the
		// client queued after the DISCONNECT was, flushed with it.
		_, err := c.Conn.Write(p[:end])
		c.bye.Store(true)
		if err != nil {
			return 0, c.writeFailed(err)
		}
		return len(p), nil
	}
	out := c.filter(c.buf[:0], p)
	c.buf = out[:0]
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, c.writeFailed(err)
		}
	}
	return len(p), nil
}

// sendTail writes the rest of a PUBACK the socket took in part (tail)
// before anything else goes out, so no packet is written into its middle.
// It waits for the socket, as every write here does, within the write
// deadline. Called with mu held.
func (c *guardConn) sendTail() error {
	if len(c.tail) == 0 {
		return nil
	}
	c.armWrite() // tail is only left on a plain TCP socket, which a deadline bounds
	_, err := c.Conn.Write(c.tail)
	c.tail = nil
	return c.writeFailed(err)
}

// disconnectEnd returns where the first DISCONNECT among p's packets
// (whole MQTT packets) ends, 0 if p holds none. Only the fixed headers
// are read.
func disconnectEnd(p []byte) int {
	for i := 0; i < len(p); {
		rl, n := remainingLength(p[i:])
		if n <= 1 {
			return 0 // not whole packets: not mochi's
		}
		if p[i]>>4 == typeDisconnect {
			return min(i+n+rl, len(p))
		}
		i += n + rl
	}
	return 0
}

// sendAcks writes the rest of a cut PUBACK (sendTail) and every PUBACK
// the hub owes the client that can be sent now, ahead of a DISCONNECT or the close (flushHeld), after which none
// could be: the read loop's (ackQueue.rbuf), those waiting for the run
// goroutine's write (ackQueue.out) and those of readings in the queue that
// are answered by now (accepted in the bounded-window mode, committed, or
// refused). Their readings were accepted; a client never told so resends
// them on reconnecting, to be stored twice. Called with mu held, by a
// writer that already decided to wait for the socket (a DISCONNECT's; the
// close), so their write waits for it too, bounded as every write is. A
// failed write fails the caller's too (broken).
//
// Nothing else writes PUBACKs meanwhile: every write of them holds mu
// (tryWrite only tries it), and the run goroutine takes out only under mu
// (writeAcks). The read loop's rmu and the queue's mu are taken one after
// the other, never together: the read loop takes each while holding the
// other (push, flushRead), but never waits for mu while holding either.
// rbuf first: it is non-empty only while nothing is queued, and anything
// queued after it came later.
func (c *guardConn) sendAcks() error {
	if err := c.sendTail(); err != nil {
		return err
	}
	if c.dev == nil {
		return nil
	}
	q := c.dev.acks.Load()
	if q == nil {
		return nil
	}
	var acks []byte
	q.rmu.Lock()
	if len(q.rbuf) > 0 {
		acks = append(acks, q.rbuf...)
		q.rbuf = q.rbuf[:0]
	}
	q.rmu.Unlock()
	q.mu.Lock()
	// A non-blocking writer (drive) has out in hand and takes back what
	// its write left; it fails to get mu now and does not wait for it.
	for q.state.Load() == ackWriting {
		q.space.Wait()
	}
	q.encodeReady(math.MaxInt)
	if len(q.out) > 0 {
		acks = append(acks, q.out...)
		q.out = q.out[:0]
	}
	q.mu.Unlock()
	if len(acks) == 0 {
		return nil
	}
	_, err := c.Conn.Write(acks)
	return c.writeFailed(err)
}

// writeAcks writes the run goroutine's out, taken under mu, so that a
// writer of a DISCONNECT, which holds mu, finds there whatever the run
// goroutine has not written (sendAcks). Nothing after a failed write or a
// DISCONNECT, nor on a connection whose CONNACK did not accept it (as
// tryWrite and flushHeld). From taking out until the write returns, q is
// marked writing, so the read loop ending the connection (flushHeld)
// waits for this write instead of letting the close cut it.
func (c *guardConn) writeAcks(q *ackQueue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q.mu.Lock()
	out := q.out
	q.out = nil
	q.writing = len(out) > 0
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.writing = false
		if q.out == nil && cap(out) <= ackWriteMax*2 {
			q.out = out[:0]
		}
		q.mu.Unlock()
	}()
	if len(out) == 0 || c.broken || c.bye.Load() || !c.acked || c.refused {
		return
	}
	defer c.boundWrite()()
	if c.sendTail() != nil {
		return
	}
	_, err := c.Conn.Write(out)
	_ = c.writeFailed(err) // the connection ends; the client resends
}

// finishTail sends tail if no other write has: the ack queue's run
// goroutine calls it, with none of the queue's locks held, so only this
// connection's writers wait for the socket meanwhile. q (nil in tests
// without one) is marked writing meanwhile, as in writeAcks.
func (c *guardConn) finishTail(q *ackQueue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		c.tail = nil
		return
	}
	if len(c.tail) == 0 || q == nil {
		_ = c.sendTail()
		return
	}
	q.mu.Lock()
	q.writing = true
	q.mu.Unlock()
	_ = c.sendTail()
	q.mu.Lock()
	q.writing = false
	q.mu.Unlock()
}

// writeFailed ends the connection after a failed write: part of a packet
// may have gone out, so nothing after it could be read as MQTT, and mochi's
// write loop only logs a failed write and goes on to the next packet; so
// nothing more is written (broken), not even the PUBACKs the read loop
// flushes as the connection ends. The read loop then sees the connection
// closed and mochi cleans up.
func (c *guardConn) writeFailed(err error) error {
	if err != nil {
		c.broken = true
		if tc, ok := c.Conn.(*tls.Conn); ok {
			// Not tls.Conn.Close: it would try to send close_notify,
			// waiting up to 5 s more on the connection that just failed,
			// with the client's lock held.
			_ = tc.NetConn().Close()
		} else {
			_ = c.Conn.Close()
		}
	}
	return err
}

func (c *guardConn) filter(out, p []byte) []byte {
	f := &c.out
	emit := func(b []byte) {
		switch f.act {
		case actPass:
			out = append(out, b...)
		case actHold:
			f.held = append(f.held, b...)
		}
	}
	for len(p) > 0 {
		if f.body {
			k := min(f.left, len(p))
			emit(p[:k])
			f.left -= k
			p = p[k:]
			if f.left == 0 {
				out = c.endPacket(out)
			}
			continue
		}
		f.hdr[f.nh] = p[0]
		f.nh++
		p = p[1:]
		if f.nh == 1 || (f.hdr[f.nh-1]&0x80 != 0 && f.nh < len(f.hdr)) {
			continue
		}
		f.left, _ = remainingLength(f.hdr[:f.nh])
		f.act = c.action(f.hdr[0] >> 4)
		f.held = f.held[:0]
		emit(f.hdr[:f.nh])
		f.body = true
		if f.left == 0 {
			out = c.endPacket(out)
		}
	}
	return out
}

func (c *guardConn) action(typ byte) byte {
	switch {
	case c.refused:
		return actDrop
	case typ == typeConnack:
		return actHold
	case typ == typeDisconnect && !c.v5:
		// 3.1.1 has no DISCONNECT from the server: the connection is
		// closed right after, which is what 3.1.1 clients understand.
		return actDrop
	}
	return actPass
}

func (c *guardConn) endPacket(out []byte) []byte {
	f := &c.out
	f.body, f.nh = false, 0
	if f.act != actHold {
		return out
	}
	c.acked = true
	_, hn := remainingLength(f.held)
	code := byte(0xff) // a CONNACK too short to carry a code is not passed on
	if len(f.held) > hn+1 {
		code = f.held[hn+1]
	}
	switch {
	case c.answer != nil:
		c.refused = true
		return append(out, c.answer...)
	case !c.v5 && code > v3NotAuthorized:
		// A return code 3.1.1 does not define: close without a CONNACK,
		// as 3.1.1 asks for a CONNECT it cannot accept.
		c.refused = true
		return out
	case code != 0:
		c.refused = true
	}
	return append(out, f.held...)
}

// guardOf returns the guard's view of a mochi client's connection (nil for
// the inline client and for connections that did not come through it).
func guardOf(cl *mqtt.Client) *guardConn {
	gc, _ := cl.Net.Conn.(*guardConn)
	return gc
}
