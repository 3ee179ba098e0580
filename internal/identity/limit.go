package identity

import (
	"sync"
	"time"
)

// Login throttling: after maxFailures wrong passwords for one username
// within failureWindow, further attempts for that username are refused
// for lockout without checking the password, so a guesser gets a handful
// of tries per minute instead of as many as the CPU allows.
const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
	lockout       = time.Minute
)

type failures struct {
	first  time.Time
	count  int
	locked time.Time // refused until this time
}

type limiter struct {
	mu sync.Mutex
	m  map[string]*failures
}

// allowed reports whether an attempt for key may proceed now.
func (l *limiter) allowed(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[key]
	return f == nil || !now.Before(f.locked)
}

// failed records a wrong password and reports whether the key is now
// locked out.
func (l *limiter) failed(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*failures)
	}
	// Forget stale entries now and then so the map stays small.
	if len(l.m) > 10000 {
		for k, f := range l.m {
			if now.Sub(f.first) > failureWindow && now.After(f.locked) {
				delete(l.m, k)
			}
		}
	}
	f := l.m[key]
	if f == nil || now.Sub(f.first) > failureWindow {
		f = &failures{first: now}
		l.m[key] = f
	}
	f.count++
	if f.count >= maxFailures {
		f.locked = now.Add(lockout)
		f.count = 0
		f.first = now
		return true
	}
	return false
}

// succeeded clears the key's failures.
func (l *limiter) succeeded(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}
