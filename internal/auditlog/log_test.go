package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/auditlog/verify"
)

func TestAppendEveryKindAndReadBack(t *testing.T) {
	ctx := context.Background()
	l, dir := newLog(t)
	kinds := allKinds()
	for i, ev := range kinds {
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		kinds[i] = ev
		t.Run(ev.Action, func(t *testing.T) {
			idx, err := l.Append(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if idx != uint64(i) {
				t.Fatalf("index %d, want %d", idx, i)
			}
			got, err := l.Entry(ctx, idx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Event, ev) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got.Event, ev)
			}
			if cp := checkpointOf(t, l); cp.Size != idx+1 {
				t.Fatalf("checkpoint size %d after appending index %d", cp.Size, idx)
			}
		})
	}
	// The same after a reopen, through the range reader.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, Options{})
	defer l2.Close()
	if l2.Size() != uint64(len(kinds)) {
		t.Fatalf("size after reopen %d, want %d", l2.Size(), len(kinds))
	}
	n := 0
	for e, err := range l2.Entries(ctx, 0, 1000) {
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e.Event, kinds[e.Index]) {
			t.Fatalf("entry %d after reopen: %+v", e.Index, e.Event)
		}
		n++
	}
	if n != len(kinds) {
		t.Fatalf("Entries yielded %d, want %d", n, len(kinds))
	}
	if r := l2.Recovery(); r.Repaired() || r.Entries != uint64(len(kinds)) {
		t.Fatalf("clean reopen reported %v", r)
	}
}

func TestEntryOutOfRange(t *testing.T) {
	l, _ := newLog(t)
	appendN(t, l, 0, 3)
	if _, err := l.Entry(context.Background(), 3); !errors.Is(err, ErrRange) {
		t.Fatalf("Entry(3) of 3: %v, want ErrRange", err)
	}
	if _, err := l.InclusionProof(context.Background(), 0, 4); !errors.Is(err, ErrRange) {
		t.Fatalf("proof beyond size: %v", err)
	}
	if _, err := l.ConsistencyProof(context.Background(), 3, 2); !errors.Is(err, ErrRange) {
		t.Fatalf("consistency 3..2: %v", err)
	}
}

func TestEmptyLog(t *testing.T) {
	l, dir := newLog(t)
	cp := checkpointOf(t, l)
	if cp.Size != 0 || !bytes.Equal(cp.Root, refRoot(nil)) {
		t.Fatalf("empty checkpoint %d %x", cp.Size, cp.Root)
	}
	l.Close()
	l2 := openLog(t, dir, Options{})
	defer l2.Close()
	if l2.Size() != 0 {
		t.Fatalf("size %d", l2.Size())
	}
	if _, err := verify.Dir(context.Background(), dir, testKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidEventsAreRefusedNamingTheField(t *testing.T) {
	l, _ := newLog(t)
	good := event(0)
	cases := []struct {
		field string
		mut   func(*Event)
	}{
		{"action", func(e *Event) { e.Action = "" }},
		{"action", func(e *Event) { e.Action = "Readings.Read" }},
		{"action", func(e *Event) { e.Action = "read" }},
		{"action", func(e *Event) { e.Action = "a.b.c.d.e" }},
		{"action", func(e *Event) { e.Action = "readings..read" }},
		{"actor.kind", func(e *Event) { e.Actor.Kind = "" }},
		{"actor.kind", func(e *Event) { e.Actor.Kind = "robot" }},
		{"actor.id", func(e *Event) { e.Actor = Actor{Kind: ActorPerson} }},
		{"actor.id", func(e *Event) { e.Actor.ID = "acc alex" }},
		{"household", func(e *Event) { e.Household = strings.Repeat("h", MaxIDLen+1) }},
		{"subject.device", func(e *Event) { e.Subject.Device = "dev\n1" }},
		{"subject.to", func(e *Event) { e.Subject.From, e.Subject.To = t0, t0.Add(-time.Second) }},
		{"subject.from", func(e *Event) { e.Subject.From = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"purpose", func(e *Event) { e.Purpose = strings.Repeat("p", MaxPurposeLen+1) }},
		{"purpose", func(e *Event) { e.Purpose = "bad\x00purpose" }},
		{"detail[Key]", func(e *Event) { e.Detail = map[string]string{"Key": "v"} }},
		{"detail[v]", func(e *Event) { e.Detail = map[string]string{"v": "\xff"} }},
		{"detail", func(e *Event) {
			e.Detail = map[string]string{}
			for i := range MaxDetailKeys + 1 {
				e.Detail[fmt.Sprintf("k%d", i)] = "1"
			}
		}},
	}
	for _, c := range cases {
		ev := good
		ev.Detail = map[string]string{"n": "0"}
		c.mut(&ev)
		_, err := l.Append(context.Background(), ev)
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: got %v, want a FieldError", c.field, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("error names %q, want %q (%v)", fe.Field, c.field, err)
		}
	}
	if l.Size() != 0 {
		t.Fatalf("invalid events were logged: size %d", l.Size())
	}
	// A batch with one bad event logs nothing and names its position.
	evs := []Event{event(1), event(2), {Action: "x.y"}}
	if _, err := l.AppendBatch(context.Background(), evs); err == nil || !strings.Contains(err.Error(), "event 2 of 3") {
		t.Fatalf("batch error %v", err)
	}
}

func TestZeroTimeIsFilled(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	dir := t.TempDir()
	l := openLog(t, dir, Options{Now: func() time.Time { return now }})
	defer l.Close()
	ev := event(0)
	ev.Time = time.Time{}
	idx, err := l.Append(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Entry(context.Background(), idx)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Event.Time.Equal(now) || e.Event.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v in UTC", e.Event.Time, now)
	}
}

func TestCanonicalEncoding(t *testing.T) {
	for i, ev := range allKinds() {
		ev.Time = t0.In(time.FixedZone("CET", 3600))
		data := ev.appendCanonical(nil)
		// Canonical means: canonicalizing it again changes nothing...
		c, err := logformat.Canonicalize(data)
		if err != nil || !bytes.Equal(c, data) {
			t.Fatalf("%d: not canonical: %s (%v)", i, data, err)
		}
		// ...and any other rendering of the same event canonicalizes to it.
		pretty, _ := jsonIndent(data)
		c, err = logformat.Canonicalize(pretty)
		if err != nil || !bytes.Equal(c, data) {
			t.Fatalf("%d: pretty form canonicalizes to %s", i, c)
		}
		got, err := ParseEvent(data)
		if err != nil {
			t.Fatalf("%d: ParseEvent: %v", i, err)
		}
		if !bytes.Equal(got.appendCanonical(nil), data) {
			t.Fatalf("%d: round trip changed the event", i)
		}
		if _, err := ParseEvent(pretty); err == nil {
			t.Fatalf("%d: ParseEvent accepted a non-canonical entry", i)
		}
	}
}

func TestProofsForEverySizeUpTo300(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t)
	const n = 300
	var leaves [][]byte
	// Batches of varying size so that checkpoints land on many sizes.
	for i := 0; i < n; {
		k := min(1+i%7, n-i)
		evs := make([]Event, k)
		for j := range evs {
			evs[j] = event(i + j)
		}
		if _, err := l.AppendBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for j := range evs {
			e, err := l.Entry(ctx, uint64(i+j))
			if err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, leafHash(e.Data))
		}
		i += k
	}
	roots := make([][]byte, n+1)
	for size := 0; size <= n; size++ {
		roots[size] = refRoot(leaves[:size])
		got, err := l.RootHash(ctx, uint64(size))
		if err != nil || !bytes.Equal(got, roots[size]) {
			t.Fatalf("RootHash(%d) = %x, %v; want %x", size, got, err, roots[size])
		}
	}
	cp := func(size int) verify.Checkpoint {
		return verify.Checkpoint{Origin: l.Origin(), Size: uint64(size), Root: roots[size]}
	}
	for size := 1; size <= n; size++ {
		for i := 0; i < size; i++ {
			p, err := l.InclusionProof(ctx, uint64(i), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if err := verify.InclusionHash(cp(size), uint64(i), leaves[i], p); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, size, err)
			}
		}
		for s1 := 0; s1 <= size; s1++ {
			p, err := l.ConsistencyProof(ctx, uint64(s1), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if err := verify.Consistency(cp(s1), cp(size), p); err != nil {
				t.Fatalf("consistency %d -> %d: %v", s1, size, err)
			}
		}
	}
	// A proof for the wrong leaf or the wrong root fails.
	p, _ := l.InclusionProof(ctx, 5, n)
	if err := verify.InclusionHash(cp(n), 6, leaves[5], p); !errors.Is(err, verify.ErrTampered) {
		t.Fatalf("wrong index verified: %v", err)
	}
	q, _ := l.ConsistencyProof(ctx, 100, n)
	bad := cp(100)
	bad.Root = roots[99]
	if err := verify.Consistency(bad, cp(n), q); !errors.Is(err, verify.ErrTampered) {
		t.Fatalf("consistency with a forked root verified: %v", err)
	}
}

func TestProofsRandomPairsLargerTree(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t)
	const n = 5000
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = event(i)
	}
	for i := 0; i < n; i += 1000 {
		if _, err := l.AppendBatch(ctx, evs[i:i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	var leaves [][]byte
	for e, err := range l.Entries(ctx, 0, n) {
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leafHash(e.Data))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		s2 := 1 + rnd.IntN(n)
		s1 := rnd.IntN(s2 + 1)
		i := rnd.IntN(s2)
		c2 := verify.Checkpoint{Origin: l.Origin(), Size: uint64(s2), Root: refRoot(leaves[:s2])}
		c1 := verify.Checkpoint{Origin: l.Origin(), Size: uint64(s1), Root: refRoot(leaves[:s1])}
		p, err := l.InclusionProof(ctx, uint64(i), uint64(s2))
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.InclusionHash(c2, uint64(i), leaves[i], p); err != nil {
			t.Fatalf("inclusion %d in %d: %v", i, s2, err)
		}
		p, err = l.ConsistencyProof(ctx, uint64(s1), uint64(s2))
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.Consistency(c1, c2, p); err != nil {
			t.Fatalf("consistency %d -> %d: %v", s1, s2, err)
		}
	}
}

func TestCheckpointsAreSignedAndOnlyGrow(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t)
	prev := checkpointOf(t, l)
	for i := range 20 {
		if _, err := l.Append(ctx, event(i)); err != nil {
			t.Fatal(err)
		}
		cp := checkpointOf(t, l)
		if cp.Size != prev.Size+1 {
			t.Fatalf("size %d after %d", cp.Size, prev.Size)
		}
		p, err := l.ConsistencyProof(ctx, prev.Size, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.Consistency(prev, cp, p); err != nil {
			t.Fatal(err)
		}
		prev = cp
	}
	// The checkpoint note has the standard form.
	text := string(l.Checkpoint().Signed)
	lines := strings.Split(text, "\n")
	if lines[0] != "candor.test/audit" || lines[1] != "20" || lines[3] != "" || !strings.HasPrefix(lines[4], "— candor.test/audit ") {
		t.Fatalf("checkpoint note:\n%s", text)
	}
	// Another key's verifier refuses it.
	other, _ := GenerateKey("candor.test/audit")
	if _, err := verify.ParseCheckpoint(l.Checkpoint().Signed, other.VerifierKey()); !errors.Is(err, verify.ErrCheckpoint) {
		t.Fatalf("foreign key accepted the checkpoint: %v", err)
	}
}

func TestConcurrentAppendsLandExactlyOnce(t *testing.T) {
	ctx := context.Background()
	l, dir := newLog(t)
	const workers, per = 16, 60
	var (
		mu   sync.Mutex
		seen = map[uint64]string{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				ev := event(w*per + i)
				id := fmt.Sprintf("%d-%d", w, i)
				ev.Detail["id"] = id
				var idx uint64
				var err error
				switch i % 3 {
				case 0:
					idx, err = l.Append(ctx, ev)
				case 1:
					var p *Pending
					if p, err = l.AppendAsync(ev); err == nil {
						idx, err = p.Wait(ctx)
					}
				case 2:
					idx, err = l.AppendBatch(ctx, []Event{ev})
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := seen[idx]; dup {
					t.Errorf("index %d given to %s and %s", idx, prev, id)
				}
				seen[idx] = id
				mu.Unlock()
			}
		})
	}
	// The offline verifier runs over the live directory meanwhile.
	stop := make(chan struct{})
	verified := make(chan int)
	go func() {
		n := 0
		defer func() { verified <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Verify(ctx); err != nil {
				t.Errorf("Verify during appends: %v", err)
				return
			}
			n++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	t.Logf("verified the live log %d times during the appends", <-verified)
	if l.Size() != workers*per || len(seen) != workers*per {
		t.Fatalf("size %d, %d distinct indices; want %d", l.Size(), len(seen), workers*per)
	}
	for e, err := range l.Entries(ctx, 0, l.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Event.Detail["id"]; got != seen[e.Index] {
			t.Fatalf("entry %d holds %s, Append said %s", e.Index, got, seen[e.Index])
		}
	}
	l.Close()
	if _, err := verify.Dir(ctx, dir, testKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
}

func TestBatchLargerThanTheQueue(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{MaxPending: 8})
	defer l.Close()
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = event(i)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := l.AppendBatch(context.Background(), evs); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if l.Size() != 400 {
		t.Fatalf("size %d", l.Size())
	}
	if first, err := l.AppendBatch(context.Background(), nil); err != nil || first != 400 {
		t.Fatalf("empty batch: %d %v", first, err)
	}
}

func TestClosedLogRefusesAppends(t *testing.T) {
	l, dir := newLog(t)
	appendN(t, l, 0, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), event(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The directory is free again, and locked while open.
	l2 := openLog(t, dir, Options{})
	defer l2.Close()
	if _, err := Open(context.Background(), dir, testKey, Options{Logger: quiet}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of a locked log: %v", err)
	}
}

func TestWrongKeyIsRefused(t *testing.T) {
	l, dir := newLog(t)
	appendN(t, l, 0, 3)
	l.Close()
	// Opening an existing log with another key must not silently start
	// signing a different history.
	other, err := GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir, other, Options{Logger: quiet}); !errors.Is(err, verify.ErrCheckpoint) {
		t.Fatalf("Open with another key: %v", err)
	}
}

func TestKeyHelpers(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Name(), "candor.audit/") {
		t.Fatalf("default name %q", k.Name())
	}
	fi, err := os.Stat(filepath.Join(dir, logformat.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v)", fi.Mode(), err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, logformat.PubFile))
	if strings.TrimSpace(string(pub)) != k.VerifierKey() {
		t.Fatalf("log.pub %q, want %q", pub, k.VerifierKey())
	}
	if strings.Contains(k.String(), "PRIVATE") || strings.Contains(fmt.Sprint(k), "PRIVATE") {
		t.Fatal("Key prints its private half")
	}
	k2, err := LoadOrCreateKey(dir, "ignored")
	if err != nil || k2.VerifierKey() != k.VerifierKey() {
		t.Fatalf("reload: %v, %q", err, k2.VerifierKey())
	}
	os.Chmod(filepath.Join(dir, logformat.KeyFile), 0o644)
	if _, err := LoadOrCreateKey(dir, ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	if _, err := ParseKey("PRIVATE+KEY+x+00000000+AAAA"); err == nil || strings.Contains(err.Error(), "AAAA") {
		t.Fatalf("bad key: %v", err)
	}
	// NewKey from a raw Ed25519 key matches the note encoding.
	k3, err := NewKey("candor.test/raw", edKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey(k3.skey); err != nil {
		t.Fatal(err)
	}
}

// After a failed write the log refuses appends (it no longer knows what is
// on disk) until it is reopened, which recovers every acknowledged entry.
func TestWriteFailureStopsTheLogUntilReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 0, 5)
	l.entries.Close() // the disk goes away
	if _, err := l.Append(ctx, event(5)); err == nil {
		t.Fatal("append after a write failure succeeded")
	}
	if _, err := l.Append(ctx, event(6)); !errors.Is(err, ErrFailed) {
		t.Fatalf("second append: %v, want ErrFailed", err)
	}
	l.Close()
	l = openLog(t, dir, Options{})
	defer l.Close()
	if l.Size() != 5 {
		t.Fatalf("size %d after reopen, want 5", l.Size())
	}
	appendN(t, l, 5, 1)
}

// An abandoned wait does not abandon the entry.
func TestCancelledWaitStillLogs(t *testing.T) {
	l, _ := newLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := l.AppendAsync(event(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	<-p.Done()
	if _, err := p.Wait(context.Background()); err != nil || l.Size() != 1 {
		t.Fatalf("entry not logged: %v, size %d", err, l.Size())
	}
}
