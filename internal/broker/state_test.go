package broker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/firmware"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// TestStateTopicGoesToFirmware publishes a device's state over real MQTT 5
// to a broker wired to the real firmware service on a SQLite file: the
// version is kept, ingest sees nothing, a bad message is refused with a
// reason, and another device's state topic stays closed.
func TestStateTopicGoesToFirmware(t *testing.T) {
	ctx := testCtx(t)
	db, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh_1", Name: "Home", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{devA, devB} {
		if err := db.CreateDevice(ctx, store.Device{ID: id, HouseholdID: "hh_1", Name: id, Type: "thermostat", SecretHash: "x", CreatedAt: at, CredentialSetAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	tb := &testBroker{
		auth: &fakeAuth{secrets: map[string]string{devA: secretA, devB: secretB}},
		in:   &fakeIngester{},
		logs: &lockedBuffer{},
		reg:  prometheus.NewRegistry(),
	}
	b, err := New(Config{TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(tb.logs, nil)), Registerer: tb.reg,
		State: firmware.New(db, nil, nil, nil)}, tb.auth, tb.in)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a := mustV5(t, b.Addr("tcp"), devA, devA, secretA)

	tests := []struct {
		name     string
		topic    string
		payload  string
		wantCode byte
	}{
		{"own state", firmware.StateTopic(devA), `{"firmware":"1.3.0","hardware":"rev-b"}`, 0},
		{"bad version refused", firmware.StateTopic(devA), `{"firmware":"1.3 beta"}`, 0x99},
		{"another device's state denied", firmware.StateTopic(devB), `{"firmware":"9.9.9"}`, 0x87},
		{"own state again, newer", firmware.StateTopic(devA), `{"firmware":"1.4.2","hardware":"rev-b"}`, 0},
	}
	for _, tc := range tests {
		resp, err := a.Publish(ctx, &paho.Publish{Topic: tc.topic, QoS: 1, Payload: []byte(tc.payload)})
		if resp == nil || resp.ReasonCode != tc.wantCode {
			t.Errorf("%s: %+v %v, want reason %#x", tc.name, resp, err, tc.wantCode)
		}
	}
	h, err := db.FirmwareHistory(ctx, devA)
	if err != nil || len(h) != 2 || h[0].Firmware != "1.4.2" || h[1].Firmware != "1.3.0" {
		t.Errorf("history of %s = %+v, %v; want 1.4.2 then 1.3.0", devA, h, err)
	}
	if h, _ := db.FirmwareHistory(ctx, devB); len(h) != 0 {
		t.Errorf("%s's version was set by another device: %+v", devB, h)
	}
	if n := len(tb.in.submissions()); n != 0 {
		t.Errorf("%d state messages reached ingest's reading path", n)
	}
	if got := tb.in.counters(devA).Refused; got != 1 {
		t.Errorf("refused count = %d, want 1", got)
	}
}
