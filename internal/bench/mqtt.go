package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MQTT 3.1.1 control packet types (section 2.2.1 of the specification).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingresp   = 13
	pktDisconnect = 14
)

// Limits of the lean client.
const (
	// MaxWindow is the largest number of unacknowledged QoS 1 publishes a
	// connection may have in flight.
	MaxWindow = 1024
	// maxIncoming bounds the size of a packet the client accepts.
	maxIncoming = 1 << 20
	// subscribeID is the packet id of the one SUBSCRIBE a sink sends; it
	// is above MaxWindow so it can never collide with a publish.
	subscribeID = 0xFFFF
	// sendBufferBytes is the kernel send buffer of each connection.
	sendBufferBytes = 8 << 10
	// writeBufferBytes is the client's own buffer in front of the socket.
	writeBufferBytes = 8 << 10
)

// ConnackError is a broker's refusal of a CONNECT (a non-zero CONNACK
// return code).
type ConnackError struct {
	Code byte
}

var connackReasons = map[byte]string{
	1: "unacceptable protocol version",
	2: "client identifier rejected",
	3: "server unavailable",
	4: "bad user name or password",
	5: "not authorized",
}

func (e *ConnackError) Error() string {
	reason, ok := connackReasons[e.Code]
	if !ok {
		reason = "unknown return code"
	}
	return fmt.Sprintf("broker refused the connection: CONNACK return code %d (%s)", e.Code, reason)
}

// ConnectOptions describe one client connection.
type ConnectOptions struct {
	ClientID string
	Username string // empty: no user name (anonymous)
	Password string
	// KeepAlive is sent in CONNECT; 0 asks the broker for no keep-alive.
	// The client sends no PINGREQ, so choose a value longer than the run.
	KeepAlive uint16
	// Window is how many QoS 1 publishes may be unacknowledged at once
	// (1..MaxWindow); 0 means 16.
	Window int
	// Timeout bounds dialling and waiting for CONNACK (default 10s).
	Timeout time.Duration
	// LocalIP, if set, is the source address to dial from: spreading many
	// connections over 127.0.0.x keeps one source address from running
	// out of ephemeral ports (about 28,000 per address on Linux).
	LocalIP net.IP
	// Small gives the connection small client buffers (an idle
	// connection: 100,000 of them with the 64 KiB read buffer a sink
	// needs would take 6 GiB of the bench's own memory).
	Small bool
	// OnMessage, if set, is called on the reader goroutine for every
	// PUBLISH the broker delivers (a subscription). topic and payload are
	// valid only during the call. QoS 1 deliveries are acknowledged after
	// it returns.
	OnMessage func(topic, payload []byte)

	// beforeRead, if set, runs on the reader goroutine before it reads
	// each packet after the handshake (a test holds the reader back with
	// it, as a busy machine does).
	beforeRead func()
}

// Conn is a lean MQTT 3.1.1 client connection: one writer (the caller of
// Publish) and one reader goroutine that handles PUBACK, SUBACK and
// incoming PUBLISH packets. It is not safe to Publish from several
// goroutines at once.
//
// Each PUBACK is timed twice, both in Unix ns of the wall clock:
//
//   - ackLat, the client-observed latency (the headline figure issue
//     #19's targets were written against): from the at given to
//     PublishAt to when the reader goroutine has parsed the PUBACK. Both
//     ends include time of the load generator's own: at is taken before
//     the payload is built, and at full speed before PublishAt waits for
//     a free packet id (which the reader frees only when it gets to run)
//     and before the message waits in the write buffer for the window to
//     fill; and the reader reads only when the Go scheduler and the OS
//     run it, which on a machine shared with the broker can be
//     milliseconds after the PUBACK arrived.
//   - sockLat, the latency at the client socket: from just before the
//     write(2) that sends the PUBLISH (stampWriter) to the kernel's
//     receive time of the read that brought the PUBACK's last byte
//     (rxReader; SO_TIMESTAMPNS on Linux). Neither end waits for the
//     load generator to be scheduled, so this is the broker's time plus
//     the loopback, which the generator's delays no longer inflate. It
//     is not measured off Linux or for Small connections (sockNA says
//     why).
type Conn struct {
	nc net.Conn
	r  *rxReader

	wmu     sync.Mutex // guards w, scratch and unsent (the reader writes PUBACKs)
	w       *bufio.Writer
	scratch []byte
	unsent  []uint16 // ids of QoS 1 publishes in w not yet handed to write(2)

	window  int
	free    chan uint16    // packet ids available for QoS 1 publishes
	sentAt  []atomic.Int64 // by id-1: the publish's at (ns), 0 when free
	wroteAt []atomic.Int64 // by id-1: just before the write(2) that sent it (ns), 0 before that
	acked   atomic.Int64
	ackLat  Histogram // written by the reader goroutine only; read after Close

	// sockLat, sockUnstamped: the latency at the client socket, and how
	// many PUBACKs came without a kernel receive time (reader goroutine
	// only; read after Close). sockLat is nil when sockNA says why the
	// connection does not measure it.
	sockLat       *Histogram
	sockUnstamped int64
	sockNA        string
	beforeRead    func()

	onMessage func(topic, payload []byte)
	subacks   chan byte

	closing atomic.Bool
	done    chan struct{} // closed when the reader goroutine ends
	err     error         // why the reader ended; read after done
}

// Dial connects to addr, sends CONNECT and waits for CONNACK. A refusal is
// returned as a *ConnackError.
func Dial(ctx context.Context, addr string, o ConnectOptions) (*Conn, error) {
	if o.Window == 0 {
		o.Window = 16
	}
	if o.Window < 1 || o.Window > MaxWindow {
		return nil, fmt.Errorf("mqtt connect %s: window %d is outside 1..%d", addr, o.Window, MaxWindow)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var d net.Dialer
	if o.LocalIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
		d.Control = bindNoPort
	}
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt connect %s as %q: %w", addr, o.ClientID, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// A fixed, modest send buffer (a device has little memory) keeps
		// a QoS 0 flood from parking megabytes per connection in the
		// kernel, which would only delay the end of the run.
		_ = tc.SetWriteBuffer(sendBufferBytes)
	}
	readSize, writeSize := 64<<10, writeBufferBytes
	var (
		src    rxSource = plainRx{nc}
		sockNA          = "not measured for small (idle) connections"
	)
	if o.Small {
		readSize, writeSize = 512, 512
	} else {
		src, sockNA = newRxSource(nc)
	}
	c := &Conn{
		nc:         nc,
		r:          newRxReader(src, readSize),
		window:     o.Window,
		free:       make(chan uint16, o.Window),
		sentAt:     make([]atomic.Int64, o.Window),
		wroteAt:    make([]atomic.Int64, o.Window),
		sockNA:     sockNA,
		beforeRead: o.beforeRead,
		onMessage:  o.OnMessage,
		subacks:    make(chan byte, 1),
		done:       make(chan struct{}),
	}
	if sockNA == "" {
		// 15 KiB, so only for connections that measure it.
		c.sockLat = new(Histogram)
	}
	c.w = bufio.NewWriterSize(stampWriter{c}, writeSize)
	for id := 1; id <= o.Window; id++ {
		c.free <- uint16(id)
	}
	if err := c.handshake(o); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("mqtt connect %s as %q: %w", addr, o.ClientID, err)
	}
	go c.readLoop()
	return c, nil
}

func (c *Conn) handshake(o ConnectOptions) error {
	deadline := time.Now().Add(o.Timeout)
	_ = c.nc.SetDeadline(deadline)
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	if _, err := c.nc.Write(AppendConnect(nil, o)); err != nil {
		return fmt.Errorf("send CONNECT: %w", err)
	}
	hdr, err := c.r.ReadByte()
	if err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	n, err := readRemainingLength(c.r)
	if err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if hdr>>4 != pktConnack || n != 2 {
		return fmt.Errorf("expected CONNACK, got packet type %d with %d bytes", hdr>>4, n)
	}
	var body [2]byte
	if _, err := io.ReadFull(c.r, body[:]); err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if body[1] != 0 {
		return &ConnackError{Code: body[1]}
	}
	return nil
}

// Publish writes a PUBLISH packet, stamped with the current time for the
// latency of its acknowledgement. See PublishAt.
func (c *Conn) Publish(topic string, payload []byte, qos byte) error {
	return c.PublishAt(topic, payload, qos, time.Now().UnixNano())
}

// PublishAt writes a PUBLISH packet into the connection's buffer. at is
// the send time (Unix ns) that the client-observed PUBACK latency is
// measured from; the latency at the client socket is measured from the
// write(2) instead (see Conn). For QoS 1 it first takes a free packet id,
// flushing and then waiting when the window is full; so a QoS 1
// publisher keeps up to Window messages in flight. QoS 0 packets leave
// when the buffer fills or on Flush.
func (c *Conn) PublishAt(topic string, payload []byte, qos byte, at int64) error {
	if qos > 1 {
		return fmt.Errorf("mqtt publish: QoS %d is not supported by the lean client", qos)
	}
	var id uint16
	if qos == 1 {
		select {
		case id = <-c.free:
		default:
			if err := c.Flush(); err != nil {
				return err
			}
			select {
			case id = <-c.free:
			case <-c.done:
				return c.readerErr()
			}
		}
		c.sentAt[id-1].Store(at)
	}
	c.wmu.Lock()
	if qos == 1 {
		c.unsent = append(c.unsent, id)
	}
	c.scratch = AppendPublish(c.scratch[:0], topic, payload, qos, id)
	_, err := c.w.Write(c.scratch)
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("mqtt publish to %s: %w", topic, err)
	}
	return nil
}

// Flush sends what is buffered.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	err := c.w.Flush()
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("mqtt flush: %w", err)
	}
	return nil
}

// WaitAcks flushes and waits until every QoS 1 publish has been
// acknowledged, the connection fails, or ctx ends.
func (c *Conn) WaitAcks(ctx context.Context) error {
	if err := c.Flush(); err != nil {
		return err
	}
	held := make([]uint16, 0, c.window)
	defer func() {
		for _, id := range held {
			c.free <- id
		}
	}()
	for len(held) < c.window {
		select {
		case id := <-c.free:
			held = append(held, id)
		case <-c.done:
			return c.readerErr()
		case <-ctx.Done():
			return fmt.Errorf("mqtt: %d publishes still unacknowledged: %w", c.window-len(held), ctx.Err())
		}
	}
	return nil
}

// Subscribe subscribes to filter and waits for the SUBACK.
func (c *Conn) Subscribe(ctx context.Context, filter string, qos byte) error {
	c.wmu.Lock()
	c.scratch = AppendSubscribe(c.scratch[:0], subscribeID, filter, qos)
	_, err := c.w.Write(c.scratch)
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("mqtt subscribe %s: %w", filter, err)
	}
	select {
	case code := <-c.subacks:
		if code == 0x80 {
			return fmt.Errorf("mqtt subscribe %s: refused by the broker (SUBACK 0x80)", filter)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("mqtt subscribe %s: %w", filter, c.readerErr())
	case <-ctx.Done():
		return fmt.Errorf("mqtt subscribe %s: no SUBACK: %w", filter, ctx.Err())
	}
}

// Acked is the number of QoS 1 publishes acknowledged so far.
func (c *Conn) Acked() int64 { return c.acked.Load() }

// AckLatency returns the client-observed PUBACK latencies. Call it only
// after Close or Disconnect, when the reader goroutine has ended.
func (c *Conn) AckLatency() *Histogram { return &c.ackLat }

// SocketAckLatency returns the PUBACK latencies at the client socket (see
// Conn) and how many PUBACKs it could not time for want of a kernel
// receive time; or, with h nil, why the connection does not measure them.
// Call it only after Close or Disconnect.
func (c *Conn) SocketAckLatency() (h *Histogram, unstamped int64, unavailable string) {
	return c.sockLat, c.sockUnstamped, c.sockNA
}

// stampWriter is what the connection's write buffer writes to: it stamps
// the QoS 1 publishes the buffer holds with the time right before the
// write(2) that sends them. A publish that straddles two writes (the
// buffer filled in its middle) gets the first one's time, which can only
// overstate its latency. It runs with wmu held, as every use of c.w does.
type stampWriter struct{ c *Conn }

func (s stampWriter) Write(p []byte) (int, error) {
	c := s.c
	if len(c.unsent) > 0 {
		now := time.Now().UnixNano()
		for _, id := range c.unsent {
			c.wroteAt[id-1].Store(now)
		}
		c.unsent = c.unsent[:0]
	}
	return c.nc.Write(p)
}

// Disconnect sends DISCONNECT and closes the connection. If the
// connection had already failed, it returns why.
func (c *Conn) Disconnect() error {
	select {
	case <-c.done:
		return c.Close()
	default:
	}
	// From here on the broker closing the connection is expected: it
	// does so on DISCONNECT, possibly before the reader learns why.
	c.closing.Store(true)
	c.wmu.Lock()
	_, err := c.w.Write([]byte{pktDisconnect << 4, 0})
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	_ = c.nc.Close()
	<-c.done
	if err != nil {
		return fmt.Errorf("mqtt disconnect: %w", err)
	}
	return nil
}

// Close closes the connection without DISCONNECT and waits for the reader
// goroutine. It returns the reader's error if the connection had failed
// before.
func (c *Conn) Close() error {
	failed := false
	select {
	case <-c.done:
		failed = !c.closing.Load()
	default:
	}
	c.closing.Store(true)
	_ = c.nc.Close()
	<-c.done
	if failed {
		return c.err
	}
	return nil
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

func (c *Conn) readerErr() error {
	<-c.done
	if c.err == nil {
		return errors.New("mqtt: connection closed")
	}
	return c.err
}

// readLoop reads packets until the connection ends.
func (c *Conn) readLoop() {
	defer close(c.done)
	var buf []byte
	for {
		if c.beforeRead != nil {
			c.beforeRead()
		}
		err := c.readPacket(&buf)
		if err != nil {
			if c.closing.Load() {
				return
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("broker closed the connection")
			}
			c.err = fmt.Errorf("mqtt read: %w", err)
			return
		}
	}
}

func (c *Conn) readPacket(buf *[]byte) error {
	hdr, err := c.r.ReadByte()
	if err != nil {
		return err
	}
	n, err := readRemainingLength(c.r)
	if err != nil {
		return err
	}
	if n > maxIncoming {
		return fmt.Errorf("packet of %d bytes is over the client's %d-byte limit", n, maxIncoming)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return err
	}
	switch hdr >> 4 {
	case pktPuback:
		if n < 2 {
			return errors.New("short PUBACK")
		}
		return c.ack(binary.BigEndian.Uint16(b))
	case pktPublish:
		return c.deliver(hdr, b)
	case pktSuback:
		if n < 3 {
			return errors.New("short SUBACK")
		}
		select {
		case c.subacks <- b[2]:
		default:
		}
		return nil
	case pktPingresp:
		return nil
	default:
		return fmt.Errorf("unexpected packet type %d", hdr>>4)
	}
}

// ack releases the packet id of an acknowledged publish.
func (c *Conn) ack(id uint16) error {
	if id == 0 || int(id) > c.window {
		return fmt.Errorf("PUBACK for packet id %d, which this client never uses", id)
	}
	at := c.sentAt[id-1].Swap(0)
	if at == 0 {
		return fmt.Errorf("PUBACK for packet id %d, which is not in flight", id)
	}
	wrote := c.wroteAt[id-1].Swap(0)
	c.ackLat.Record(time.Now().UnixNano() - at)
	if c.sockLat != nil {
		// The PUBACK's last byte was the last one consumed, so the
		// reader's stamp is that of the read that brought it.
		if rx := c.r.stamp(); rx != 0 && wrote != 0 {
			c.sockLat.Record(rx - wrote)
		} else {
			c.sockUnstamped++
		}
	}
	c.acked.Add(1)
	c.free <- id
	return nil
}

// deliver hands an incoming PUBLISH to OnMessage and acknowledges QoS 1.
func (c *Conn) deliver(hdr byte, b []byte) error {
	qos := (hdr >> 1) & 3
	if len(b) < 2 {
		return errors.New("short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(b))
	off := 2 + tl
	if qos > 0 {
		off += 2
	}
	if off > len(b) {
		return errors.New("malformed PUBLISH: topic longer than the packet")
	}
	if c.onMessage != nil {
		c.onMessage(b[2:2+tl], b[off:])
	}
	if qos == 0 {
		return nil
	}
	if qos != 1 {
		return fmt.Errorf("delivery at QoS %d is not supported by the lean client", qos)
	}
	id := b[2+tl : 2+tl+2]
	c.wmu.Lock()
	_, err := c.w.Write([]byte{pktPuback << 4, 2, id[0], id[1]})
	// Acknowledgements are batched: flush only when no more input is
	// already buffered, so none waits for the next packet to arrive.
	if err == nil && c.r.Buffered() == 0 {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	return err
}

// AppendConnect appends an MQTT 3.1.1 CONNECT packet (clean session).
func AppendConnect(dst []byte, o ConnectOptions) []byte {
	n := 10 + 2 + len(o.ClientID)
	flags := byte(0x02) // clean session
	if o.Username != "" {
		flags |= 0x80
		n += 2 + len(o.Username)
		if o.Password != "" {
			flags |= 0x40
			n += 2 + len(o.Password)
		}
	}
	dst = append(dst, pktConnect<<4)
	dst = appendRemainingLength(dst, n)
	dst = appendString(dst, "MQTT")
	dst = append(dst, 4, flags, byte(o.KeepAlive>>8), byte(o.KeepAlive))
	dst = appendString(dst, o.ClientID)
	if flags&0x80 != 0 {
		dst = appendString(dst, o.Username)
	}
	if flags&0x40 != 0 {
		dst = appendString(dst, o.Password)
	}
	return dst
}

// AppendPublish appends a PUBLISH packet. id is used only when qos > 0.
func AppendPublish(dst []byte, topic string, payload []byte, qos byte, id uint16) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	dst = append(dst, pktPublish<<4|qos<<1)
	dst = appendRemainingLength(dst, n)
	dst = appendString(dst, topic)
	if qos > 0 {
		dst = append(dst, byte(id>>8), byte(id))
	}
	return append(dst, payload...)
}

// AppendSubscribe appends a SUBSCRIBE packet for one filter.
func AppendSubscribe(dst []byte, id uint16, filter string, qos byte) []byte {
	dst = append(dst, pktSubscribe<<4|0x02)
	dst = appendRemainingLength(dst, 2+2+len(filter)+1)
	dst = append(dst, byte(id>>8), byte(id))
	dst = appendString(dst, filter)
	return append(dst, qos)
}

func appendString(dst []byte, s string) []byte {
	dst = append(dst, byte(len(s)>>8), byte(len(s)))
	return append(dst, s...)
}

func appendRemainingLength(dst []byte, n int) []byte {
	for {
		b := byte(n & 0x7F)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}

func readRemainingLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("malformed remaining length")
}
