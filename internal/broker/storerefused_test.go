package broker

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// A device the SQLite store can give no key in range (past
// sqlite.MaxDeviceKey) publishes in the same batch as another device:
// only its reading goes unacknowledged (MQTT 5: PUBACK 0x83; 3.1.1: the
// connection closes, so the client sends it again later), while the other
// device's reading is stored and acknowledged with success.
func TestStoreRefusalFailsOnlyThatDevice(t *testing.T) {
	ctx := context.Background()
	path := sqlitetest.Path(t)
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// devA has a key; the next device given one (devB) gets
	// MaxDeviceKey+1 (written on the closed file).
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: devA, Stream: "temperature", Time: time.Now().UTC(), Payload: []byte(`{"c":0}`)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'reading_devices'`, sqlite.MaxDeviceKey); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if db, err = sqlite.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	gs := &gatedStore{DB: db, entered: make(chan struct{}, 1), open: make(chan struct{})}
	in := ingest.New(gs, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(in.Close)
	b, err := New(Config{TCPAddr: "127.0.0.1:0"}, &fakeAuth{secrets: map[string]string{devA: secretA, devB: secretB}}, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	t.Cleanup(func() { close(gs.open) }) // first: commits go through

	connect := func(v byte, dev, secret string) *mqtttest.Conn {
		c := mqtttest.Dial(t, b.Addr("tcp"), nil)
		c.Send(mqtttest.Connect{Version: v, ClientID: dev, Username: dev, Password: secret, KeepAlive: 30}.Encode())
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(v) != 0 {
			t.Fatalf("v%d: %s's connect refused: % x", v, dev, ack.Raw)
		}
		return c
	}
	puback := func(c *mqtttest.Conn, v byte, id uint16, code byte) {
		t.Helper()
		ack := c.Expect(mqtttest.PUBACK)
		if got := uint16(ack.Body[0])<<8 | uint16(ack.Body[1]); got != id || ack.ReasonCode(v) != code {
			t.Fatalf("v%d PUBACK % x, want packet id %d, reason %#x", v, ack.Raw, id, code)
		}
	}
	stored := int64(1)
	for _, v := range []byte{5, 4} {
		a, o := connect(v, devA, secretA), connect(v, devB, secretB)
		// A first commit held at the gate, so the next two readings,
		// one of each device, fill the next batch together.
		a.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":1}`), 1, 1, false))
		<-gs.entered
		o.Send(mqtttest.Publish(v, ReadingTopic(devB, "temperature"), []byte(`{"c":2}`), 1, 2, false))
		a.Send(mqtttest.Publish(v, ReadingTopic(devA, "temperature"), []byte(`{"c":3}`), 1, 3, false))
		// Each PUBLISH is queued before the PINGREQ after it is read.
		for _, c := range []*mqtttest.Conn{o, a} {
			c.Send(mqtttest.Pingreq())
			c.Expect(mqtttest.PINGRESP)
		}
		gs.open <- struct{}{}
		<-gs.entered // the batch of both
		gs.open <- struct{}{}
		puback(a, v, 1, 0)
		puback(a, v, 3, 0)
		if v == 5 {
			puback(o, v, 2, 0x83) // implementation specific error: not stored
		} else {
			o.ExpectClosed()
		}
		stored += 2
		if n, err := db.CountReadings(ctx, devA); err != nil || n != stored {
			t.Fatalf("v%d: %d readings of %s stored (%v), want %d", v, n, devA, err, stored)
		}
		if n, err := db.CountReadings(ctx, devB); err != nil || n != 0 {
			t.Fatalf("v%d: %d readings of %s stored (%v), want none", v, n, devB, err)
		}
		a.Send(mqtttest.Disconnect())
		a.ExpectClosed()
		if v == 5 {
			o.Send(mqtttest.Disconnect())
			o.ExpectClosed()
		}
	}
}
