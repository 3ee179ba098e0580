// Package allocsize measures what the Go allocator spends on one object of
// a type, size class and header included, for tests that keep a struct
// held per connection or per device within its size class.
package allocsize

import "runtime"

// Of returns the heap bytes one new(T) takes, averaged over n of them
// (kept alive while measured, so none is freed in between).
func Of[T any](n int) uint64 {
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
