package broker

import (
	"bytes"
	"errors"
	"testing"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// FuzzReadConnect feeds arbitrary first packets to the guard's CONNECT
// reader: it must never panic or read past the packet, and a CONNECT it
// accepts with an empty will must still be valid once the will is removed.
func FuzzReadConnect(f *testing.F) {
	will := &mqtttest.Will{Topic: "candor/dev_a/status", Payload: []byte(`{"online":false}`), QoS: 1}
	for _, c := range []mqtttest.Connect{
		{Version: 4, ClientID: "dev_a", Username: "dev_a", Password: "s3cret"},
		{Version: 5, ClientID: "dev_a", Username: "dev_a", Password: "s3cret", Will: will},
		{Version: 5, ClientID: "dev_a", Username: "dev_a", Password: "s3cret", Props: mqtttest.PropUint16(0x21, 0)},
		{Version: 4, ClientID: "dev_a", Will: &mqtttest.Will{Topic: "candor/dev_a/status"}},
		{Version: 5, ClientID: "dev_a", Will: &mqtttest.Will{Topic: "t", Props: mqtttest.PropUint32(0x18, 5)}},
		{Version: 4, ExtraFlags: 0x18},
	} {
		f.Add(c.Encode())
	}
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0xc0, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		ci, err := readConnect(r, 1<<16)
		if ci != nil && len(ci.raw) != len(b)-r.Len() {
			t.Fatalf("packet of %d bytes, %d read", len(ci.raw), len(b)-r.Len())
		}
		var ec *errConnect
		if err != nil && ci != nil && !errors.As(err, &ec) {
			t.Fatalf("read error %v with a packet", err)
		}
		if err != nil || !ci.emptyWill {
			return
		}
		out := ci.withoutWill()
		again, err := readConnect(bytes.NewReader(out), 1<<16)
		if err != nil || again.willTo != 0 || len(again.raw) != len(out) {
			t.Fatalf("CONNECT without its empty will: % x: %v", out, err)
		}
	})
}
