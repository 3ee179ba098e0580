package firmware

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		want     State
		wantPath string // "" means accepted
	}{
		{"firmware only", `{"firmware":"1.2.3"}`, State{Firmware: "1.2.3"}, ""},
		{"both", `{"firmware": "1.4.2-rc.1+build.7", "hardware": "rev-b"}`, State{Firmware: "1.4.2-rc.1+build.7", Hardware: "rev-b"}, ""},
		{"keys in any order", `{"hardware":"B","firmware":"v2"}`, State{Firmware: "v2", Hardware: "B"}, ""},
		{"no firmware", `{"hardware":"rev-b"}`, State{}, "$.firmware"},
		{"empty firmware", `{"firmware":""}`, State{}, "$.firmware"},
		{"space in version", `{"firmware":"1.2 beta"}`, State{}, "$.firmware"},
		{"markup in version", `{"firmware":"<b>1</b>"}`, State{}, "$.firmware"},
		{"version too long", `{"firmware":"` + strings.Repeat("1", 65) + `"}`, State{}, "$.firmware"},
		{"number, not string", `{"firmware":1.2}`, State{}, "$.firmware"},
		{"unknown key", `{"firmware":"1","owner":"Ada"}`, State{}, "$:"},
		{"duplicate key", `{"firmware":"1","firmware":"2"}`, State{}, "$.firmware"},
		{"not an object", `["1.2.3"]`, State{}, "$:"},
		{"trailing data", `{"firmware":"1"} {}`, State{}, "$:"},
		{"truncated", `{"firmware":"1"`, State{}, "$:"},
		{"too large", `{"firmware":"1","hardware":"` + strings.Repeat("a", MaxStateBytes) + `"}`, State{}, "$:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseState([]byte(tc.payload))
			if tc.wantPath == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseState = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantPath) {
				t.Fatalf("err = %v, want ErrInvalid at %s", err, tc.wantPath)
			}
			if strings.Contains(err.Error(), "Ada") || strings.Contains(err.Error(), "<b>") {
				t.Errorf("error carries the payload: %v", err)
			}
		})
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{`{"firmware":"1.2.3"}`, `{"firmware":"1","hardware":"rev-b"}`, `{"firmware":"1","firmware":"2"}`, `{}`, `[]`, `{"firmware":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		if checkVersion(st.Firmware) != nil || st.Hardware != "" && checkVersion(st.Hardware) != nil {
			t.Fatalf("accepted a version outside the charset: %+v", st)
		}
	})
}

type recorder struct {
	mu  sync.Mutex
	evs []auditlog.Event
}

func (r *recorder) Record(_ context.Context, ev auditlog.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ev.Validate(); err != nil {
		return err
	}
	r.evs = append(r.evs, ev)
	return nil
}

func TestReportStateKeepsChanges(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateHousehold(ctx, store.Household{ID: "hh", Name: "Home", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDevice(ctx, store.Device{ID: "dev_1", HouseholdID: "hh", Name: "T", Type: "thermostat", SecretHash: "x", CreatedAt: at, CredentialSetAt: at}); err != nil {
		t.Fatal(err)
	}
	clock := at
	rec := &recorder{}
	s := New(db, rec, nil, func() time.Time { clock = clock.Add(time.Minute); return clock })
	for _, p := range []string{`{"firmware":"1.3.0"}`, `{"firmware":"1.3.0"}`, `{"firmware":"1.4.2","hardware":"rev-b"}`} {
		if err := s.ReportState(ctx, "dev_1", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReportState(ctx, "dev_1", []byte(`{"firmware":"bad version"}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad version: err = %v", err)
	}
	h, err := s.History(ctx, "dev_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Firmware != "1.4.2" || h[0].Hardware != "rev-b" || h[1].Firmware != "1.3.0" {
		t.Fatalf("history = %+v, want 1.4.2 then 1.3.0", h)
	}
	if len(rec.evs) != 2 || rec.evs[1].Action != ActionFirmwareChange || rec.evs[1].Detail["firmware"] != "1.4.2" || rec.evs[1].Subject.Device != "dev_1" {
		t.Errorf("events = %+v, want one per change", rec.evs)
	}
}
