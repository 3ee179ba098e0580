package monitor

import (
	"fmt"
	"testing"
)

// The table must find every id still in it after any mix of additions and
// removals, including removals inside a probe run (forced here by a hash
// with few distinct values).
func TestTable(t *testing.T) {
	cases := []struct {
		name   string
		hash   func(string) uint64
		n      int
		remove func(i int) bool
	}{
		{"real hash, remove none", newHasher().hash, 1000, func(int) bool { return false }},
		{"real hash, remove every third", newHasher().hash, 1000, func(i int) bool { return i%3 == 0 }},
		{"colliding hash, remove odd", func(s string) uint64 { return uint64(len(s)) % 4 }, 200, func(i int) bool { return i%2 == 1 }},
		{"colliding hash, remove all", func(s string) uint64 { return 7 }, 100, func(int) bool { return true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tb table
			ids := make([]string, c.n)
			for i := range ids {
				ids[i] = fmt.Sprintf("dev_%d", i)
				tb.put(c.hash(ids[i]), &deviceState{id: ids[i]})
			}
			for i, id := range ids {
				if c.remove(i) {
					tb.del(c.hash(id), id)
				}
			}
			n := 0
			tb.each(func(*deviceState) { n++ })
			for i, id := range ids {
				d := tb.get(c.hash(id), id)
				if gone := c.remove(i); gone != (d == nil) {
					t.Fatalf("%s: found %v, removed %v", id, d != nil, gone)
				}
				if d != nil {
					n--
				}
			}
			if n != 0 || tb.n != len(ids)-countRemoved(c.n, c.remove) {
				t.Errorf("each saw %d more than get; n = %d", n, tb.n)
			}
		})
	}
}

func countRemoved(n int, f func(int) bool) int {
	c := 0
	for i := range n {
		if f(i) {
			c++
		}
	}
	return c
}
