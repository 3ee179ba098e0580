package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// TestRelTrackStoredInSendingOrder: ids reaching OnQosPublish out of the
// order mochi handed them out (two publishers) join the queue in sending
// order, across the wrap after 65535, and an id noted before the first
// release (no session read yet) is left to the rebuild.
func TestRelTrackStoredInSendingOrder(t *testing.T) {
	in := mqtt.NewInflights()
	for _, tc := range []struct {
		name   string
		stored []uint16
		want   []uint16
	}{
		{"in order", []uint16{1, 2, 3}, []uint16{1, 2, 3}},
		{"two swapped", []uint16{1, 3, 2, 4}, []uint16{1, 2, 3, 4}},
		{"one late by three", []uint16{5, 7, 8, 9, 6}, []uint16{5, 6, 7, 8, 9}},
		{"across the wrap", []uint16{65534, 1, 65535, 2}, []uint16{65534, 65535, 1, 2}},
		{"late across the wrap", []uint16{65535, 1, 2, 65534}, []uint16{65534, 65535, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &relTrack{on: in}
			for _, id := range tc.stored {
				tr.stored(in, id)
			}
			if got := tr.q[tr.head:]; !slices.Equal(got, tc.want) {
				t.Fatalf("queue %v, want %v", got, tc.want)
			}
		})
	}
	tr := &relTrack{}
	tr.stored(in, 7)
	if len(tr.q) != 0 {
		t.Fatalf("noted %v before the session was read", tr.q)
	}
}

// backlogApp is an app whose use of the "drop" stream can be withdrawn
// (MayMatch then refuses it), counting the readings the hub dropped.
type backlogApp struct {
	countedApp
	withdrawn atomic.Bool
	mayMatch  atomic.Pointer[func()] // called first by MayMatch, if set
}

func (a *backlogApp) MayMatch(_ context.Context, _, filter string) bool {
	if f := a.mayMatch.Load(); f != nil {
		(*f)()
	}
	return !a.withdrawn.Load() || !strings.HasSuffix(filter, "/drop")
}

// dialApp connects a as an MQTT 5 app with CONNECT properties props,
// subscribed to devA's readings at QoS 1 unless resuming its session.
func dialApp(t *testing.T, tb *testBroker, a *backlogApp, persistent, resume bool, props []byte) *mqtttest.Conn {
	t.Helper()
	c := mqtttest.Dial(t, tb.addr, nil)
	c.Send(mqtttest.Connect{Version: 5, ClientID: a.id, Username: a.id, Password: a.secret,
		KeepAlive: 30, Persistent: persistent, Props: props}.Encode())
	c.Expect(mqtttest.CONNACK)
	if !resume {
		c.Send(mqtttest.Subscribe(5, 1, TopicRoot+"/"+devA+"/+", 1))
		c.Expect(mqtttest.SUBACK)
	}
	return c
}

// readingOf returns the number of the reading an MQTT 5 QoS 1 PUBLISH
// carries (reading).
func readingOf(t *testing.T, p mqtttest.Packet) int {
	t.Helper()
	b := p.Body
	if len(b) < 2 {
		t.Fatalf("short PUBLISH % x", p.Raw)
	}
	b = b[2+int(binary.BigEndian.Uint16(b))+2:] // topic, packet id
	props, k := binary.Uvarint(b)
	if k <= 0 || len(b) < k+int(props) {
		t.Fatalf("bad properties in % x", p.Raw)
	}
	var n int
	if _, err := fmt.Sscanf(string(b[k+int(props):]), `{"n":%d`, &n); err != nil {
		t.Fatalf("payload of % x: %v", p.Raw, err)
	}
	return n
}

// reading is the payload of reading n, padded with pad bytes.
func reading(n, pad int) []byte {
	if pad == 0 {
		return fmt.Appendf(nil, `{"n":%d}`, n)
	}
	return fmt.Appendf(nil, `{"n":%d,"p":"%s"}`, n, strings.Repeat("b", pad))
}

// How appReader.receive acknowledges.
const (
	ackAll = iota // in batches, and the last one at the end
	noAcks        // never (what is left then stays unacknowledged)
)

// appReader reads an app's readings, keeping those not acknowledged.
type appReader struct {
	t   *testing.T
	c   *mqtttest.Conn
	rm  int
	out []uint16 // received, not acknowledged
}

// receive reads readings until want (their numbers, in order) have all
// come, failing on one out of order, on more than rm unacknowledged, or
// on a stall. ackAll acknowledges in batches of varying size (at most
// rm), each in reverse order, so that places come back out of sending
// order.
func (r *appReader) receive(want []int, acks int) {
	t, c := r.t, r.c
	t.Helper()
	for i := 0; i < len(want); {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound on a stall
		p, err := c.Next()
		if err != nil {
			t.Fatalf("stalled after %d of %d readings, %d unacknowledged: %v", i, len(want), len(r.out), err)
		}
		if p.Type != mqtttest.PUBLISH {
			continue
		}
		if n := readingOf(t, p); n != want[i] {
			t.Fatalf("reading %d came as the %dth, want %d", n, i, want[i])
		}
		r.out = append(r.out, publishID(t, p))
		if len(r.out) > r.rm {
			t.Fatalf("%d readings unacknowledged, Receive Maximum %d", len(r.out), r.rm)
		}
		i++
		if acks == noAcks {
			continue
		}
		if batch := 1 + i*7%r.rm; len(r.out) >= batch || i == len(want) {
			r.ack()
		}
	}
}

// ack acknowledges the readings not acknowledged yet, last first.
func (r *appReader) ack() {
	for i := len(r.out) - 1; i >= 0; i-- {
		r.c.Send(mqtttest.Puback(r.out[i]))
	}
	r.out = r.out[:0]
}

// receiveInOrder reads want from c (appReader.receive).
func receiveInOrder(t *testing.T, c *mqtttest.Conn, rm int, want []int, acks int) {
	t.Helper()
	r := &appReader{t: t, c: c, rm: rm}
	r.receive(want, acks)
}

// seq returns the numbers from to to-1 that keep.
func seq(from, to int, keep func(int) bool) []int {
	var s []int
	for n := from; n < to; n++ {
		if keep == nil || keep(n) {
			s = append(s, n)
		}
	}
	return s
}

// TestAppBacklogReleaseOrderAndMaximum: an app with a Receive Maximum
// and hundreds of readings held beyond it gets every reading once, in
// the order published, never more than its maximum unacknowledged, while
// more are published as its PUBACKs come (out of order, in batches). The
// releases take held ids from the connection's queue (relqueue.go), not
// from a copy of the session.
func TestAppBacklogReleaseOrderAndMaximum(t *testing.T) {
	for _, tc := range []struct{ rm, held, during int }{
		{1, 300, 200},
		{16, 500, 400},
		{64, 900, 100},
	} {
		t.Run(fmt.Sprintf("rm=%d,held=%d", tc.rm, tc.held), func(t *testing.T) {
			app := &backlogApp{countedApp: countedApp{oneApp: oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}}}
			tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
			c := dialApp(t, tb, app, false, false, mqtttest.PropUint16(0x21, uint16(tc.rm)))
			for n := range tc.held {
				tb.PublishReading(devA, "temp", reading(n, 0))
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for n := tc.held; n < tc.held+tc.during; n++ {
					tb.PublishReading(devA, "temp", reading(n, 0))
				}
			}()
			receiveInOrder(t, c, tc.rm, seq(0, tc.held+tc.during, nil), ackAll)
			<-done
			if d := app.dropped.Load(); d != 0 {
				t.Fatalf("%d readings dropped for the app", d)
			}
			c.Send(mqtttest.Pingreq())
			expectWithin(t, c, mqtttest.PINGRESP, 5*time.Second, "PINGRESP, no reading more")
		})
	}
}

// TestAppBacklogStaleEntries: messages dropped as too large on release,
// or pruned, resent and parked when the session is resumed, neither go
// out nor stall the readings behind them, and the maximum holds. (The
// drops are popped from the queue before writeHeld drops them, and the
// pruning and parking come before the connection's first release
// reads the session; the stale queue ids this meets are resent messages
// acknowledged before a release reached them.)
func TestAppBacklogStaleEntries(t *testing.T) {
	const rm, held = 8, 400
	big := func(n int) bool { return n%5 == 3 }
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, tb *testBroker, app *backlogApp)
	}{
		{"dropped too large", func(t *testing.T, tb *testBroker, app *backlogApp) {
			props := append(mqtttest.PropUint16(0x21, rm), mqtttest.PropUint32(0x27, 200)...)
			c := dialApp(t, tb, app, false, false, props)
			for n := range held {
				pad := 0
				if big(n) {
					pad = 300
				}
				tb.PublishReading(devA, "temp", reading(n, pad))
			}
			receiveInOrder(t, c, rm, seq(0, held, func(n int) bool { return !big(n) }), ackAll)
		}},
		{"resumed", func(t *testing.T, tb *testBroker, app *backlogApp) {
			props := append(mqtttest.PropUint16(0x21, rm), mqtttest.PropUint32(0x11, 3600)...)
			c := dialApp(t, tb, app, true, false, props)
			for n := range held {
				tb.PublishReading(devA, "temp", reading(n, 0))
			}
			receiveInOrder(t, c, rm, seq(0, rm, nil), noAcks)
			c.Close()
			waitClosed(t, tb, app.id)
			c = dialApp(t, tb, app, true, true, props)
			// The unacknowledged are resent first, then the rest in order,
			// with more published from the CONNACK on, while the session
			// is resent and unparked (TestResumePublishesFollowParked
			// pins the moments down).
			done := make(chan struct{})
			go func() {
				defer close(done)
				for n := held; n < held+100; n++ {
					tb.PublishReading(devA, "temp", reading(n, 0))
				}
			}()
			r := &appReader{t: t, c: c, rm: rm}
			r.receive(seq(0, rm, nil), noAcks)
			r.ack()
			r.receive(seq(rm, held+100, nil), ackAll)
			<-done
		}},
		{"pruned on resume", func(t *testing.T, tb *testBroker, app *backlogApp) {
			props := append(mqtttest.PropUint16(0x21, rm), mqtttest.PropUint32(0x11, 3600)...)
			c := dialApp(t, tb, app, true, false, props)
			stream := func(n int) string {
				if big(n) {
					return "drop"
				}
				return "temp"
			}
			for n := range held {
				tb.PublishReading(devA, stream(n), reading(n, 0))
			}
			receiveInOrder(t, c, rm, seq(0, rm, nil), noAcks)
			c.Close()
			waitClosed(t, tb, app.id)
			app.withdrawn.Store(true)
			c = dialApp(t, tb, app, true, true, props)
			receiveInOrder(t, c, rm, seq(0, held, func(n int) bool { return !big(n) }), ackAll)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &backlogApp{countedApp: countedApp{oneApp: oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}}}
			tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
			tc.run(t, tb, app)
			if d := app.dropped.Load(); d != 0 {
				t.Fatalf("%d readings dropped for the app", d)
			}
		})
	}
}

// waitClosed waits until the broker has seen the client id's connection
// end, so that the next one resumes its session rather than taking it
// over.
func waitClosed(t *testing.T, tb *testBroker, id string) {
	t.Helper()
	waitFor(t, "the connection ended", 10*time.Second, func() bool {
		cl, ok := tb.srv.Clients.Get(id)
		return !ok || cl.Closed()
	})
}

// TestReleaseWaitsForQueuedWithQuotaOpen: as TestReleaseWaitsForQueued,
// but with mochi's quota given a place (the pin lost: before settleSession
// a publish racing the re-pin of a session taken over could leave it so,
// and the release must not depend on the pin), so that A goes to the
// write queue at once, stored and not yet written when B's release walks
// the queue: B must wait behind it, not be taken for in flight and
// written first. (Since the pin, TestReleaseWaitsForQueued holds A too.)
func TestReleaseWaitsForQueuedWithQuotaOpen(t *testing.T) {
	tb := startBroker(t)
	g := newGate(t, tb, `{"n":"A"}`)
	c := connectRM(t, tb, 3) // room for A, B and one more
	cl, ok := tb.srv.Clients.Get(devA)
	if !ok {
		t.Fatal("no client")
	}
	// The read loop pins the quota again after the SUBSCRIBE it answered
	// (keepQuotaPinned), a moment after the SUBACK was written: once it
	// waits for the client (relMu free), it is done. (Opened before that,
	// the quota went back to 0, A was held, and one release sent A and B:
	// "B was released", 1 whole-package run.)
	gc := guardOf(cl)
	waitFor(t, "the read loop waits", 5*time.Second, func() bool {
		if !gc.relMu.TryLock() {
			return false
		}
		gc.relMu.Unlock()
		return true
	})
	cl.State.Inflight.IncreaseSendQuota() // 1: mochi sends A at once
	for _, m := range []string{`{"n":"A"}`, `{"n":"B"}`} {
		if err := tb.Publish(ControlTopic(devA, "temp"), []byte(m), false); err != nil {
			t.Fatal(err)
		}
	}
	<-g.entered
	// B's publish is complete: its release (kick, from OnPublished) has
	// decided, and must have left B held behind A.
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if string(pk.Payload) == `{"n":"B"}` && pk.Expiry >= 0 {
			t.Fatal("B was released while A was queued and not written")
		}
	}
	g.open() // the write loop writes A only now
	p1 := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "first message")
	p2 := expectWithin(t, c, mqtttest.PUBLISH, 5*time.Second, "second message")
	if payloadOf(p1) != `{"n":"A"}` || payloadOf(p2) != `{"n":"B"}` {
		t.Fatalf("order: got %s then %s, want A then B", payloadOf(p1), payloadOf(p2))
	}
	c.Send(mqtttest.Puback(publishID(t, p1)))
	c.Send(mqtttest.Puback(publishID(t, p2)))
}

// relClient is a client with a Receive Maximum of rm and a session of its
// own, for unit tests of relTrack (no connection).
func relClient(rm uint16) (*mqtt.Client, *guardConn) {
	cl := &mqtt.Client{}
	gc := &guardConn{}
	cl.Net.Conn = gc
	cl.State.Inflight = mqtt.NewInflights()
	cl.Properties.Props.ReceiveMaximum = rm
	return cl, gc
}

func relPub(id uint16, expiry int64) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id, Expiry: expiry}
}

// TestRebuildCountsNoStoredMessageInFlight: a message stored by mochi in
// the instant before OnQosPublish, when the connection's first release
// reads the session (rebuild) and finds no room, was counted in flight
// and, once held, took a place until a recheck happened to look its id
// up (two ids, in map order): with 2 of 3 in flight its own release sent
// nothing (found in review: 104-128 of 200 tries).
func TestRebuildCountsNoStoredMessageInFlight(t *testing.T) {
	for i := range 200 {
		cl, gc := relClient(3)
		in := cl.State.Inflight
		in.Set(relPub(1, 0)) // sent, not acknowledged
		in.Set(relPub(2, 0))
		in.Set(relPub(3, 0)) // stored, OnQosPublish not yet
		tr := trackOf(gc)
		tr.mu.Lock()
		if pks := tr.claim(cl, gc, 3); len(pks) != 0 {
			t.Fatalf("try %d: released %d with nothing held", i, len(pks))
		}
		tr.mu.Unlock()
		tr.stored(in, 3) // OnQosPublish, then mochi holds it
		in.Set(relPub(3, -1))
		tr.mu.Lock()
		pks := tr.claim(cl, gc, 3) // its own release
		tr.mu.Unlock()
		if len(pks) != 1 || pks[0].PacketID != 3 {
			t.Fatalf("try %d: released %d, want message 3 (2 of 3 in flight)", i, len(pks))
		}
	}
}

// TestPubrecOfHeldCountsInFlight: a client answering a held message it
// was never sent with a PUBREC makes mochi turn it into a PUBREL, in
// flight until its PUBCOMP: it takes a place like any flow of the hub's.
func TestPubrecOfHeldCountsInFlight(t *testing.T) {
	cl, gc := relClient(2)
	in := cl.State.Inflight
	tr := trackOf(gc)
	tr.mu.Lock()
	tr.claim(cl, gc, 2) // rebuild: an empty session
	tr.mu.Unlock()
	for id := uint16(1); id <= 3; id++ {
		in.Set(relPub(id, -1))
		tr.stored(in, id)
	}
	tr.mu.Lock()
	pks := tr.claim(cl, gc, 2)
	tr.mu.Unlock()
	if len(pks) != 2 {
		t.Fatalf("released %d, want 2", len(pks))
	}
	// The client PUBRECs message 3, held; mochi makes it a PUBREL.
	in.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 3})
	ended(cl, 3)
	forget(cl, 1) // message 1 acknowledged
	tr.mu.Lock()
	pks = tr.claim(cl, gc, 2)
	n := len(tr.fly)
	tr.mu.Unlock()
	if len(pks) != 0 || n != 2 {
		t.Fatalf("released %d with %d counted in flight, want none with 2 (message 2 and the PUBREL of 3)", len(pks), n)
	}
}

// TestConcurrentPublishersBacklog: four publishers at once to an app
// with a small Receive Maximum, acknowledged in batches: every reading
// arrives once, in each publisher's order, never more than the maximum
// unacknowledged, and nothing stalls (from the review of relq).
func TestConcurrentPublishersBacklog(t *testing.T) {
	for _, rm := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("rm=%d", rm), func(t *testing.T) {
			const pubs, per = 4, 150
			app := &backlogApp{countedApp: countedApp{oneApp: oneApp{id: apps.IDPrefix + "x", secret: "secret-of-app-x-0123"}}}
			tb := startBrokerWith(t, func(c *Config) { c.Apps = app })
			c := dialApp(t, tb, app, false, false, mqtttest.PropUint16(0x21, uint16(rm)))
			var wg sync.WaitGroup
			for p := range pubs {
				wg.Go(func() {
					for n := range per {
						tb.PublishReading(devA, fmt.Sprintf("s%d", p), reading(p*100000+n, 0))
					}
				})
			}
			next := make([]int, pubs)
			var out []uint16
			total := 0
			for total < pubs*per {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				pk, err := c.Next()
				if err != nil {
					t.Fatalf("stalled after %d of %d, %d unacknowledged: %v", total, pubs*per, len(out), err)
				}
				if pk.Type != mqtttest.PUBLISH {
					continue
				}
				v := readingOf(t, pk)
				p, n := v/100000, v%100000
				if n != next[p] {
					t.Fatalf("publisher %d: reading %d came, want %d", p, n, next[p])
				}
				next[p]++
				total++
				out = append(out, publishID(t, pk))
				if len(out) > rm {
					t.Fatalf("%d unacknowledged, Receive Maximum %d", len(out), rm)
				}
				if len(out) >= 1+total*7%rm || total == pubs*per {
					for i := len(out) - 1; i >= 0; i-- {
						c.Send(mqtttest.Puback(out[i]))
					}
					out = out[:0]
				}
			}
			wg.Wait()
			c.Send(mqtttest.Pingreq())
			expectWithin(t, c, mqtttest.PINGRESP, 5*time.Second, "PINGRESP, no reading more")
		})
	}
}
