package history_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
	"github.com/candor-iot/candor/internal/testsupport/logtest"
	"github.com/candor-iot/candor/internal/vault"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// opener stands in for the vault: it marks what it opened, and under
// which key owner.
type opener struct {
	mu     sync.Mutex
	owners []string
	err    error // what opening answers, as the vault would
}

func (o *opener) OpenReadings(ownerID, deviceID string, rs []store.Reading) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owners = append(o.owners, ownerID)
	if o.err != nil {
		return o.err
	}
	for i := range rs {
		rs[i].Payload = append([]byte(nil), rs[i].Payload...)
	}
	return nil
}

// newStore is a real SQLite file with one household and a device added
// by acc_alex (so sealed under alex's keys).
func newStore(t *testing.T) (*sqlite.DB, store.Device) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh_home", Name: "Home", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	d := store.Device{ID: "dev_meter", HouseholdID: "hh_home", Name: "Meter", Type: "smart-meter", SecretHash: "x",
		KeyOwner: "acc_alex", CreatedAt: t0}
	if err := db.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	return db, d
}

// add stores n readings of a stream, one a second from t0, with watts
// 0..n-1.
func add(t *testing.T, db *sqlite.DB, deviceID, stream string, n int) {
	t.Helper()
	rs := make([]store.Reading, n)
	for i := range rs {
		rs[i] = store.Reading{DeviceID: deviceID, Stream: stream, Time: t0.Add(time.Duration(i) * time.Second),
			Payload: []byte(`{"watts": ` + strconv.Itoa(i) + `}`), ManifestVersion: 1}
	}
	if err := db.AppendReadings(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func TestLatestFindsTheNewestReadings(t *testing.T) {
	db, d := newStore(t)
	add(t, db, d.ID, "power", 25)
	// A small page size forces paging; the newest readings must win.
	svc := history.New(history.Options{Store: db, PageSize: 4, Now: func() time.Time { return t0.Add(time.Minute) }})
	got, err := svc.Latest(context.Background(), d, []string{"power"}, 10, "viewing history")
	if err != nil {
		t.Fatal(err)
	}
	rs := got["power"]
	if len(rs) != 10 {
		t.Fatalf("got %d readings, want 10", len(rs))
	}
	var first, last struct{ Watts int }
	_ = json.Unmarshal(rs[0].Payload, &first)
	_ = json.Unmarshal(rs[9].Payload, &last)
	if first.Watts != 15 || last.Watts != 24 {
		t.Errorf("got watts %d..%d, want 15..24 (oldest first)", first.Watts, last.Watts)
	}
}

func TestReadsAreRecordedBeforeTheyAreReturned(t *testing.T) {
	ctx := context.Background()
	since, until := t0, t0.Add(time.Hour)
	tests := []struct {
		name     string
		stored   int
		read     func(s *history.Service, d store.Device) (int, error)
		logDown  bool
		want     *auditlog.Event // nil: nothing recorded
		wantN    int
		wantErr  bool
		opensFor []string
		openErr  error
		reason   string // Detail["reason"] of a refusal
	}{
		{
			name: "a read of readings", stored: 3,
			read: func(s *history.Service, d store.Device) (int, error) {
				rs, err := s.Read(ctx, d, store.ReadingQuery{Stream: "power", Since: since, Until: until, Limit: 100}, "viewing history", nil)
				return len(rs), err
			},
			want: &auditlog.Event{Action: auditlog.ActionReadingsRead, Household: "hh_home", Purpose: "viewing history",
				Subject: auditlog.Subject{Device: "dev_meter", Stream: "power", From: since, To: until}, Detail: map[string]string{"readings": "3"}},
			wantN: 3,
		},
		{
			name: "a read of nothing is not recorded",
			read: func(s *history.Service, d store.Device) (int, error) {
				rs, err := s.Read(ctx, d, store.ReadingQuery{Stream: "power", Limit: 100}, "viewing history", nil)
				return len(rs), err
			},
		},
		{
			name: "a read the log cannot take returns nothing", stored: 3, logDown: true,
			read: func(s *history.Service, d store.Device) (int, error) {
				rs, err := s.Read(ctx, d, store.ReadingQuery{Stream: "power", Limit: 100}, "viewing history", nil)
				return len(rs), err
			},
			wantErr: true,
		},
		{
			name: "a page of every stream is one read, opened under the key owner", stored: 3,
			read: func(s *history.Service, d store.Device) (int, error) {
				got, err := s.Latest(ctx, d, []string{"power", "energy"}, 120, "viewing history")
				return len(got["power"]) + len(got["energy"]), err
			},
			want: &auditlog.Event{Action: auditlog.ActionReadingsRead, Household: "hh_home", Purpose: "viewing history",
				Subject: auditlog.Subject{Device: "dev_meter"}, Detail: map[string]string{"readings": "3"}},
			wantN: 3, opensFor: []string{"acc_alex", "acc_alex"},
		},
		{
			name: "a page the hub cannot open is recorded as refused, not viewed", stored: 3, openErr: vault.ErrUserHeld,
			read: func(s *history.Service, d store.Device) (int, error) {
				got, err := s.Latest(ctx, d, []string{"power"}, 120, "viewing history")
				return len(got["power"]), err
			},
			want: &auditlog.Event{Action: history.ActionReadingsRefused, Household: "hh_home", Purpose: "viewing history",
				Subject: auditlog.Subject{Device: "dev_meter"}, Detail: map[string]string{"readings": "3"}},
			wantErr: true, reason: "user-held",
		},
		{
			name: "a read its opener refuses is recorded as refused", stored: 2,
			read: func(s *history.Service, d store.Device) (int, error) {
				rs, err := s.Read(ctx, d, store.ReadingQuery{Stream: "power", Limit: 100}, "viewing history",
					func([]store.Reading) error { return vault.ErrWrongIdentity })
				return len(rs), err
			},
			want: &auditlog.Event{Action: history.ActionReadingsRefused, Household: "hh_home", Purpose: "viewing history",
				Subject: auditlog.Subject{Device: "dev_meter", Stream: "power"}, Detail: map[string]string{"readings": "2"}},
			wantErr: true, reason: "wrong-identity",
		},
		{
			name: "a page the log cannot take shows nothing", stored: 3, logDown: true,
			read: func(s *history.Service, d store.Device) (int, error) {
				got, err := s.Latest(ctx, d, []string{"power"}, 120, "viewing history")
				return len(got["power"]), err
			},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, d := newStore(t)
			add(t, db, d.ID, "power", tt.stored)
			log := logtest.Open(t)
			if tt.logDown {
				log.Close()
			}
			op := &opener{err: tt.openErr}
			svc := history.New(history.Options{Store: db, Vault: op, Log: log, Now: func() time.Time { return t0.Add(time.Minute) }})
			n, err := tt.read(svc, d)
			if (err != nil) != tt.wantErr || n != tt.wantN {
				t.Fatalf("read %d readings, err %v; want %d, error %v", n, err, tt.wantN, tt.wantErr)
			}
			var evs []auditlog.Event
			if !tt.logDown {
				evs = logtest.Events(t, log, "")
			}
			if tt.want == nil {
				if len(evs) != 0 {
					t.Errorf("recorded %+v, want nothing", evs)
				}
			} else if len(evs) != 1 || evs[0].Action != tt.want.Action || evs[0].Household != tt.want.Household ||
				evs[0].Purpose != tt.want.Purpose || !evs[0].Subject.From.Equal(tt.want.Subject.From) ||
				evs[0].Subject.Device != tt.want.Subject.Device || evs[0].Subject.Stream != tt.want.Subject.Stream ||
				evs[0].Detail["readings"] != tt.want.Detail["readings"] || evs[0].Detail["reason"] != tt.reason {
				t.Errorf("recorded %+v, want %+v with reason %q", evs, *tt.want, tt.reason)
			}
			if tt.opensFor != nil && len(op.owners) != len(tt.opensFor) {
				t.Errorf("opened under %v, want %v", op.owners, tt.opensFor)
			}
			for i, o := range op.owners {
				if i < len(tt.opensFor) && o != tt.opensFor[i] {
					t.Errorf("opened under %v, want %v", op.owners, tt.opensFor)
				}
			}
		})
	}
}
