// Package mqtttest writes and reads raw MQTT packets for conformance tests:
// packets are encoded by hand from the specifications (MQTT 3.1.1 and
// 5.0), so a test can send what a real client library refuses to (a will
// QoS without a will, a property given twice) and check the exact bytes
// and reason codes a broker answers with.
package mqtttest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Packet types.
const (
	CONNECT     = 1
	CONNACK     = 2
	PUBLISH     = 3
	PUBACK      = 4
	PUBREC      = 5
	PUBREL      = 6
	PUBCOMP     = 7
	SUBSCRIBE   = 8
	SUBACK      = 9
	UNSUBSCRIBE = 10
	UNSUBACK    = 11
	PINGREQ     = 12
	PINGRESP    = 13
	DISCONNECT  = 14
)

// Will is the will of a Connect.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   []byte // encoded will properties (MQTT 5)
}

// Connect describes a CONNECT packet.
type Connect struct {
	Version            byte // protocol level: 4 is 3.1.1, 5 is 5.0
	ClientID           string
	Username, Password string // each flag is set when the field is not empty
	KeepAlive          uint16
	Persistent         bool // clear the clean session / clean start flag
	Will               *Will
	Props              []byte // encoded CONNECT properties (MQTT 5)
	ExtraFlags         byte   // flag bits OR'ed in, to break the rules
}

// Encode returns the packet's bytes.
func (c Connect) Encode() []byte {
	var b []byte
	b = appendString(b, "MQTT")
	b = append(b, c.Version)
	flags := c.ExtraFlags
	if !c.Persistent {
		flags |= 0x02
	}
	if c.Will != nil {
		flags |= 0x04 | c.Will.QoS<<3
		if c.Will.Retain {
			flags |= 0x20
		}
	}
	if c.Password != "" {
		flags |= 0x40
	}
	if c.Username != "" {
		flags |= 0x80
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, c.KeepAlive)
	if c.Version == 5 {
		b = appendProps(b, c.Props)
	}
	b = appendString(b, c.ClientID)
	if c.Will != nil {
		if c.Version == 5 {
			b = appendProps(b, c.Will.Props)
		}
		b = appendString(b, c.Will.Topic)
		b = appendString(b, string(c.Will.Payload))
	}
	if c.Username != "" {
		b = appendString(b, c.Username)
	}
	if c.Password != "" {
		b = appendString(b, c.Password)
	}
	return packet(CONNECT<<4, b)
}

// Publish returns a PUBLISH packet (id is left out for QoS 0).
func Publish(version byte, topic string, payload []byte, qos byte, id uint16, retain bool) []byte {
	first := byte(PUBLISH<<4) | qos<<1
	if retain {
		first |= 0x01
	}
	b := appendString(nil, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if version == 5 {
		b = append(b, 0) // no properties
	}
	return packet(first, append(b, payload...))
}

// Subscribe returns a SUBSCRIBE packet for one filter.
func Subscribe(version byte, id uint16, filter string, qos byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	if version == 5 {
		b = append(b, 0)
	}
	b = appendString(b, filter)
	return packet(SUBSCRIBE<<4|0x02, append(b, qos))
}

// SubscribeProps returns an MQTT 5 SUBSCRIBE packet for one filter with
// the given encoded properties (a Subscription Identifier, say) and
// subscription options (the QoS in the low bits).
func SubscribeProps(id uint16, filter string, options byte, props []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = appendProps(b, props)
	b = appendString(b, filter)
	return packet(SUBSCRIBE<<4|0x02, append(b, options))
}

// Unsubscribe returns an UNSUBSCRIBE packet for one filter.
func Unsubscribe(version byte, id uint16, filter string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	if version == 5 {
		b = append(b, 0)
	}
	return packet(UNSUBSCRIBE<<4|0x02, appendString(b, filter))
}

// Puback returns a PUBACK packet (success, no properties).
func Puback(id uint16) []byte {
	return packet(PUBACK<<4, binary.BigEndian.AppendUint16(nil, id))
}

// Pubrel returns a PUBREL packet (success, no properties): the second
// step of QoS 2's handshake, after the broker's PUBREC.
func Pubrel(id uint16) []byte {
	return packet(PUBREL<<4|0x02, binary.BigEndian.AppendUint16(nil, id))
}

// PropVarInt encodes a variable byte integer property (a Subscription
// Identifier, 0x0B).
func PropVarInt(id byte, v uint32) []byte { return binary.AppendUvarint([]byte{id}, uint64(v)) }

// Pingreq returns a PINGREQ packet.
func Pingreq() []byte { return []byte{PINGREQ << 4, 0} }

// Disconnect returns a DISCONNECT packet (normal disconnection).
func Disconnect() []byte { return []byte{DISCONNECT << 4, 0} }

// PropUint16 encodes a two-byte integer property.
func PropUint16(id byte, v uint16) []byte { return binary.BigEndian.AppendUint16([]byte{id}, v) }

// PropUint32 encodes a four-byte integer property.
func PropUint32(id byte, v uint32) []byte { return binary.BigEndian.AppendUint32([]byte{id}, v) }

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendProps(b, props []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(props))) // MQTT's variable byte integer
	return append(b, props...)
}

func packet(first byte, body []byte) []byte {
	b := binary.AppendUvarint([]byte{first}, uint64(len(body)))
	return append(b, body...)
}

// Packet is a packet read from the broker.
type Packet struct {
	Type  byte
	Flags byte
	Raw   []byte // the whole packet
	Body  []byte // after the fixed header
}

// ReasonCode is the CONNACK return code, or the reason code of a PUBACK,
// PUBREC or PUBCOMP (0 when left out) or DISCONNECT; for a SUBACK, the
// first granted code.
func (p Packet) ReasonCode(version byte) byte {
	switch p.Type {
	case CONNACK:
		if len(p.Body) >= 2 {
			return p.Body[1]
		}
	case PUBACK, PUBREC, PUBCOMP:
		if len(p.Body) >= 3 {
			return p.Body[2]
		}
	case SUBACK:
		at := 2
		if version == 5 && len(p.Body) > at {
			n, k := binary.Uvarint(p.Body[at:])
			at += k + int(n)
		}
		if len(p.Body) > at {
			return p.Body[at]
		}
	case DISCONNECT:
		if len(p.Body) >= 1 {
			return p.Body[0]
		}
	}
	return 0
}

// Conn is a raw connection to a broker.
type Conn struct {
	net.Conn
	r *bufio.Reader
	t testing.TB
}

// safety bounds a conformance test that would otherwise hang; it is never
// what a test asserts on.
const safety = 20 * time.Second

// Dial connects to addr (a loopback address in tests), from local when
// it is not nil.
func Dial(t testing.TB, addr string, local net.Addr) *Conn {
	t.Helper()
	d := net.Dialer{Timeout: safety, LocalAddr: local}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(safety))
	return &Conn{Conn: c, r: bufio.NewReader(c), t: t}
}

// Wrap makes a Conn of c (a connection the test dialled itself, say with
// its own socket options or over TLS), closed when the test ends.
func Wrap(t testing.TB, c net.Conn) *Conn {
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(safety))
	return &Conn{Conn: c, r: bufio.NewReader(c), t: t}
}

// Send writes raw bytes.
func (c *Conn) Send(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Next reads one packet; err is io.EOF (or a reset) once the broker closed
// the connection.
func (c *Conn) Next() (Packet, error) {
	first, err := c.r.ReadByte()
	if err != nil {
		return Packet{}, err
	}
	raw := []byte{first}
	size := 0
	for shift := 0; ; shift += 7 {
		b, err := c.r.ReadByte()
		if err != nil {
			return Packet{}, err
		}
		raw = append(raw, b)
		size |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		if shift > 21 {
			return Packet{}, errors.New("malformed remaining length")
		}
	}
	hn := len(raw)
	raw = append(raw, make([]byte, size)...)
	if _, err := io.ReadFull(c.r, raw[hn:]); err != nil {
		return Packet{}, err
	}
	return Packet{Type: first >> 4, Flags: first & 0x0f, Raw: raw, Body: raw[hn:]}, nil
}

// Expect reads one packet and fails the test unless it is of type typ.
func (c *Conn) Expect(typ byte) Packet {
	c.t.Helper()
	p, err := c.Next()
	if err != nil {
		c.t.Fatalf("want packet type %d, got %v", typ, err)
	}
	if p.Type != typ {
		c.t.Fatalf("want packet type %d, got % x", typ, p.Raw)
	}
	return p
}

// ExpectClosed fails the test unless the broker closes the connection
// without sending anything more.
func (c *Conn) ExpectClosed() {
	c.t.Helper()
	p, err := c.Next()
	if err == nil {
		c.t.Fatalf("want the connection closed, got packet % x", p.Raw)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", safety)
	}
}
