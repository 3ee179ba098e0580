package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connackCodes is a mochi hook that gives a refused CONNECT the reason code
// the policy chose. mochi answers every refusal in OnConnectAuthenticate
// with "bad user name or password"; a device refused because too many
// credential checks were tried must be told to back off instead, so it
// retries later rather than reporting a wrong secret to its owner.
type connackCodes struct {
	mqtt.HookBase
	codes sync.Map // *mqtt.Client → packets.Code, until its CONNACK is encoded
}

// Refusal codes for a throttled credential check. MQTT 3.1.1 has neither,
// so it gets 0x03 "server unavailable", its only code that means "try
// again later".
var (
	codeRateExceeded = packets.Code{Code: packets.ErrConnectionRateExceeded.Code,
		Reason: "connection rate exceeded: too many credential checks; try again later"}
	codeServerBusy = packets.Code{Code: packets.ErrServerBusy.Code,
		Reason: "server busy: too many credential checks at once; try again later"}
)

func (c *connackCodes) ID() string { return "candor-connack" }

func (c *connackCodes) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

// refuseWith makes the CONNACK refusing cl carry code.
func (c *connackCodes) refuseWith(cl *mqtt.Client, code packets.Code) { c.codes.Store(cl, code) }

// OnPacketEncode also writes answers to packets whose id was moved under
// the client's own id (answerID, packetid.go): one hook that sees every
// packet written, not two.
func (c *connackCodes) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack {
		answerID(cl, &pk)
		return pk
	}
	v, ok := c.codes.LoadAndDelete(cl)
	if !ok || pk.ReasonCode == packets.CodeSuccess.Code {
		return pk
	}
	if cl.Properties.ProtocolVersion < 5 {
		pk.ReasonCode = packets.Err3ServerUnavailable.Code
		return pk
	}
	code := v.(packets.Code)
	pk.ReasonCode = code.Code
	pk.Properties.ReasonString = code.Reason
	return pk
}
