package broker

import (
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// resumePublish publishes one reading to an app at a chosen point of its
// session's resume, once armed:
//
//   - atConnack: while mochi encodes the CONNACK, after it made the
//     client one publishes reach and before the hub parks the session;
//   - atResend: once mochi's resend has read the session (as its first
//     message is written), and the publish is then held just after mochi
//     stored the reading and before it marks it held, until the hub's
//     unpark is done (this hook runs after the hub's).
type resumePublish struct {
	mqtt.HookBase
	tb        *testBroker
	n         int // the reading
	atConnack bool
	armed     atomic.Bool
	pub       atomic.Bool // the reading is being published (atResend)
	entered   chan struct{} // the reading is stored, not yet held
	unparked  chan struct{}
	done      chan struct{} // the publish returned
}

func newResumePublish(tb *testBroker, n int, atConnack bool) *resumePublish {
	return &resumePublish{tb: tb, n: n, atConnack: atConnack,
		entered: make(chan struct{}), unparked: make(chan struct{}), done: make(chan struct{})}
}

func (h *resumePublish) ID() string { return "test-resume-publish" }
func (h *resumePublish) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnPacketSent || b == mqtt.OnQosPublish || b == mqtt.OnSessionEstablished
}

func (h *resumePublish) publish() {
	h.pub.Store(true)
	go func() {
		defer close(h.done)
		h.tb.PublishReading(devA, "temp", reading(h.n, 0))
	}()
}

func (h *resumePublish) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.atConnack && !cl.Net.Inline && pk.FixedHeader.Type == packets.Connack && h.armed.CompareAndSwap(true, false) {
		h.publish()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
		}
	}
	return pk
}

func (h *resumePublish) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if !h.atConnack && !cl.Net.Inline && pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Dup &&
		h.armed.CompareAndSwap(true, false) {
		h.publish()
		select {
		case <-h.entered:
		case <-time.After(5 * time.Second):
		}
	}
}

func (h *resumePublish) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if h.atConnack || cl.Net.Inline || pk.FixedHeader.Dup || !h.pub.CompareAndSwap(true, false) {
		return
	}
	close(h.entered)
	select {
	case <-h.unparked:
	case <-time.After(5 * time.Second):
	}
}

func (h *resumePublish) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	select {
	case <-h.entered:
		close(h.unparked)
	default:
	}
}

// TestResumePublishesFollowParked: a reading published to an app while
// its resumed session (Receive Maximum 8, hundreds of readings parked
// beyond it) is being resent or unparked goes out after the parked ones,
// once, and the maximum holds. mochi numbers a new connection's messages
// from 1, skipping the ids its session holds: the reading took a low id
// (1, as the app had acknowledged the first readings; or one of the
// parked ones' freed while they were out of the session), and unpark,
// which did not see it held (published at the CONNACK it was parked
// among the first; stored and not yet held when unpark looked, it kept
// its id), gave the parked readings fresh ids after it: on the code
// before, the reading came first after the resent ones ("reading 400
// came as the 0th, want 16").
func TestResumePublishesFollowParked(t *testing.T) {
	const rm, held = 8, 400
	for _, tc := range []struct {
		name      string
		atConnack bool
	}{{"at CONNACK", true}, {"during resend and unpark", false}} {
		t.Run(tc.name, func(t *testing.T) {
			app := &backlogApp{countedApp: countedApp{oneApp: oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}}}
			tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
			h := newResumePublish(tb, held, tc.atConnack)
			if err := tb.srv.AddHook(h, nil); err != nil {
				t.Fatal(err)
			}
			props := append(mqtttest.PropUint16(0x21, rm), mqtttest.PropUint32(0x11, 3600)...)
			c := dialApp(t, tb, app, true, false, props)
			for n := range held {
				tb.PublishReading(devA, "temp", reading(n, 0))
			}
			// The first ids acknowledged, the next rm sent and not: the
			// session holds ids rm+1 to held, mochi's numbering on the
			// next connection starts below them.
			r := &appReader{t: t, c: c, rm: rm}
			r.receive(seq(0, rm, nil), noAcks)
			r.ack()
			r.receive(seq(rm, 2*rm, nil), noAcks)
			c.Close()
			waitClosed(t, tb, app.id)

			h.armed.Store(true)
			c = dialApp(t, tb, app, true, true, props)
			r = &appReader{t: t, c: c, rm: rm}
			r.receive(seq(rm, 2*rm, nil), noAcks) // resent
			r.ack()
			r.receive(seq(2*rm, held+1, nil), ackAll)
			select {
			case <-h.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the publish during the resume did not return")
			}
			if h.armed.Load() {
				t.Fatal("the hook never published")
			}
			c.Send(mqtttest.Pingreq())
			expectWithin(t, c, mqtttest.PINGRESP, 5*time.Second, "PINGRESP, no reading more")
			if d := app.dropped.Load(); d != 0 {
				t.Fatalf("%d readings dropped for the app", d)
			}
		})
	}
}
