package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// TestPostgresStore runs the real hub on PostgreSQL: readings a device
// publishes over MQTT are in the database when acknowledged, the API
// reads them back, and a restart keeps them and the device's credential.
func TestPostgresStore(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	dir := shortTempDir(t)
	onPostgres := func(c *config.Config) { c.Store = dbURL }

	th := startHubIn(t, dir, onPostgres)
	id, secret := th.addDevice("Kitchen", "thermostat")
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
			Payload: fmt.Appendf(nil, `{"celsius": 21.%d}`, i)})
		if err != nil || resp.ReasonCode != 0 {
			t.Fatalf("publish %d: %v %+v", i, err, resp)
		}
	}
	// A PUBACK means the batch committed: the rows are in PostgreSQL now.
	if n := countReadings(t, dbURL, id); n != 5 {
		t.Fatalf("PostgreSQL holds %d readings of the device after 5 acknowledged publishes", n)
	}
	rs := th.readings(id, "stream=temperature")
	if len(rs) != 5 || string(rs[4].Payload) != `{"celsius":21.4}` {
		t.Fatalf("API readings after publishing: %+v", rs)
	}
	// Nothing went to an embedded SQLite file beside it.
	if _, err := os.Stat(filepath.Join(dir, DBName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a SQLite file was created in the data directory: %v", err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	th.close()

	th2 := startHubIn(t, dir, onPostgres)
	rs2 := th2.readings(id, "stream=temperature")
	if len(rs2) != 5 {
		t.Fatalf("after restart %d of 5 readings remain", len(rs2))
	}
	for i := range rs {
		if rs2[i].Seq != rs[i].Seq || string(rs2[i].Payload) != string(rs[i].Payload) {
			t.Errorf("reading %d after restart: %+v, before: %+v", i, rs2[i], rs[i])
		}
	}
	c2, _, err := v5(t, th2.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatalf("device credential lost across restart: %v", err)
	}
	if resp, err := c2.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
		Payload: []byte(`{"celsius": 22}`)}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("publish after restart: %v %+v", err, resp)
	}
	if rs3 := th2.readings(id, "stream=temperature"); len(rs3) != 6 || rs3[5].Seq <= rs[4].Seq {
		t.Errorf("after a publish on the restarted hub: %+v", rs3)
	}
	_ = c2.Disconnect(&paho.Disconnect{})
}

func countReadings(t *testing.T, dbURL, deviceID string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM readings WHERE device_id = $1`, deviceID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
