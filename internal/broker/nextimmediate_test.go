package broker

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// TestAcksWhilePublishingDoNotDeadlock: the hub publishes to a device with
// a Receive Maximum from two goroutines while the device acknowledges
// every message at once. mochi v2.7.9's read loop, after each packet,
// looks for a held message with Inflight.NextImmediate, which takes the
// session's read lock and then, through GetAll, takes it again; a publish
// storing a message (the write lock) between the two blocks behind the
// first and the second blocks behind it: the read loop and the publisher
// wait for each other for good.
func TestAcksWhilePublishingDoNotDeadlock(t *testing.T) {
	tb := startBroker(t)
	c := connectRM(t, tb, 8)
	const n, pubs = 4000, 2
	var got, sent atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for got.Load() < n*pubs {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			p, err := c.Next()
			if err != nil {
				readErr <- fmt.Errorf("after %d messages: %w", got.Load(), err)
				return
			}
			if p.Type != mqtttest.PUBLISH {
				continue
			}
			if p.Flags&0x06 == 0 || len(p.Body) < 2 || len(p.Body) < 2+int(binary.BigEndian.Uint16(p.Body))+2 {
				readErr <- fmt.Errorf("message %d: want a QoS 1 PUBLISH, got % x", got.Load(), p.Raw)
				return
			}
			got.Add(1)
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(mqtttest.Puback(binary.BigEndian.Uint16(p.Body[2+int(binary.BigEndian.Uint16(p.Body)):]))); err != nil {
				readErr <- fmt.Errorf("acknowledging message %d: %w", got.Load(), err)
				return
			}
		}
		readErr <- nil
	}()
	var wg sync.WaitGroup
	stuck := make(chan string, pubs)
	for g := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				// A few beyond the maximum at a time: held messages,
				// and publishes racing the read loop's PUBACKs.
				for sent.Load()-got.Load() > 12 {
					time.Sleep(20 * time.Microsecond)
				}
				sent.Add(1)
				done := make(chan error, 1)
				go func() {
					done <- tb.Publish(ControlTopic(devA, "temp"), fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i), false)
				}()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					stuck <- fmt.Sprintf("publisher %d blocked at message %d (%d received)", g, i, got.Load())
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case s := <-stuck:
		t.Fatal(s)
	default:
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
}

// mochiLooks counts, after each packet mochi handled for a client (its
// hooks run in the order added, so after the hub's), the times mochi is
// about to call Inflight.NextImmediate: the session holds messages and
// the client's send quota is above 0.
type mochiLooks struct {
	mqtt.HookBase
	packets, looks atomic.Int64
}

func (w *mochiLooks) ID() string           { return "test-mochi-looks" }
func (w *mochiLooks) Provides(b byte) bool { return b == mqtt.OnPacketProcessed }
func (w *mochiLooks) OnPacketProcessed(cl *mqtt.Client, _ packets.Packet, err error) {
	if cl.Net.Inline || err != nil {
		return
	}
	w.packets.Add(1)
	if cl.State.Inflight.Len() > 0 && sendQuota(cl) > 0 {
		w.looks.Add(1)
	}
}

// sendQuota reads mochi's unexported send quota (tests only: the hub
// never reads it).
func sendQuota(cl *mqtt.Client) int32 {
	f := reflect.ValueOf(cl.State.Inflight).Elem().FieldByName("sendQuota")
	return atomic.LoadInt32((*int32)(unsafe.Pointer(f.UnsafeAddr())))
}

// TestMochiNeverLooksForHeld: for a device and an app with a Receive
// Maximum, with messages in flight and acknowledged, mochi's read loop
// never reaches NextImmediate (the deadlock above needs it to); the
// messages still arrive, in order, never more than the maximum
// unacknowledged. On the code before, mochi looked after every PUBACK
// that left a message in flight.
func TestMochiNeverLooksForHeld(t *testing.T) {
	app := oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}
	for _, who := range []string{"device", "app"} {
		t.Run(who, func(t *testing.T) {
			tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
			w := &mochiLooks{}
			if err := tb.srv.AddHook(w, nil); err != nil {
				t.Fatal(err)
			}
			const rm, n = 3, 40
			var c *mqtttest.Conn
			publish := func(i int) {
				if who == "device" {
					publishWithin(t, tb, fmt.Appendf(nil, `{"n":%d}`, i))
				} else {
					tb.PublishReading(devA, "temp", fmt.Appendf(nil, `{"n":%d}`, i))
				}
			}
			if who == "device" {
				c = connectRM(t, tb, rm)
			} else {
				c = mqtttest.Dial(t, tb.addr, nil)
				c.Send(mqtttest.Connect{Version: 5, ClientID: app.id, Username: app.id, Password: app.secret,
					KeepAlive: 30, Props: mqtttest.PropUint16(0x21, rm)}.Encode())
				c.Expect(mqtttest.CONNACK)
				c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/+", 1))
				c.Expect(mqtttest.SUBACK)
			}
			for i := range n { // all in the same second or two
				publish(i)
			}
			next := 0
			for next < n {
				var ids []uint16
				for len(ids) < rm && next+len(ids) < n {
					p := expectWithin(t, c, mqtttest.PUBLISH, 10*time.Second, fmt.Sprintf("message %d", next+len(ids)))
					if got, want := payloadOf(p), fmt.Sprintf(`{"n":%d}`, next+len(ids)); got != want {
						t.Fatalf("got %s, want %s (in the order published)", got, want)
					}
					ids = append(ids, publishID(t, p))
				}
				if len(ids) == rm && next+rm < n {
					// The maximum is unacknowledged: nothing more may come.
					_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					if p, err := c.Next(); err == nil {
						t.Fatalf("a packet beyond the Receive Maximum %d: % x", rm, p.Raw)
					}
				}
				for _, id := range ids {
					c.Send(mqtttest.Puback(id))
				}
				next += len(ids)
			}
			// Every PUBACK above is handled once the PINGRESP comes (the
			// read loop handles packets in order).
			c.Send(mqtttest.Pingreq())
			expectWithin(t, c, mqtttest.PINGRESP, 10*time.Second, "PINGRESP")
			if w.packets.Load() < n {
				t.Fatalf("mochi handled %d packets, want at least %d", w.packets.Load(), n)
			}
			if l := w.looks.Load(); l != 0 {
				t.Fatalf("mochi looked for a held message %d times (of %d packets): NextImmediate can deadlock with a publish", l, w.packets.Load())
			}
		})
	}
}

// BenchmarkAppReadings: readings handed to an app, received and
// acknowledged, per op; up to 32 published ahead of those whose PUBACK
// the hub has handled. With a Receive Maximum (rm=64) every one goes
// through release.go (held, then sent by a release) since the quota is
// pinned; with none (rm=0) mochi sends each at once. (On the code before
// the pin, rm=64 stalls in seconds: NextImmediate's deadlock.)
//
// The window is counted from the PUBACKs the hub has handled, not from
// the readings the app received: the hub counts a reading in flight
// until its read loop has handled the PUBACK, and drops readings for an
// app with maxAppInflight in flight (appACL, counted by Apps.Dropped).
// Counted from receipt, the window bounded nothing on the hub's side:
// the publisher, mochi's write loop and the app's reader kept both cores
// busy, and the hub's read loop, parked in the network poller with the
// PUBACKs waiting in its socket, ran only every few milliseconds, when
// Go polled the network; up to 999 PUBACKs (3,996 bytes) were seen
// waiting unread while the app had at most 32 readings unacknowledged.
// At 1024 in flight the hub dropped readings, each shrinking the window
// by one for good: after 32 the publisher waited for a reading that
// would never come (rm=0 stalled after some 1,000 to 50,000 readings in
// about half the runs, with mochi's counters showing nothing dropped).
// The publisher also waits blocked, not spinning, so that the hub's
// goroutines get the cores it does not need.
//
//	go test -run '^$' -bench AppReadings -benchmem ./internal/broker/
func BenchmarkAppReadings(b *testing.B) {
	for _, rm := range []uint16{0, 64} {
		b.Run(fmt.Sprintf("rm=%d", rm), func(b *testing.B) { benchAppReadings(b, rm, 32) })
	}
}

// BenchmarkAppBacklog: as BenchmarkAppReadings, an app with a Receive
// Maximum of 64, but with its window full and held readings beyond it:
// the publisher keeps 64+held published ahead of the PUBACKs the hub has
// handled, so each reading released (claimHeld) is released from a
// session of some 64+held entries. What an app that fell behind pays per
// reading to catch up; below maxAppInflight (1024) nothing is dropped.
//
//	go test -run '^$' -bench AppBacklog -benchmem ./internal/broker/
func BenchmarkAppBacklog(b *testing.B) {
	for _, held := range []int64{0, 256, 900} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) { benchAppReadings(b, 64, 64+held) })
	}
}

// hubAcks counts the PUBACKs mochi has handled for a client (a test
// hook's OnPacketProcessed runs after the hub's), and wakes a waiter.
type hubAcks struct {
	mqtt.HookBase
	n    atomic.Int64
	wake chan struct{}
}

func (w *hubAcks) ID() string           { return "test-hub-acks" }
func (w *hubAcks) Provides(b byte) bool { return b == mqtt.OnPacketProcessed }
func (w *hubAcks) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	if cl.Net.Inline || err != nil || pk.FixedHeader.Type != packets.Puback {
		return
	}
	w.n.Add(1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// countedApp is oneApp counting the readings the hub dropped for it.
type countedApp struct {
	oneApp
	dropped atomic.Int64
}

func (a *countedApp) Dropped(string) { a.dropped.Add(1) }

// benchAppReadings publishes b.N readings to an app with Receive Maximum
// rm, keeping up to ahead published beyond the PUBACKs the hub handled.
func benchAppReadings(b *testing.B, rm uint16, ahead int64) {
	app := &countedApp{oneApp: oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}}
	br, err := New(Config{TCPAddr: "127.0.0.1:0", Apps: app}, &fakeAuth{secrets: map[string]string{devA: secretA}}, &fakeIngester{})
	if err != nil {
		b.Fatal(err)
	}
	acks := &hubAcks{wake: make(chan struct{}, 1)}
	if err := br.srv.AddHook(acks, nil); err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	var props []byte
	if rm > 0 {
		props = mqtttest.PropUint16(0x21, rm)
	}
	c := mqtttest.Dial(b, br.Addr("tcp"), nil)
	c.Send(mqtttest.Connect{Version: 5, ClientID: app.id, Username: app.id, Password: app.secret,
		KeepAlive: 30, Props: props}.Encode())
	c.Expect(mqtttest.CONNACK)
	c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/+", 1))
	c.Expect(mqtttest.SUBACK)
	payload := []byte(`{"t":21.5}`)
	var got atomic.Int64
	done := make(chan error, 1)
	n := int64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for got.Load() < n {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			p, err := c.Next()
			if err != nil {
				done <- err
				return
			}
			if p.Type != mqtttest.PUBLISH {
				continue
			}
			got.Add(1)
			id := binary.BigEndian.Uint16(p.Body[2+int(binary.BigEndian.Uint16(p.Body)):])
			if _, err := c.Write(mqtttest.Puback(id)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var failed error
publish:
	for i := range n {
		for i-acks.n.Load() >= ahead {
			select {
			case <-acks.wake:
			case failed = <-done:
				break publish
			}
		}
		br.PublishReading(devA, "temp", payload)
	}
	if failed == nil {
		failed = <-done
	}
	if failed != nil {
		inflight := -1
		if cl, ok := br.srv.Clients.Get(app.id); ok {
			inflight = cl.State.Inflight.Len()
		}
		b.Fatalf("after %d of %d readings (%d PUBACKs handled): %v (dropped for the app: %d; app's session holds %d; mochi: %d dropped, %d inflight dropped, inflight %d)",
			got.Load(), n, acks.n.Load(), failed, app.dropped.Load(), inflight, br.srv.Info.MessagesDropped, br.srv.Info.InflightDropped, br.srv.Info.Inflight)
	}
}

// publishInQosComplete publishes {"n":3} to devA from inside mochi's
// handling of a packet of type typ (processPubcomp, processPubrel),
// after it gave the send quota a place back and before the hub's
// OnPacketProcessed, as if the read loop were preempted there while
// Broker.Publish or the ingest batcher published. mochi calls
// OnQosComplete there only for a flow it found, so with the hub handling
// the packet itself the hook never runs.
type publishInQosComplete struct {
	mqtt.HookBase
	tb    *testBroker
	typ   byte
	quota atomic.Int32
	ran   atomic.Bool
}

func (h *publishInQosComplete) ID() string           { return "test-publish-in-qos-complete" }
func (h *publishInQosComplete) Provides(b byte) bool { return b == mqtt.OnQosComplete }
func (h *publishInQosComplete) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || pk.FixedHeader.Type != h.typ || !h.ran.CompareAndSwap(false, true) {
		return
	}
	h.quota.Store(sendQuota(cl))
	_ = h.tb.Publish(ControlTopic(devA, "temp"), []byte(`{"n":3}`), false)
}

// twoSentOneHeld connects devA with Receive Maximum 2, with the hook
// publishing in mochi's handling of typ, publishes {"n":0..2} and reads
// the two sent ({"n":2} is held), returning their ids.
func twoSentOneHeld(t *testing.T, typ byte) (*testBroker, *publishInQosComplete, *mqtttest.Conn, []uint16) {
	t.Helper()
	tb := startBroker(t)
	h := &publishInQosComplete{tb: tb, typ: typ}
	if err := tb.srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	c := connectRM(t, tb, 2)
	for i := range 3 {
		publishWithin(t, tb, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	var ids []uint16
	for i := range 2 {
		p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "message")
		if got, want := payloadOf(p), fmt.Sprintf(`{"n":%d}`, i); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		ids = append(ids, publishID(t, p))
	}
	return tb, h, c, ids
}

// TestStrayPubcompKeepsQuotaPinned: a PUBCOMP from a device with a
// Receive Maximum (the hub sends nothing at QoS 2, so it completes
// nothing) neither acknowledges the QoS 1 message whose id it names nor
// gives the send quota a place: mochi's processPubcomp did both, and a
// message published in that moment went out at once, ahead of the held
// one.
func TestStrayPubcompKeepsQuotaPinned(t *testing.T) {
	_, h, c, ids := twoSentOneHeld(t, packets.Pubcomp)
	c.Send([]byte{mqtttest.PUBCOMP << 4, 2, byte(ids[0] >> 8), byte(ids[0])})
	c.Send(mqtttest.Pingreq())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if p, err := c.Next(); err != nil || p.Type != mqtttest.PINGRESP {
		t.Fatalf("after a PUBCOMP for a QoS 1 message, Receive Maximum 2 unacknowledged: % x, %v, want only the PINGRESP (quota in mochi's processPubcomp: %d)", p.Raw, err, h.quota.Load())
	}
	c.Send(mqtttest.Puback(ids[0]))
	if p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "the held message"); payloadOf(p) != `{"n":2}` {
		t.Fatalf("got %s, want the held {\"n\":2}", payloadOf(p))
	}
}

// TestPubrelKeepsQuotaPinned: a device with a Receive Maximum finishing
// its own QoS 2 reading (PUBREL) gets its PUBCOMP, and the send quota
// gets no place: mochi's processPubrel gave one, and a hub message
// published in that moment went out at once, beyond the maximum and
// ahead of the held one (the reviewer's test of allheld, adapted).
func TestPubrelKeepsQuotaPinned(t *testing.T) {
	tb, h, c, ids := twoSentOneHeld(t, packets.Pubrel)
	// A QoS 2 reading under the id of the first control message (ids of
	// the two directions are apart).
	c.Send(mqtttest.Publish(5, ReadingTopic(devA, "temp"), []byte(`{"t":1}`), 2, ids[0], false))
	answer(t, c, 5, mqtttest.PUBREC, ids[0], 0)
	c.Send(mqtttest.Pubrel(ids[0]))
	answer(t, c, 5, mqtttest.PUBCOMP, ids[0], 0)
	c.Send(mqtttest.Pubrel(ids[0])) // again: the flow is over
	answer(t, c, 5, mqtttest.PUBCOMP, ids[0], packets.ErrPacketIdentifierNotFound.Code)
	c.Send(mqtttest.Pingreq())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if p, err := c.Next(); err != nil || p.Type != mqtttest.PINGRESP {
		t.Fatalf("after the PUBREL, Receive Maximum 2 unacknowledged: % x, %v, want only the PINGRESP (quota in mochi's processPubrel: %d)", p.Raw, err, h.quota.Load())
	}
	if !h.ran.Load() { // mochi's processPubrel did not run: publish it here
		publishWithin(t, tb, []byte(`{"n":3}`))
	}
	for i, id := range ids {
		c.Send(mqtttest.Puback(id))
		if p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "a held message"); payloadOf(p) != fmt.Sprintf(`{"n":%d}`, i+2) {
			t.Fatalf("got %s, want {\"n\":%d}", payloadOf(p), i+2)
		}
	}
	var n int
	for _, s := range tb.in.submissions() {
		if s.device == devA {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d readings of the QoS 2 flow submitted, want 1", n)
	}
}

// TestStrayPubackOfHeldIgnored: a PUBACK naming a message still held
// (never sent: the client cannot have it) leaves it to be sent. mochi's
// processPuback deleted it, so the client never got it, and gave the
// pinned quota a place (the reviewer's test of pubrel, adapted).
func TestStrayPubackOfHeldIgnored(t *testing.T) {
	tb := startBroker(t)
	c := connectRM(t, tb, 1)
	publishWithin(t, tb, []byte(`{"n":0}`))
	a := publishID(t, expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, `{"n":0}`))
	publishWithin(t, tb, []byte(`{"n":1}`)) // held: the maximum is in flight
	var held []packets.Packet
	for _, cl := range tb.srv.Clients.GetAll() {
		if !cl.Net.Inline {
			held = cl.State.Inflight.GetAll(true)
		}
	}
	if len(held) != 1 {
		t.Fatalf("%d messages held, want 1", len(held))
	}
	c.Send(mqtttest.Puback(held[0].PacketID)) // never received
	c.Send(mqtttest.Puback(a))
	if p := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, `the held {"n":1}`); payloadOf(p) != `{"n":1}` {
		t.Fatalf("got %s, want the held {\"n\":1}", payloadOf(p))
	}
}
