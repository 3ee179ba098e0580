package throttle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

// A hundred attempts arriving at once get no more checks than the bucket
// holds: the attempt is counted when it is reserved, not when it fails.
func TestConcurrentAttemptsReserveBeforeChecking(t *testing.T) {
	tb := New(Limit{Burst: 5, Every: time.Minute}, 100, newClock().now)
	var checks, limited atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			r, err := tb.Reserve(t.Context(), "alex")
			var le *LimitedError
			switch {
			case errors.As(err, &le):
				limited.Add(1)
				if le.RetryAfter <= 0 || le.RetryAfter > time.Minute {
					t.Errorf("RetryAfter %v, want (0, 1m]", le.RetryAfter)
				}
			case err != nil:
				t.Errorf("reserve: %v", err)
			default:
				checks.Add(1)
				r.Spend() // every guess is wrong
			}
		})
	}
	wg.Wait()
	if checks.Load() != 5 || limited.Load() != 95 {
		t.Errorf("%d checks and %d refusals, want 5 and 95", checks.Load(), limited.Load())
	}
}

func TestRefundGivesTheAttemptBack(t *testing.T) {
	tb := New(Limit{Burst: 2, Every: time.Hour}, 10, newClock().now)
	for i := range 50 {
		r, err := tb.Reserve(t.Context(), "dev_1")
		if err != nil {
			t.Fatalf("attempt %d after successes: %v", i, err)
		}
		r.Refund()
		r.Spend() // settling twice does nothing
	}
}

func TestBucketRefills(t *testing.T) {
	c := newClock()
	tb := New(Limit{Burst: 3, Every: 20 * time.Second}, 10, c.now)
	for range 3 {
		r, err := tb.Reserve(t.Context(), "k")
		if err != nil {
			t.Fatal(err)
		}
		r.Spend()
	}
	_, err := tb.Reserve(t.Context(), "k")
	var le *LimitedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLimited) || le.RetryAfter != 20*time.Second {
		t.Fatalf("empty bucket: %v, want a LimitedError with RetryAfter 20s", err)
	}
	if _, err := tb.Reserve(t.Context(), "other"); err != nil {
		t.Errorf("another key is limited too: %v", err)
	}
	c.add(15 * time.Second)
	if _, err := tb.Reserve(t.Context(), "k"); !errors.As(err, &le) || le.RetryAfter != 5*time.Second {
		t.Fatalf("after 15s: %v, want RetryAfter 5s", err)
	}
	c.add(5 * time.Second)
	r, err := tb.Reserve(t.Context(), "k")
	if err != nil {
		t.Fatalf("after a refill: %v", err)
	}
	r.Spend()
	if _, err := tb.Reserve(t.Context(), "k"); !errors.Is(err, ErrLimited) {
		t.Errorf("the refill gave more than one attempt: %v", err)
	}
}

// A waiter for a bucket whose only attempt is in flight gets it when that
// attempt is refunded, and gives up when its context ends.
func TestWaitersFollowTheAttemptInFlight(t *testing.T) {
	tb := New(Limit{Burst: 1, Every: time.Hour}, 10, newClock().now)
	first, err := tb.Reserve(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := tb.Reserve(t.Context(), "k")
		if err == nil {
			r.Spend()
		}
		got <- err
	}()
	first.Refund()
	if err := <-got; err != nil {
		t.Fatalf("waiter after a refund: %v", err)
	}
	// Now the bucket is empty and nothing is in flight: refused at once.
	if _, err := tb.Reserve(t.Context(), "k"); !errors.Is(err, ErrLimited) {
		t.Fatalf("empty bucket: %v", err)
	}

	tb2 := New(Limit{Burst: 1, Every: time.Hour}, 10, newClock().now)
	held, err := tb2.Reserve(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Refund()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := tb2.Reserve(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting with an ended context: %v", err)
	}
}

func TestTableForgetsTheLeastRecentlyUsedIdleKey(t *testing.T) {
	tb := New(Limit{Burst: 1, Every: time.Hour}, 3, newClock().now)
	for _, k := range []string{"a", "b", "c"} {
		r, err := tb.Reserve(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		r.Spend()
	}
	if _, err := tb.Reserve(t.Context(), "a"); !errors.Is(err, ErrLimited) { // touches a
		t.Fatalf("a: %v", err)
	}
	r, err := tb.Reserve(t.Context(), "d") // forgets b, the oldest
	if err != nil {
		t.Fatal(err)
	}
	r.Spend()
	if n := tb.Len(); n != 3 {
		t.Errorf("table holds %d keys, want 3", n)
	}
	if _, err := tb.Reserve(t.Context(), "a"); !errors.Is(err, ErrLimited) {
		t.Errorf("a was forgotten although recently used: %v", err)
	}
	if r, err := tb.Reserve(t.Context(), "b"); err != nil {
		t.Errorf("b should have been forgotten (fresh bucket): %v", err)
	} else {
		r.Refund()
	}
}

// TestTableForgetsFullBuckets checks that a key is remembered only while
// its bucket is not full: a refunded attempt on a full bucket leaves
// nothing behind, a spent one keeps the key, and a forgotten key behaves
// as one never seen.
func TestTableForgetsFullBuckets(t *testing.T) {
	c := newClock()
	tb := New(Limit{Burst: 2, Every: time.Minute}, 10, c.now)
	reserve := func(k string) *Reservation {
		t.Helper()
		r, err := tb.Reserve(t.Context(), k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return r
	}
	tests := []struct {
		name string
		do   func()
		keys int
	}{
		{"refunded on a full bucket", func() { reserve("ok").Refund() }, 0},
		{"in flight", func() { reserve("ok") }, 1}, // left in flight
		{"spent", func() { reserve("bad").Spend() }, 2},
		{"refunded on a spent bucket", func() { reserve("bad").Refund() }, 2},
		{"refilled, then refunded", func() { c.add(time.Minute); reserve("bad").Refund() }, 1},
	}
	for _, tc := range tests {
		tc.do()
		if n := tb.Len(); n != tc.keys {
			t.Errorf("after %s: table holds %d keys, want %d", tc.name, n, tc.keys)
		}
	}
	// "bad" spent one of two and was forgotten only once full again: two
	// attempts, then a refusal.
	reserve("bad").Spend()
	reserve("bad").Spend()
	if _, err := tb.Reserve(t.Context(), "bad"); !errors.Is(err, ErrLimited) {
		t.Errorf("third failed attempt: %v, want ErrLimited", err)
	}
}

func TestFullTableOfAttemptsInFlightRefuses(t *testing.T) {
	tb := New(Limit{Burst: 1, Every: time.Hour}, 1, newClock().now)
	r, err := tb.Reserve(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Reserve(t.Context(), "b"); !errors.Is(err, ErrFull) || !errors.Is(err, ErrLimited) {
		t.Errorf("no room: %v, want ErrFull", err)
	}
	r.Refund()
	if _, err := tb.Reserve(t.Context(), "b"); err != nil {
		t.Errorf("room after the attempt settled: %v", err)
	}
}

func BenchmarkReserveRefund(b *testing.B) {
	tb := New(Limit{Burst: 5, Every: time.Minute}, 10000, nil)
	ctx := context.Background()
	for b.Loop() {
		r, err := tb.Reserve(ctx, "192.0.2.1")
		if err != nil {
			b.Fatal(err)
		}
		r.Refund()
	}
}

func TestTakeSpendsWithoutAReservation(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := New(Limit{Burst: 3, Every: time.Minute}, 10, func() time.Time { return now })
	tests := []struct {
		name       string
		takes      int
		wantPasses int // reservations that then succeed
	}{
		{"none taken", 0, 3},
		{"two taken elsewhere", 2, 1},
		{"more taken than the burst", 5, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "acct-" + string(rune('a'+i))
			for range tt.takes {
				tab.Take(key)
			}
			passes := 0
			for range 5 {
				r, err := tab.Reserve(context.Background(), key)
				if err != nil {
					break
				}
				r.Spend()
				passes++
			}
			if passes != tt.wantPasses {
				t.Fatalf("%d attempts allowed after %d taken elsewhere, want %d", passes, tt.takes, tt.wantPasses)
			}
		})
	}
}
