package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file reads and checks an MQTT CONNECT packet from the raw bytes,
// before mochi sees it (MQTT 3.1.1 section 3.1, MQTT 5.0 section 3.1).
// mochi accepts some CONNECT packets the specifications say must be
// refused, and refuses some they allow; the guard in guard.go uses this
// to answer those the way the specifications say.

// MQTT control packet types (first nibble of the fixed header).
const (
	typeConnect    = 1
	typeConnack    = 2
	typeDisconnect = 14
)

// CONNACK codes the guard sends itself.
const (
	v3RefusedProtocol   = 0x01 // 3.1.1: unacceptable protocol version
	v3RefusedIdentifier = 0x02 // 3.1.1: identifier rejected
	v3NotAuthorized     = 0x05 // 3.1.1: not authorized
	v5Malformed         = 0x81
	v5ProtocolError     = 0x82
)

// errConnect is a CONNECT the guard refuses. code is the CONNACK code to
// send first, or 0 to close without a CONNACK (what 3.1.1 asks for a
// CONNECT that does not conform [MQTT-3.1.4-1]).
type errConnect struct {
	code   byte
	v5     bool // the code is an MQTT 5 reason code
	reason string
}

func (e *errConnect) Error() string { return "mqtt connect refused: " + e.reason }

// connectInfo is what the guard needs from a CONNECT packet.
type connectInfo struct {
	raw       []byte // the whole packet, as sent
	version   byte   // protocol level: 3, 4 or 5
	willFrom  int    // offsets in raw of the will fields (properties,
	willTo    int    // topic and payload); willTo == 0 when there is no will
	flagsAt   int    // offset in raw of the connect flags byte
	emptyWill bool   // the will flag is set and its payload is empty
}

// readConnect reads the first packet of a connection, which must be a
// CONNECT no longer than max bytes, and checks what mochi does not.
func readConnect(r io.Reader, max int) (*connectInfo, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return nil, fmt.Errorf("read connect: %w", err)
	}
	if hdr[0] != typeConnect<<4 { // the flags of CONNECT are 0 [MQTT-2.2.2-2]
		return nil, &errConnect{reason: "first packet is not a well-formed CONNECT"}
	}
	n, size := 1, 0
	for shift := 0; ; shift += 7 {
		if n == len(hdr) {
			return nil, &errConnect{reason: "malformed remaining length"}
		}
		if _, err := io.ReadFull(r, hdr[n:n+1]); err != nil {
			return nil, fmt.Errorf("read connect: %w", err)
		}
		size |= int(hdr[n]&0x7f) << shift
		n++
		if hdr[n-1]&0x80 == 0 {
			break
		}
	}
	if size > max {
		return nil, &errConnect{reason: "CONNECT over the packet size limit"}
	}
	raw := make([]byte, n+size)
	copy(raw, hdr[:n])
	if _, err := io.ReadFull(r, raw[n:]); err != nil {
		return nil, fmt.Errorf("read connect: %w", err)
	}
	ci := &connectInfo{raw: raw}
	return ci, ci.parse(n)
}

// parse walks the variable header and payload of ci.raw from offset at.
func (ci *connectInfo) parse(at int) error {
	p := &cursor{b: ci.raw, at: at}
	name := p.str()
	ci.version = p.byte()
	if p.err != nil {
		return &errConnect{reason: "truncated CONNECT"}
	}
	switch {
	case name == "MQTT" && (ci.version == 4 || ci.version == 5), name == "MQIsdp" && ci.version == 3:
	case name == "MQTT" || name == "MQIsdp":
		// An unsupported level is told so in a 3.1.1 CONNACK: a client
		// of any version can read that [MQTT-3.1.2-2].
		return &errConnect{code: v3RefusedProtocol, reason: "unsupported protocol level"}
	default:
		return &errConnect{reason: "unknown protocol name"}
	}
	v5 := ci.version == 5
	bad := func(code byte, reason string) error {
		if !v5 {
			code = 0
		}
		return &errConnect{code: code, v5: v5, reason: reason}
	}
	ci.flagsAt = p.at
	flags := p.byte()
	p.skip(2) // keep alive
	if flags&0x01 != 0 {
		return bad(v5Malformed, "reserved connect flag set") // [MQTT-3.1.2-3]
	}
	will := flags&0x04 != 0
	willQoS := flags >> 3 & 0x03
	if !will && (willQoS != 0 || flags&0x20 != 0) {
		return bad(v5Malformed, "will QoS or retain set without the will flag") // [MQTT-3.1.2-11] [MQTT-3.1.2-13]
	}
	if willQoS == 3 {
		return bad(v5Malformed, "will QoS 3") // [MQTT-3.1.2-12]
	}
	if flags&0x40 != 0 && flags&0x80 == 0 && !v5 {
		return bad(0, "password flag without user name flag") // [MQTT-3.1.2-22]
	}
	if v5 {
		if msg := p.props(connectProps); msg != "" {
			return bad(v5ProtocolError, msg)
		}
	}
	id := p.str()
	if p.err != nil {
		return bad(v5Malformed, "truncated CONNECT")
	}
	if !v5 && id == "" && flags&0x02 == 0 {
		// [MQTT-3.1.3-8]
		return &errConnect{code: v3RefusedIdentifier, reason: "empty client id with a persistent session"}
	}
	if will {
		ci.willFrom = p.at
		if v5 {
			if msg := p.props(willProps); msg != "" {
				return bad(v5ProtocolError, msg)
			}
		}
		p.str()
		ci.emptyWill = len(p.bin()) == 0
		ci.willTo = p.at
	}
	if flags&0x80 != 0 {
		p.bin()
	}
	if flags&0x40 != 0 {
		p.bin()
	}
	if p.err != nil || p.at != len(p.b) {
		return bad(v5Malformed, "CONNECT length does not match its fields")
	}
	return nil
}

// withoutWill returns the packet with its will removed, for a will whose
// payload is empty: such a will carries no reading, so there is nothing to
// keep, and the connection goes ahead as if none had been set.
func (ci *connectInfo) withoutWill() []byte {
	_, n := remainingLength(ci.raw)
	body := make([]byte, 0, len(ci.raw))
	body = append(body, ci.raw[n:ci.flagsAt]...)
	body = append(body, ci.raw[ci.flagsAt]&^0x3c) // will flag, QoS and retain
	body = append(body, ci.raw[ci.flagsAt+1:ci.willFrom]...)
	body = append(body, ci.raw[ci.willTo:]...)
	out := []byte{ci.raw[0]}
	out = binary.AppendUvarint(out, uint64(len(body))) // MQTT's variable byte integer is the same encoding
	return append(out, body...)
}

// remainingLength decodes the fixed header of a complete packet: the
// remaining length and the header's size.
func remainingLength(b []byte) (size, n int) {
	v, k := binary.Uvarint(b[1:])
	return int(v), 1 + k
}

// Property identifiers allowed in a CONNECT and in its will, with the
// size class of their values (MQTT 5.0 section 2.2.2.2).
type propKind byte

const (
	propByte propKind = iota + 1
	propUint16
	propUint32
	propString
	propBinary
	propPair
)

var connectProps = map[byte]propKind{
	0x11: propUint32, // session expiry interval
	0x15: propString, // authentication method
	0x16: propBinary, // authentication data
	0x17: propByte,   // request problem information
	0x19: propByte,   // request response information
	0x21: propUint16, // receive maximum
	0x22: propUint16, // topic alias maximum
	0x26: propPair,   // user property
	0x27: propUint32, // maximum packet size
}

var willProps = map[byte]propKind{
	0x01: propByte,   // payload format indicator
	0x02: propUint32, // message expiry interval
	0x03: propString, // content type
	0x08: propString, // response topic
	0x09: propBinary, // correlation data
	0x18: propUint32, // will delay interval
	0x26: propPair,   // user property
}

// cursor reads MQTT's encodings from a byte slice; the first error sticks.
type cursor struct {
	b   []byte
	at  int
	err error
}

var errShort = errors.New("packet shorter than its fields")

func (p *cursor) take(n int) []byte {
	if p.err != nil || n < 0 || len(p.b)-p.at < n {
		p.err = errShort
		return nil
	}
	out := p.b[p.at : p.at+n]
	p.at += n
	return out
}

func (p *cursor) skip(n int) { p.take(n) }

func (p *cursor) byte() byte {
	if b := p.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (p *cursor) uint16() int {
	if b := p.take(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (p *cursor) bin() []byte { return p.take(p.uint16()) }

func (p *cursor) str() string { return string(p.bin()) }

func (p *cursor) varint() int {
	v := 0
	for shift := 0; shift < 28; shift += 7 {
		b := p.byte()
		v |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return v
		}
	}
	p.err = errShort
	return 0
}

// props walks a property list and returns what is wrong with it, or "".
// A property given twice (other than a user property) and a Receive
// Maximum or Maximum Packet Size of 0 are protocol errors (MQTT 5.0
// section 3.1.2.11); mochi keeps the last value instead.
func (p *cursor) props(allowed map[byte]propKind) string {
	n := p.varint()
	end := p.at + n
	if p.err != nil || end > len(p.b) {
		p.err = errShort
		return ""
	}
	var seen [256]bool
	for p.at < end && p.err == nil {
		id := p.varint()
		kind, ok := allowed[byte(id)]
		if id > 0x7f || !ok {
			return fmt.Sprintf("property %#x not allowed here", id)
		}
		if seen[id] && kind != propPair {
			return fmt.Sprintf("property %#x given more than once", id)
		}
		seen[id] = true
		switch kind {
		case propByte:
			p.byte()
		case propUint16:
			if v := p.uint16(); v == 0 && id == 0x21 {
				return "receive maximum 0"
			}
		case propUint32:
			v := p.take(4)
			if id == 0x27 && v != nil && bytes.Equal(v, []byte{0, 0, 0, 0}) {
				return "maximum packet size 0"
			}
		case propString, propBinary:
			p.bin()
		case propPair:
			p.bin()
			p.bin()
		}
	}
	if p.at != end {
		p.err = errShort
	}
	return ""
}
