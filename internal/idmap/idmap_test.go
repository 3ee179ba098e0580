package idmap

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestMapLoadStoreDelete checks the map against a plain map through a
// sequence of stores, overwrites and deletes, including ids that differ
// only slightly and the empty id.
func TestMapLoadStoreDelete(t *testing.T) {
	var m Map[int64]
	want := map[string]int64{}
	if _, ok := m.Load("absent"); ok {
		t.Fatal("zero Map holds an id")
	}
	m.Delete("absent") // on the zero value: no panic
	for i := range 2000 {
		id := fmt.Sprintf("dev-%d", i%700)
		switch i % 5 {
		case 3:
			m.Delete(id)
			delete(want, id)
		default:
			m.Store(id, int64(i))
			want[id] = int64(i)
		}
	}
	m.Store("", -1)
	want[""] = -1
	if got := m.Len(); got != len(want) {
		t.Fatalf("Len %d, want %d", got, len(want))
	}
	for i := range 700 {
		id := fmt.Sprintf("dev-%d", i)
		got, ok := m.Load(id)
		w, wok := want[id]
		if ok != wok || got != w {
			t.Fatalf("Load(%q) = %d, %v; want %d, %v", id, got, ok, w, wok)
		}
	}
	if v, ok := m.Load(""); !ok || v != -1 {
		t.Fatalf(`Load("") = %d, %v`, v, ok)
	}
}

// TestMapConcurrent has writers and readers on shared ids at once (run
// with -race): every value read is one some writer stored for that id.
func TestMapConcurrent(t *testing.T) {
	var m Map[string]
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				id := fmt.Sprint(i % 300)
				if i%7 == w {
					m.Delete(id)
				} else {
					m.Store(id, "v"+id)
				}
			}
		})
		wg.Go(func() {
			for i := range 5000 {
				id := fmt.Sprint(i % 300)
				if v, ok := m.Load(id); ok && v != "v"+id {
					t.Errorf("Load(%q) = %q", id, v)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkMapEntry reports the heap each entry costs, against sync.Map
// holding the same keys and values: the reason this package exists.
func BenchmarkMapEntry(b *testing.B) {
	ids := make([]string, 20000)
	for i := range ids {
		ids[i] = fmt.Sprintf("d-%012d", i)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	b.Run("idmap", func(b *testing.B) {
		for range b.N {
			h0 := heap()
			var m Map[int64]
			for i, id := range ids {
				m.Store(id, int64(i)+1000)
			}
			b.ReportMetric(float64(heap()-h0)/float64(len(ids)), "B/entry")
			runtime.KeepAlive(&m)
		}
	})
	b.Run("sync.Map", func(b *testing.B) {
		for range b.N {
			h0 := heap()
			var m sync.Map
			for i, id := range ids {
				m.Store(id, int64(i)+1000)
			}
			b.ReportMetric(float64(heap()-h0)/float64(len(ids)), "B/entry")
			runtime.KeepAlive(&m)
		}
	})
}

// BenchmarkMapLoad is the read on the reading path (a cached owner, type
// or storage key), from every core at once, against sync.Map.
func BenchmarkMapLoad(b *testing.B) {
	ids := make([]string, 10000)
	var m Map[int64]
	var sm sync.Map
	for i := range ids {
		ids[i] = fmt.Sprintf("d-%012d", i)
		m.Store(ids[i], int64(i))
		sm.Store(ids[i], int64(i))
	}
	b.Run("idmap", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := m.Load(ids[i%len(ids)]); !ok {
					b.Fatal("missing")
				}
				i += 7
			}
		})
	})
	b.Run("sync.Map", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := sm.Load(ids[i%len(ids)]); !ok {
					b.Fatal("missing")
				}
				i += 7
			}
		})
	})
}
