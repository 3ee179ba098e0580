// Package idmap is a concurrent map keyed by id strings, for the caches
// the hub keeps one entry in per device (device id → owner, type, storage
// key).
//
// It replaces sync.Map there for memory: sync.Map boxes each key and
// value in interfaces and keeps every entry in a node of its hash trie
// (about 120-200 heap bytes an entry, counted in docs/benchmarks.md,
// session 9), where a Go map holds the string header and the value in a
// slot (about 30-50 bytes with its spare room). With a hundred thousand
// connected devices that is tens of megabytes per cache. Reads stay cheap
// and mostly uncontended: the map is split into shards by a hash of the
// key, each under its own read-write lock, so readers of different
// devices rarely share a lock's cache line and a writer (a first sight of
// a device) blocks one shard only.
package idmap

import (
	"hash/maphash"
	"sync"
)

// shards is how many independently locked maps a Map is split into: a
// power of two well above the cores the hub runs on.
const shards = 32

// seed is shared by every Map: shard choice need not differ between
// maps, only be unpredictable across processes.
var seed = maphash.MakeSeed()

// Map is a concurrent map from id to V. The zero value is empty and ready
// for use. A Map must not be copied after first use.
type Map[V any] struct {
	s [shards]shard[V]
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[string]V
	// Pad each shard to 64 bytes (the lock and the map pointer take 32),
	// so that readers of neighbouring shards seldom share a cache line
	// (the array itself is not aligned to 64, so a shard may straddle
	// two). Readers of one shard write its reader count all the same.
	_ [32]byte
}

func (m *Map[V]) shard(id string) *shard[V] {
	return &m.s[maphash.String(seed, id)&(shards-1)]
}

// Load returns the value stored for id, if any.
func (m *Map[V]) Load(id string) (V, bool) {
	s := m.shard(id)
	s.mu.RLock()
	v, ok := s.m[id]
	s.mu.RUnlock()
	return v, ok
}

// Store sets the value for id.
func (m *Map[V]) Store(id string, v V) {
	s := m.shard(id)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]V)
	}
	s.m[id] = v
	s.mu.Unlock()
}

// Delete removes id's value, if any.
func (m *Map[V]) Delete(id string) {
	s := m.shard(id)
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// Len returns the number of ids held (shard by shard, so not a snapshot
// while others write).
func (m *Map[V]) Len() int {
	n := 0
	for i := range m.s {
		s := &m.s[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
