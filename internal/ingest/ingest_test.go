package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/store"
)

func TestValidStream(t *testing.T) {
	tests := []struct {
		stream string
		want   bool
	}{
		{"temperature", true},
		{"heart_rate", true},
		{"a", true},
		{"_", true},
		{"0", true},
		{"sensor_2", true},
		{"controls", true}, // only the exact name is reserved
		{"control_", true},
		{strings.Repeat("a", 64), true},

		{"", false},
		{strings.Repeat("a", 65), false},
		{"control", false},
		{"Temp", false},
		{"TEMP", false},
		{"a/b", false},
		{"a-b", false},
		{"a.b", false},
		{"a b", false},
		{" a", false},
		{"a\n", false},
		{"a\x00", false},
		{"+", false},
		{"#", false},
		{"$SYS", false},
		{"température", false}, // non-ASCII
		{"ａ", false},           // fullwidth a
	}
	for _, tc := range tests {
		if got := ValidStream(tc.stream); got != tc.want {
			t.Errorf("ValidStream(%q) = %v, want %v", tc.stream, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	const limit = 128
	p := checkOnly(t, Options{MaxPayloadBytes: limit})

	// objectOfLen returns a valid JSON object exactly n bytes long.
	objectOfLen := func(n int) []byte {
		return []byte(`{"k":"` + strings.Repeat("x", n-len(`{"k":""}`)) + `"}`)
	}
	exact := objectOfLen(limit)
	over := objectOfLen(limit + 1)
	if len(exact) != limit || len(over) != limit+1 || !json.Valid(exact) || !json.Valid(over) {
		t.Fatalf("bad test payloads: %d %d", len(exact), len(over))
	}

	tests := []struct {
		name    string
		stream  string
		payload []byte
		reason  string // "" means accepted
	}{
		{"object", "temperature", []byte(`{"c":21.5}`), ""},
		{"empty object", "temperature", []byte(`{}`), ""},
		{"nested", "heart_rate", []byte(`{"a":{"b":[1,2,{"c":null}]},"d":true}`), ""},
		{"leading spaces", "a", []byte("  \t\r\n{\"c\":1}"), ""},
		{"trailing spaces", "a", []byte("{\"c\":1} \n"), ""},
		{"unicode escapes", "a", []byte(`{"name":"\u00e9\ud83d\ude00"}`), ""},
		{"utf-8 text", "a", []byte(`{"name":"Zoë 🌡"}`), ""},
		{"exactly the limit", "a", exact, ""},
		{"64-char stream", strings.Repeat("s", 64), []byte(`{}`), ""},

		{"empty payload", "a", []byte{}, ReasonNotJSON},
		{"nil payload", "a", nil, ReasonNotJSON},
		{"only spaces", "a", []byte("   \n"), ReasonNotJSON},
		{"array", "a", []byte(`[1,2]`), ReasonNotJSON},
		{"array of objects", "a", []byte(`[{}]`), ReasonNotJSON},
		{"string", "a", []byte(`"hello"`), ReasonNotJSON},
		{"number", "a", []byte(`42`), ReasonNotJSON},
		{"null", "a", []byte(`null`), ReasonNotJSON},
		{"true", "a", []byte(`true`), ReasonNotJSON},
		{"truncated object", "a", []byte(`{"c":21.`), ReasonNotJSON},
		{"unclosed object", "a", []byte(`{`), ReasonNotJSON},
		{"two objects", "a", []byte(`{}{}`), ReasonNotJSON},
		{"trailing garbage", "a", []byte(`{"c":1}x`), ReasonNotJSON},
		{"trailing comma", "a", []byte(`{"c":1,}`), ReasonNotJSON},
		{"single quotes", "a", []byte(`{'c':1}`), ReasonNotJSON},
		{"control char in string", "a", []byte("{\"c\":\"\x01\"}"), ReasonNotJSON},
		{"byte order mark", "a", []byte("\xef\xbb\xbf{}"), ReasonNotJSON},
		{"leading NUL", "a", []byte("\x00{}"), ReasonNotJSON},
		{"vertical tab is not JSON space", "a", []byte("\v{}"), ReasonNotJSON},
		{"limit+1", "a", over, ReasonTooLarge},
		{"huge non-JSON is too large first", "a", bytes.Repeat([]byte("x"), 10*limit), ReasonTooLarge},

		{"empty stream", "", []byte(`{}`), ReasonBadStream},
		{"65-char stream", strings.Repeat("s", 65), []byte(`{}`), ReasonBadStream},
		{"upper case", "Temp", []byte(`{}`), ReasonBadStream},
		{"slash", "a/b", []byte(`{}`), ReasonBadStream},
		{"reserved control", "control", []byte(`{}`), ReasonBadStream},
		{"dash", "a-b", []byte(`{}`), ReasonBadStream},
		{"plus wildcard", "+", []byte(`{}`), ReasonBadStream},
		{"hash wildcard", "#", []byte(`{}`), ReasonBadStream},
		// The stream is checked first: a reading that is wrong in several
		// ways is refused for its stream.
		{"bad stream and too large", "A", over, ReasonBadStream},
		{"bad stream and not JSON", "A", []byte(`[]`), ReasonBadStream},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check("dev-1", tc.stream, tc.payload)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Check(%q, %q) = %v, want accepted", tc.stream, tc.payload, err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Check(%q, %q) = %v (%T), want *RefusedError %s", tc.stream, tc.payload, err, err, tc.reason)
			}
			if re.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q", re.Reason, tc.reason)
			}
			if re.DeviceID != "dev-1" || re.Stream != tc.stream {
				t.Errorf("RefusedError names device %q stream %q, want dev-1 %q", re.DeviceID, re.Stream, tc.stream)
			}
			if re.Detail == "" {
				t.Error("RefusedError has no Detail")
			}
		})
	}
}

// TestCheckInvalidUTF8 pins that json.Valid alone decides: the hub does
// not reject JSON strings holding invalid UTF-8 unless json.Valid does.
func TestCheckInvalidUTF8(t *testing.T) {
	p := checkOnly(t, Options{})
	for _, payload := range [][]byte{
		[]byte("{\"c\":\"\xff\"}"),
		[]byte("{\"\xc3\x28\":1}"),
		[]byte("{\"c\":\"\xed\xa0\x80\"}"), // encoded surrogate
	} {
		err := p.Check("d", "s", payload)
		if accepted := err == nil; accepted != json.Valid(payload) {
			t.Errorf("Check(%q) = %v, but json.Valid = %v", payload, err, json.Valid(payload))
		}
	}
}

func TestCheckDefaultLimit(t *testing.T) {
	p := checkOnly(t, Options{}) // MaxPayloadBytes 0 takes the 64 KiB default
	const def = 64 << 10
	mk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = ' '
		}
		b[0], b[n-2], b[n-1] = '{', '}', ' '
		return b
	}
	if err := p.Check("d", "s", mk(def)); err != nil {
		t.Errorf("payload of exactly 64 KiB refused: %v", err)
	}
	var re *RefusedError
	if err := p.Check("d", "s", mk(def+1)); !errors.As(err, &re) || re.Reason != ReasonTooLarge {
		t.Errorf("payload of 64 KiB + 1 = %v, want %s", err, ReasonTooLarge)
	}
}

func TestRefusedErrorCarriesNoPayload(t *testing.T) {
	const secret = "s3cr3t-heartbeat-do-not-log"
	p := checkOnly(t, Options{MaxPayloadBytes: 256})
	payloads := [][]byte{
		[]byte(`[{"pw":"` + secret + `"}]`),                          // not an object
		[]byte(`{"pw":"` + secret + `"`),                             // truncated
		[]byte(`{"pw":"` + secret + strings.Repeat("x", 300) + `"}`), // too large
		[]byte(secret), // not JSON at all
	}
	for _, stream := range []string{"ok_stream", "Bad/Stream"} {
		for _, payload := range payloads {
			err := p.Check("dev-1", stream, payload)
			if err == nil {
				t.Fatalf("Check(%q, %q) accepted", stream, payload)
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RefusedError", err)
			}
			for name, s := range map[string]string{"Error()": err.Error(), "Detail": re.Detail, "%+v": fmt.Sprintf("%+v", err)} {
				if strings.Contains(s, secret) || strings.Contains(s, "pw") {
					t.Errorf("%s leaks payload: %s", name, s)
				}
			}
			if !strings.Contains(err.Error(), "dev-1") {
				t.Errorf("Error() = %q does not name the device", err.Error())
			}
		}
	}
}

func TestSubmitWaitIsDurable(t *testing.T) {
	db := openStore(t)
	p := newPipeline(t, db, Options{})
	// The hub, not the device, sets the time, in UTC whatever the clock's
	// location.
	fixed := time.Date(2025, 6, 1, 14, 30, 0, 123456789, time.FixedZone("CEST", 2*3600))
	p.now = func() time.Time { return fixed }
	ctx := t.Context()

	payload := []byte(`{"c":21.5}`)
	if err := p.Submit(ctx, "dev-1", "temperature", payload, true); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	// Right after return, without Close: the reading is committed.
	rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("store holds %d readings right after Submit(wait=true), want 1", len(rs))
	}
	r := rs[0]
	if r.Seq <= 0 {
		t.Errorf("Seq = %d, want > 0", r.Seq)
	}
	if r.Stream != "temperature" || !bytes.Equal(r.Payload, payload) {
		t.Errorf("stored %q %q, want temperature %q", r.Stream, r.Payload, payload)
	}
	if !r.Time.Equal(fixed) || r.Time.Location() != time.UTC {
		t.Errorf("Time = %v (%v), want %v in UTC", r.Time, r.Time.Location(), fixed.UTC())
	}
}

// TestSubmitWaitSequential submits with the real clock and checks every
// reading is already stored when Submit returns, in order.
func TestSubmitWaitSequential(t *testing.T) {
	db := openStore(t)
	p := newPipeline(t, db, Options{BatchMaxWait: time.Millisecond})
	ctx := t.Context()
	var lastSeq int64
	for i := range 20 {
		before := time.Now()
		payload := fmt.Appendf(nil, `{"i":%d}`, i)
		if err := p.Submit(ctx, "dev-1", "s", payload, true); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		after := time.Now()
		rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dev-1", AfterSeq: lastSeq})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || !bytes.Equal(rs[0].Payload, payload) {
			t.Fatalf("after Submit %d the store has %d new readings (%v), want exactly this one", i, len(rs), rs)
		}
		r := rs[0]
		if r.Seq <= lastSeq {
			t.Errorf("Seq %d not after %d", r.Seq, lastSeq)
		}
		if r.Time.Before(before) || r.Time.After(after) || r.Time.Location() != time.UTC {
			t.Errorf("Time %v not the hub's UTC time within [%v, %v]", r.Time, before, after)
		}
		lastSeq = r.Seq
	}
}

func TestSubmitRefused(t *testing.T) {
	db := openStore(t)
	reg := prometheus.NewRegistry()
	p := newPipeline(t, db, Options{MaxPayloadBytes: 64, Registerer: reg, CounterFlushInterval: time.Hour})
	ctx := t.Context()
	for _, wait := range []bool{false, true} {
		err := p.Submit(ctx, "dev-1", "s", []byte(`[1]`), wait)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonNotJSON {
			t.Fatalf("Submit(wait=%v) = %v, want RefusedError %s", wait, err, ReasonNotJSON)
		}
	}
	p.Close()
	if n, err := db.CountReadings(ctx, "dev-1"); err != nil || n != 0 {
		t.Errorf("CountReadings = %d, %v; want 0 (refused readings are not stored)", n, err)
	}
	if got := metricValue(t, reg, "candor_readings_refused_total", "reason", ReasonNotJSON); got != 2 {
		t.Errorf("refused{not_json_object} = %v, want 2", got)
	}
	if got := metricValue(t, reg, "candor_readings_accepted_total"); got != 0 {
		t.Errorf("accepted = %v, want 0", got)
	}
}

// TestSubmitCancelledWaitStillCommits: a caller that stops waiting gets
// its context's error, but the reading it handed over is still written.
func TestSubmitCancelledWaitStillCommits(t *testing.T) {
	db := openStore(t)
	// A batch window far longer than the test: nothing is committed
	// before Close, so the outcome does not depend on timing.
	p := newPipeline(t, db, Options{BatchMaxWait: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := p.Submit(ctx, "dev-1", "s", []byte(`{}`), true)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit with cancelled context = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "dev-1") {
		t.Errorf("error %q does not name the device", err)
	}
	if n, _ := db.CountReadings(t.Context(), "dev-1"); n != 0 {
		t.Fatalf("reading committed before the batch window or Close (%d)", n)
	}
	p.Close()
	if n, err := db.CountReadings(t.Context(), "dev-1"); err != nil || n != 1 {
		t.Errorf("CountReadings after Close = %d, %v; want 1", n, err)
	}
}

func TestCloseFlushesQueued(t *testing.T) {
	db := openStore(t)
	reg := prometheus.NewRegistry()
	p := newPipeline(t, db, Options{BatchMaxWait: time.Minute, Registerer: reg})
	ctx := t.Context()
	const n = 500 // below the default BatchMaxRows, so only Close flushes
	for i := range n {
		if err := p.Submit(ctx, fmt.Sprintf("dev-%d", i%5), "s", fmt.Appendf(nil, `{"i":%d}`, i), false); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	if got, _ := db.CountReadings(ctx, "dev-0"); got != 0 {
		t.Fatalf("%d readings committed before Close; the test assumes none", got)
	}
	p.Close()
	for d := range 5 {
		if got, err := db.CountReadings(ctx, fmt.Sprintf("dev-%d", d)); err != nil || got != n/5 {
			t.Errorf("dev-%d: CountReadings = %d, %v; want %d", d, got, err, n/5)
		}
	}
	if got := metricValue(t, reg, "candor_readings_accepted_total"); got != n {
		t.Errorf("accepted = %v, want %d", got, n)
	}

	// Closed: nothing more is taken, with either wait mode.
	for _, wait := range []bool{false, true} {
		if err := p.Submit(ctx, "dev-0", "s", []byte(`{}`), wait); !errors.Is(err, ErrClosed) {
			t.Errorf("Submit(wait=%v) after Close = %v, want ErrClosed", wait, err)
		}
	}
	p.Close() // idempotent
	if got, _ := db.CountReadings(ctx, "dev-0"); got != n/5 {
		t.Errorf("CountReadings = %d after Submit on a closed pipeline, want %d", got, n/5)
	}
}

// TestConcurrentSubmitters: many connections at once, half acknowledged
// (wait) and half fire-and-forget; after Close each reading is stored
// exactly once.
func TestConcurrentSubmitters(t *testing.T) {
	const (
		goroutines = 50
		perG       = 200
	)
	db := openStore(t)
	reg := prometheus.NewRegistry()
	// Small batches so the test crosses many batch boundaries, including
	// full-batch flushes and backpressure (maxPending = 4*64 < 50*200).
	p := newPipeline(t, db, Options{BatchMaxRows: 64, BatchMaxWait: 2 * time.Millisecond, Registerer: reg})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			dev := fmt.Sprintf("dev-%02d", g)
			for i := range perG {
				wait := (g+i)%2 == 0
				payload := fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)
				if err := p.Submit(ctx, dev, "s", payload, wait); err != nil {
					errs <- fmt.Errorf("%s reading %d (wait=%v): %w", dev, i, wait, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("submitters did not finish in time")
		}
	}
	p.Close()

	// The checks get their own context: on a loaded machine (the race
	// detector, other tests) the submitters may use most of theirs.
	ctx = t.Context()
	for g := range goroutines {
		dev := fmt.Sprintf("dev-%02d", g)
		n, err := db.CountReadings(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		if n != perG {
			t.Errorf("%s: %d readings stored, want %d", dev, n, perG)
			continue
		}
		rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev, Limit: perG})
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, perG)
		for _, r := range rs {
			var v struct{ G, I int }
			if err := json.Unmarshal(r.Payload, &v); err != nil || v.G != g || v.I < 0 || v.I >= perG {
				t.Fatalf("%s: unexpected payload %q", dev, r.Payload)
			}
			if seen[v.I] {
				t.Errorf("%s: reading %d stored twice", dev, v.I)
			}
			seen[v.I] = true
		}
		// One goroutine submits in sequence and batches commit in order, so
		// a device's readings are stored in submission order.
		last := -1
		for _, r := range rs {
			var v struct{ I int }
			_ = json.Unmarshal(r.Payload, &v)
			if v.I < last {
				t.Errorf("%s: reading %d stored after %d", dev, v.I, last)
				break
			}
			last = v.I
		}
	}
	if got := metricValue(t, reg, "candor_readings_accepted_total"); got != goroutines*perG {
		t.Errorf("accepted = %v, want %d", got, goroutines*perG)
	}
	if got := metricValue(t, reg, "candor_store_batch_errors_total"); got != 0 {
		t.Errorf("batch errors = %v, want 0", got)
	}
	batches := metricValue(t, reg, "candor_store_batch_rows")
	if batches < 1 || batches > goroutines*perG {
		t.Errorf("batch count %v out of range", batches)
	}
	t.Logf("%d readings in %v batches (%.1f per batch)", goroutines*perG, batches, goroutines*perG/batches)
}

func TestMetrics(t *testing.T) {
	db := openStore(t)
	reg := prometheus.NewRegistry()
	p := newPipeline(t, db, Options{MaxPayloadBytes: 32, Registerer: reg})
	ctx := t.Context()

	submit := func(stream, payload string) {
		_ = p.Submit(ctx, "dev-1", stream, []byte(payload), true)
	}
	for range 3 {
		submit("s", `{"ok":1}`)
	}
	submit("s", `{"x":"`+strings.Repeat("y", 40)+`"}`) // too large
	submit("s", `[]`)                                  // not an object
	submit("s", `{`)                                   // truncated
	submit("S", `{}`)                                  // bad stream
	submit("control", `{}`)                            // reserved stream
	submit("a/b", `{}`)                                // bad stream
	p.Refuse("dev-2", errors.New("something else"))    // not a RefusedError

	want := map[string]float64{ReasonTooLarge: 1, ReasonNotJSON: 2, ReasonBadStream: 3, "other": 1, ReasonOverloaded: 0}
	for reason, n := range want {
		if got := metricValue(t, reg, "candor_readings_refused_total", "reason", reason); got != n {
			t.Errorf("refused{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if got := metricValue(t, reg, "candor_readings_accepted_total"); got != 3 {
		t.Errorf("accepted = %v, want 3", got)
	}
	if got := metricValue(t, reg, "candor_store_batch_rows"); got != 3 {
		t.Errorf("batch_rows observations = %v, want 3 (one batch per waited submit)", got)
	}
	if got := metricValue(t, reg, "candor_store_batch_seconds"); got != 3 {
		t.Errorf("batch_seconds observations = %v, want 3", got)
	}
	if got := metricValue(t, reg, "candor_store_batch_errors_total"); got != 0 {
		t.Errorf("batch errors = %v, want 0", got)
	}
	if got := p.PendingCounters("dev-1").Refused + p.PendingCounters("dev-2").Refused; got != 7 {
		// The flush interval is the 5 s default, far longer than this test.
		t.Errorf("pending Refused = %d, want 7", got)
	}
}

func TestCountersFlushToStore(t *testing.T) {
	db := openStore(t)
	createDevice(t, db, "dev-1")
	createDevice(t, db, "dev-2")
	p := newPipeline(t, db, Options{CounterFlushInterval: 10 * time.Millisecond})
	ctx := t.Context()

	_ = p.Submit(ctx, "dev-1", "BAD", []byte(`{}`), true)
	_ = p.Submit(ctx, "dev-1", "s", []byte(`nope`), false)
	p.Refuse("dev-1", &RefusedError{Reason: ReasonTooLarge})
	p.Count("dev-1", store.DeviceCounters{ACLDenied: 2, AuthFailures: 1})
	p.Count("dev-2", store.DeviceCounters{AuthFailures: 5})
	p.Count("no-such-device", store.DeviceCounters{AuthFailures: 1}) // ignored by the store, harmless

	want1 := store.DeviceCounters{Refused: 3, ACLDenied: 2, AuthFailures: 1}
	want2 := store.DeviceCounters{AuthFailures: 5}
	// The flush is done once the counts are in the store and no longer
	// pending (they stay visible as pending until the write returns).
	eventually(t, "counters in the store and none pending", func() bool {
		d1, err1 := db.Device(ctx, "dev-1")
		d2, err2 := db.Device(ctx, "dev-2")
		return err1 == nil && err2 == nil && d1.Counters == want1 && d2.Counters == want2 &&
			p.PendingCounters("dev-1") == (store.DeviceCounters{})
	})

	// Later counts add to what is stored; nothing is counted twice.
	p.Count("dev-1", store.DeviceCounters{Refused: 1})
	want1.Refused++
	eventually(t, "second flush", func() bool {
		d, err := db.Device(ctx, "dev-1")
		return err == nil && d.Counters == want1
	})
	// More flushes, as the ticker runs them, must not re-add: run them
	// here, so the test knows they happened instead of hoping a sleep
	// was long enough.
	for range 3 {
		p.flushCounters()
	}
	if d, _ := db.Device(ctx, "dev-1"); d.Counters != want1 {
		t.Errorf("counters after more flushes = %+v, want %+v", d.Counters, want1)
	}
}

func TestPendingCountersBeforeFlush(t *testing.T) {
	db := openStore(t)
	createDevice(t, db, "dev-1")
	// No tick during the test: only Close flushes.
	p := newPipeline(t, db, Options{CounterFlushInterval: time.Hour})
	for range 4 {
		p.Refuse("dev-1", &RefusedError{Reason: ReasonNotJSON})
	}
	p.Count("dev-1", store.DeviceCounters{ACLDenied: 1})
	want := store.DeviceCounters{Refused: 4, ACLDenied: 1}
	if got := p.PendingCounters("dev-1"); got != want {
		t.Errorf("PendingCounters = %+v, want %+v", got, want)
	}
	if got := p.PendingCounters("other"); got != (store.DeviceCounters{}) {
		t.Errorf("PendingCounters(other) = %+v, want zero", got)
	}
	if d, _ := db.Device(t.Context(), "dev-1"); d.Counters != (store.DeviceCounters{}) {
		t.Fatalf("counters flushed before the interval: %+v", d.Counters)
	}
	p.Close()
	if d, err := db.Device(t.Context(), "dev-1"); err != nil || d.Counters != want {
		t.Errorf("stored counters after Close = %+v, %v; want %+v", d.Counters, err, want)
	}
}

func TestConcurrentCount(t *testing.T) {
	db := openStore(t)
	createDevice(t, db, "dev-1")
	p := newPipeline(t, db, Options{CounterFlushInterval: time.Millisecond})
	const goroutines, per = 20, 250
	done := make(chan struct{})
	for range goroutines {
		go func() {
			defer func() { done <- struct{}{} }()
			for range per {
				p.Count("dev-1", store.DeviceCounters{ACLDenied: 1})
			}
		}()
	}
	for range goroutines {
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatal("counting goroutines stuck")
		}
	}
	p.Close()
	if d, err := db.Device(t.Context(), "dev-1"); err != nil || d.Counters.ACLDenied != goroutines*per {
		t.Errorf("ACLDenied = %d, %v; want %d", d.Counters.ACLDenied, err, goroutines*per)
	}
}
