// Package allocsize measures what the Go allocator spends on one object of
// a type, size class and header included, for tests that keep a struct
// held per connection or per device within its size class.
package allocsize

import "runtime"

// rounds is how many times Of measures. TotalAlloc counts every goroutine's
// allocations, so a test's leftover goroutines (a listener closing, a timer
// firing) can only add to a round, never take away: the smallest round is
// the one nothing else touched. One noisy round put a 320-byte struct at
// 322 bytes in CI.
const rounds = 5

// Of returns the heap bytes one new(T) takes, averaged over n of them
// (kept alive while measured, so none is freed in between), the least of
// several rounds.
func Of[T any](n int) uint64 {
	best := ^uint64(0)
	for range rounds {
		if per := once[T](n); per < best {
			best = per
		}
	}
	return best
}

func once[T any](n int) uint64 {
	keep := make([]*T, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = new(T)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}
