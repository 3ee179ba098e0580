package broker

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// gatedStore is a real SQLite store whose commits of readings wait at a
// gate the test opens.
type gatedStore struct {
	*sqlite.DB
	entered chan struct{} // a commit reached the gate
	open    chan struct{} // closed to let commits through
}

// storedPipeline is the ingest pipeline on a real SQLite file, closed
// when the test ends. With gated, every commit of readings waits at the
// returned store's gate (gs is nil otherwise).
func storedPipeline(t *testing.T, gated bool) (*ingest.Pipeline, *sqlite.DB, *gatedStore) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var st ingest.Store = db
	var gs *gatedStore
	if gated {
		gs = &gatedStore{DB: db, entered: make(chan struct{}, 1), open: make(chan struct{})}
		st = gs
	}
	in := ingest.New(st, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(in.Close)
	return in, db, gs
}

// startStoredBroker starts a broker with cfg in front of in (the pipeline
// of storedPipeline, or a wrapper of it), for device devA, closed when the
// test ends (before in: cleanups run last first).
func startStoredBroker(t *testing.T, cfg Config, in Ingester) *Broker {
	t.Helper()
	cfg.TCPAddr = "127.0.0.1:0"
	b, err := New(cfg, &fakeAuth{secrets: map[string]string{devA: secretA}}, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func (g *gatedStore) AppendReadings(ctx context.Context, rs []store.Reading) error {
	g.entered <- struct{}{}
	<-g.open
	return g.DB.AppendReadings(ctx, rs)
}

// A QoS 1 PUBACK is sent only once the reading's commit has completed:
// while the commit is held, the connection still answers (PINGREQ is
// processed after the PUBLISH) but no PUBACK comes; once the commit is
// let through, the PUBACK follows and the reading is in the database.
func TestPubackWaitsForCommit(t *testing.T) {
	in, db, gs := storedPipeline(t, true)
	// Cleanups run last-in first-out: the gate opens, then the broker and
	// the pipeline close.
	b := startStoredBroker(t, Config{}, in)
	t.Cleanup(func() { close(gs.open) })

	for _, v := range []byte{4, 5} {
		c := mqtttest.Dial(t, b.Addr("tcp"), nil)
		c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
			t.Fatalf("v%d connect refused: % x", v, ack.Raw)
		}
		id := uint16(7 + v)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":21.5}`), 1, id, false))
		<-gs.entered // the reading's commit is held at the gate

		// The PUBLISH was handled before the PINGREQ that follows it, so
		// a PUBACK sent without waiting for the commit would come first.
		for range 2 {
			c.Send(mqtttest.Pingreq())
			c.Expect(mqtttest.PINGRESP)
		}
		if n, err := db.CountReadings(context.Background(), devA); err != nil || n != int64(v-4) {
			t.Fatalf("readings stored while the commit is held: %d %v", n, err)
		}

		gs.open <- struct{}{} // let this one commit through
		ack := c.Expect(mqtttest.PUBACK)
		if got := uint16(ack.Body[0])<<8 | uint16(ack.Body[1]); got != id || ack.ReasonCode(v) != 0 {
			t.Fatalf("v%d PUBACK % x, want packet id %d, success", v, ack.Raw, id)
		}
		if n, err := db.CountReadings(context.Background(), devA); err != nil || n != int64(v-3) {
			t.Fatalf("v%d: %d readings stored when the PUBACK arrived (%v), want %d", v, n, err, v-3)
		}
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
}

// TestRefusedPubackWaitsItsTurn: a refused QoS 1 reading is answered (a
// success PUBACK in 3.1.1, its reason code in 5) only after the PUBACKs of
// readings sent before it, which wait for their commit: MQTT requires
// PUBACKs in the order the PUBLISH packets came (§4.6 of both versions).
// Left to mochi, the refusal's PUBACK was written at once, ahead of them.
func TestRefusedPubackWaitsItsTurn(t *testing.T) {
	in, _, gs := storedPipeline(t, true)
	b := startStoredBroker(t, Config{}, in)
	t.Cleanup(func() { close(gs.open) })

	tooLarge := bytes.Repeat([]byte("x"), 70<<10) // above ingest's 64 KiB default
	for _, v := range []byte{4, 5} {
		c := mqtttest.Dial(t, b.Addr("tcp"), nil)
		c.Send(mqtttest.Connect{Version: v, ClientID: devA, Username: devA, Password: secretA, KeepAlive: 30}.Encode())
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
			t.Fatalf("v%d connect refused: % x", v, ack.Raw)
		}
		first, refused := uint16(20+v), uint16(30+v)
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":21.5}`), 1, first, false))
		<-gs.entered // the first reading's commit is held at the gate
		c.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), tooLarge, 1, refused, false))
		// Both PUBLISH packets were handled before the PINGREQs that
		// follow, so a PUBACK sent out of turn would come before these.
		for range 2 {
			c.Send(mqtttest.Pingreq())
			c.Expect(mqtttest.PINGRESP)
		}
		gs.open <- struct{}{}
		for _, want := range []struct {
			id   uint16
			code byte
		}{{first, 0}, {refused, map[byte]byte{4: 0, 5: packets.ErrPacketTooLarge.Code}[v]}} {
			ack := c.Expect(mqtttest.PUBACK)
			if got := uint16(ack.Body[0])<<8 | uint16(ack.Body[1]); got != want.id || ack.ReasonCode(v) != want.code {
				t.Fatalf("v%d PUBACK % x, want packet id %d, reason code %#x", v, ack.Raw, want.id, want.code)
			}
		}
		c.Send(mqtttest.Disconnect())
		c.ExpectClosed()
	}
}
