package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// A device the SQLite store can give no key in range (past
// sqlite.MaxDeviceKey) has its readings refused, each with an error
// wrapping ErrStorage and a KeyRangeError naming it, while the other
// device's readings committed in the same batch are stored, acknowledged
// (Wait returns nil), counted as accepted and handed to apps; the hub
// stays ready.
func TestStoreRefusesOneDeviceOfABatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	path := sqlitetest.Path(t)
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// dev_ok has a key; the next device given one gets MaxDeviceKey+1
	// (written on the closed file: the store keeps its connections).
	if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "dev_ok", Stream: "temperature", Time: time.Now().UTC(), Payload: []byte(`{"celsius":1}`)}}); err != nil {
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
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	reg := prometheus.NewRegistry()
	apps := &recordingApps{}
	// One batch: it gathers for longer than the enqueues take.
	p := newPipeline(t, db, Options{Manifests: newThermostatManifests(t), Apps: apps, Registerer: reg,
		BatchMaxWait: time.Second, BatchMaxRows: 100})
	var tickets []Ticket
	var devs []string
	for i := range 12 {
		dev := "dev_ok"
		if i%3 == 1 {
			dev = "dev_over"
		}
		tk, err := p.Enqueue(ctx, dev, "temperature", fmt.Appendf(nil, `{"celsius":%d}`, i))
		if err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
		tickets = append(tickets, tk)
		devs = append(devs, dev)
	}
	for i, tk := range tickets {
		if tk.b != tickets[0].b {
			t.Fatalf("reading %d went to another batch: the test needs them in one", i)
		}
	}
	var okPayloads []string
	for i, tk := range tickets {
		err := tk.Wait(ctx)
		if devs[i] == "dev_ok" {
			if err != nil {
				t.Errorf("reading %d of dev_ok: %v, want it acknowledged", i, err)
			}
			okPayloads = append(okPayloads, fmt.Sprintf(`{"celsius":%d}`, i))
			continue
		}
		var kr *sqlite.KeyRangeError
		if !errors.Is(err, ErrStorage) || !errors.As(err, &kr) || kr.DeviceID != "dev_over" || kr.DeviceKey <= sqlite.MaxDeviceKey {
			t.Errorf("reading %d of dev_over: %v, want ErrStorage and a KeyRangeError for its key", i, err)
		} else if !strings.Contains(err.Error(), `device "dev_over": device key`) {
			t.Errorf("reading %d of dev_over: %q does not say which device and why", i, err)
		}
	}
	got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dev_ok"})
	if err != nil {
		t.Fatal(err)
	}
	var gotPayloads []string
	for _, r := range got[1:] { // after the one stored first
		gotPayloads = append(gotPayloads, string(r.Payload))
	}
	if len(got) == 0 || !slices.Equal(gotPayloads, okPayloads) {
		t.Fatalf("dev_ok's stored readings %q, want the first and %q", gotPayloads, okPayloads)
	}
	if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dev_over"}); err != nil || len(got) != 0 {
		t.Fatalf("dev_over: %d readings stored (%v), want none", len(got), err)
	}
	var delivered []string
	for _, d := range apps.delivered() {
		if dev, payload, _ := strings.Cut(d, "/temperature "); dev != "dev_ok" {
			t.Errorf("apps were handed %q, a reading not stored", d)
		} else {
			delivered = append(delivered, payload)
		}
	}
	if !slices.Equal(delivered, okPayloads) {
		t.Errorf("apps were handed %q, want %q", delivered, okPayloads)
	}
	if n := metricValue(t, reg, "candor_readings_accepted_total"); n != float64(len(okPayloads)) {
		t.Errorf("accepted %v, want %d", n, len(okPayloads))
	}
	if n := metricValue(t, reg, "candor_store_readings_refused_total"); n != float64(len(tickets)-len(okPayloads)) {
		t.Errorf("store refused %v, want %d", n, len(tickets)-len(okPayloads))
	}
	if n := metricValue(t, reg, "candor_store_batch_errors_total"); n != 0 {
		t.Errorf("%v failed batches, want 0", n)
	}
	if err := p.Health(); err != nil {
		t.Errorf("Health: %v, want ready (every other reading is stored)", err)
	}
}

// A refusal that names no reading of the batch, one it does not have or
// one twice says nothing reliable about what was stored: the batch fails
// as a whole, its readings are not acknowledged, and Health reports it.
func TestMalformedRefusalFailsTheBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refused []store.RefusedReading
	}{
		{"none", nil},
		{"past the batch", []store.RefusedReading{{Index: 1, Err: errFakeStore}}},
		{"no reason", []store.RefusedReading{{Index: 0}}},
		{"twice", []store.RefusedReading{{Index: 0, Err: errFakeStore}, {Index: 0, Err: errFakeStore}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStore()
			fs.setAppendErr(&store.RefusedReadingsError{Refused: tc.refused})
			p := newPipeline(t, fs, Options{})
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			err := p.Submit(ctx, "dev-1", "temp", []byte(`{"c":1}`), true)
			var re *store.RefusedReadingsError
			if !errors.Is(err, ErrStorage) || !errors.As(err, &re) {
				t.Fatalf("Submit: %v, want ErrStorage wrapping the store's error", err)
			}
			if p.Health() == nil {
				t.Error("Health reports ready after the batch failed")
			}
		})
	}
}

// A store error that only contains a refusal (joined with, or wrapped
// in, a failure of the whole batch) is a failure of the whole batch: the
// reading is not taken for refused alone with the rest stored, and
// Health reports the failure.
func TestWrappedRefusalFailsTheBatch(t *testing.T) {
	refusal := &store.RefusedReadingsError{Refused: []store.RefusedReading{{Index: 0, Err: errFakeStore}}}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"joined", errors.Join(errors.New("commit: disk I/O error"), refusal)},
		{"wrapped", fmt.Errorf("commit: %w", refusal)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStore()
			fs.setAppendErr(tc.err)
			reg := prometheus.NewRegistry()
			p := newPipeline(t, fs, Options{Registerer: reg})
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			if err := p.Submit(ctx, "dev-1", "temp", []byte(`{"c":1}`), true); !errors.Is(err, ErrStorage) {
				t.Fatalf("Submit: %v, want ErrStorage", err)
			}
			if p.Health() == nil {
				t.Error("Health reports ready after the batch failed")
			}
			if n := metricValue(t, reg, "candor_store_batch_errors_total"); n != 1 {
				t.Errorf("%v failed batches, want 1", n)
			}
			if n := metricValue(t, reg, "candor_store_readings_refused_total"); n != 0 {
				t.Errorf("%v readings counted refused alone, want 0", n)
			}
		})
	}
}

// A batch of which the store refused every reading stored nothing: it
// is not a commit, so it neither brings a failing store back to ready
// (once the seqs are used up every batch is refused whole, and the hub
// would report ready while storing nothing) nor counts as a batch
// committed or failed.
func TestAllRefusedBatchIsNotACommit(t *testing.T) {
	fs := newFakeStore()
	reg := prometheus.NewRegistry()
	p := newPipeline(t, fs, Options{Registerer: reg})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	fs.setAppendErr(errFakeStore)
	if err := p.Submit(ctx, "dev-1", "temp", []byte(`{"c":1}`), true); !errors.Is(err, ErrStorage) {
		t.Fatalf("Submit: %v", err)
	}
	if p.Health() == nil {
		t.Fatal("ready after a failed commit")
	}
	fs.setAppendErr(&store.RefusedReadingsError{Refused: []store.RefusedReading{{Index: 0, Err: errFakeStore}}})
	if err := p.Submit(ctx, "dev-1", "temp", []byte(`{"c":2}`), true); !errors.Is(err, ErrStorage) {
		t.Fatalf("Submit: %v", err)
	}
	if p.Health() == nil {
		t.Error("Health ready after a batch of which nothing was stored, while the last commit failed")
	}
	if n := metricValue(t, reg, "candor_store_batch_rows"); n != 0 {
		t.Errorf("%v batches counted committed, want 0", n)
	}
	if n := metricValue(t, reg, "candor_store_batch_errors_total"); n != 1 {
		t.Errorf("%v failed batches, want 1 (the first)", n)
	}
	if n := metricValue(t, reg, "candor_store_readings_refused_total"); n != 1 {
		t.Errorf("store refused %v, want 1", n)
	}
	// A commit that stores something still brings it back.
	fs.setAppendErr(nil)
	if err := p.Submit(ctx, "dev-1", "temp", []byte(`{"c":3}`), true); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if err := p.Health(); err != nil {
		t.Errorf("Health: %v after a commit that stored the reading", err)
	}
}
