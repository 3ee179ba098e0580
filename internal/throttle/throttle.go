// Package throttle limits how many attempts per key (a username, a device
// id, a network address) may be made at an expensive or guessable check.
//
// Each key has a token bucket. An attempt is reserved before the check
// runs and settled after it: a failed attempt spends its token, a
// successful one gives it back. Because the reservation is taken under the
// same lock that reads the bucket, concurrent attempts cannot all pass the
// test before any of them is counted: with a bucket of five, at most five
// checks are ever in flight or spent, however many arrive at once.
//
// Memory is bounded: a Table remembers at most a fixed number of keys and
// forgets the least recently used idle one when it needs room. A key whose
// bucket is full again once its attempts settle is forgotten at once (it
// would start full anyway), so keys that only ever succeed cost nothing.
package throttle

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLimited is wrapped by every refusal for lack of attempts.
var ErrLimited = errors.New("too many attempts")

// ErrFull means a Table has no room for another key because every key it
// remembers has an attempt in flight. It wraps ErrLimited.
var ErrFull = fmt.Errorf("%w: too many attempts in flight", ErrLimited)

// LimitedError is a refusal: the key has no attempt left until RetryAfter
// has passed. It wraps ErrLimited.
type LimitedError struct {
	RetryAfter time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many attempts; the next one is allowed in %s", e.RetryAfter.Round(time.Second))
}

func (e *LimitedError) Unwrap() error { return ErrLimited }

// Limit is a bucket's shape: Burst attempts when full, and one more each
// Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// maxScan bounds how far eviction looks for an idle key, so a table full of
// in-flight attempts refuses in constant time instead of scanning it all.
const maxScan = 64

// Table holds the buckets of one kind of key. The zero Table is not
// usable; call New.
type Table struct {
	limit   Limit
	maxKeys int
	now     func() time.Time

	mu  sync.Mutex
	m   map[string]*list.Element // value: *bucket
	lru list.List                // front: most recently used
}

type bucket struct {
	key      string
	tokens   float64 // attempts left at last
	last     time.Time
	inflight int
	waiters  int
	// wake is closed when an attempt in flight settles, so waiters look
	// again; nil when nobody waits.
	wake chan struct{}
}

// New returns a Table of buckets shaped by l that remembers at most
// maxKeys keys. now is the clock (time.Now when nil).
func New(l Limit, maxKeys int, now func() time.Time) *Table {
	if l.Burst < 1 {
		l.Burst = 1
	}
	if l.Every <= 0 {
		l.Every = time.Second
	}
	if maxKeys < 1 {
		maxKeys = 1
	}
	if now == nil {
		now = time.Now
	}
	return &Table{limit: l, maxKeys: maxKeys, now: now, m: make(map[string]*list.Element)}
}

// Reservation is one attempt taken from a key's bucket. Exactly one of
// Spend or Refund should be called; later calls do nothing.
type Reservation struct {
	t    *Table
	b    *bucket
	once sync.Once
}

// Reserve takes an attempt for key before the caller makes it. When the
// bucket is empty but attempts are in flight, Reserve waits for them to
// settle, since a success gives its attempt back. It returns a
// *LimitedError when the key has no attempt left, ErrFull when the table
// has no room, or the context's error if ctx ends while waiting.
func (t *Table) Reserve(ctx context.Context, key string) (*Reservation, error) {
	t.mu.Lock()
	for {
		b, err := t.bucketLocked(key)
		if err != nil {
			t.mu.Unlock()
			return nil, err
		}
		now := t.now()
		t.refillLocked(b, now)
		if b.tokens-float64(b.inflight) >= 1 {
			b.inflight++
			t.mu.Unlock()
			return &Reservation{t: t, b: b}, nil
		}
		if b.inflight == 0 {
			wait := time.Duration((1 - b.tokens) * float64(t.limit.Every))
			t.mu.Unlock()
			return nil, &LimitedError{RetryAfter: max(wait, time.Second)}
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.waiters++
		t.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		t.mu.Lock()
		b.waiters--
		if err := ctx.Err(); err != nil {
			t.mu.Unlock()
			return nil, fmt.Errorf("waiting for an attempt: %w", err)
		}
	}
}

// Spend records that the attempt failed: its token stays used.
func (r *Reservation) Spend() { r.settle(true) }

// Refund gives the attempt back: the credential was right, or it was never
// checked.
func (r *Reservation) Refund() { r.settle(false) }

func (r *Reservation) settle(spent bool) {
	if r == nil {
		return
	}
	r.once.Do(func() {
		t, b := r.t, r.b
		t.mu.Lock()
		defer t.mu.Unlock()
		t.refillLocked(b, t.now())
		if spent {
			b.tokens--
		}
		b.inflight--
		if b.wake != nil {
			close(b.wake)
			b.wake = nil
		}
		t.forgetFullLocked(b)
	})
}

// forgetFullLocked drops b from the table if it is full with nothing in
// flight and nobody waiting: such a bucket is the one bucketLocked would
// make for its key anyway, so keeping it costs memory (a bucket, a list
// element and a map slot per key: for the device table, one per device
// that ever connected) and tells nothing. A bucket with tokens spent
// stays until it is evicted as before.
func (t *Table) forgetFullLocked(b *bucket) {
	if b.inflight != 0 || b.waiters != 0 || b.tokens < float64(t.limit.Burst) {
		return
	}
	if el, ok := t.m[b.key]; ok && el.Value.(*bucket) == b {
		t.lru.Remove(el)
		delete(t.m, b.key)
	}
}

// Len reports how many keys the table remembers.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *Table) refillLocked(b *bucket, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(t.limit.Burst), b.tokens+float64(el)/float64(t.limit.Every))
		b.last = now
	}
}

// bucketLocked finds key's bucket, marking it recently used, or makes a
// full one, forgetting the least recently used idle key if the table is
// at its bound. A forgotten key starts full again when it comes back; an
// idle key's bucket refills on its own, so forgetting the oldest costs an
// attacker as much as waiting.
func (t *Table) bucketLocked(key string) (*bucket, error) {
	if el, ok := t.m[key]; ok {
		t.lru.MoveToFront(el)
		return el.Value.(*bucket), nil
	}
	if len(t.m) >= t.maxKeys {
		victim := t.idleLocked()
		if victim == nil {
			return nil, ErrFull
		}
		t.lru.Remove(victim)
		delete(t.m, victim.Value.(*bucket).key)
	}
	b := &bucket{key: key, tokens: float64(t.limit.Burst), last: t.now()}
	t.m[key] = t.lru.PushFront(b)
	return b, nil
}

// idleLocked returns the least recently used key with nothing in flight
// and nobody waiting, looking at most maxScan keys from the old end.
func (t *Table) idleLocked() *list.Element {
	el := t.lru.Back()
	for i := 0; el != nil && i < maxScan; i, el = i+1, el.Prev() {
		if b := el.Value.(*bucket); b.inflight == 0 && b.waiters == 0 {
			return el
		}
	}
	return nil
}
