package monitor

import (
	"hash/maphash"
	"math/bits"
)

// table finds a device's state by id. It is on every observation, so it
// is built for that one job: the id is hashed once (the hash also picks
// the shard), and the shard's open-addressed slots are probed by that
// hash, then confirmed by the id. A general map hashed the id a second
// time and cost about as much as the rest of a reading.
type table struct {
	slots []slot // length a power of two, or nil
	n     int
}

type slot struct {
	h uint64
	d *deviceState // nil: empty
}

// hasher hashes device ids with a per-process random key, so nobody can
// choose ids that collide (ids are issued by the hub anyway).
type hasher struct{ k0, k1 uint64 }

func newHasher() hasher {
	s := maphash.MakeSeed()
	return hasher{maphash.String(s, "k0") | 1, maphash.String(s, "k1")}
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash is a multiply-mix over eight bytes at a time; ids are short, so
// this is a handful of instructions.
func (k hasher) hash(s string) uint64 {
	h := k.k1 ^ uint64(len(s))
	for len(s) >= 8 {
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = mix(h^x, k.k0)
		s = s[8:]
	}
	var x uint64
	for i := len(s) - 1; i >= 0; i-- {
		x = x<<8 | uint64(s[i])
	}
	return mix(h^x, k.k0^0x9e3779b97f4a7c15)
}

func (t *table) get(h uint64, id string) *deviceState {
	if t.slots == nil {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.d == nil {
			return nil
		}
		if s.h == h && s.d.id == id {
			return s.d
		}
	}
}

// put adds d, whose id is not in the table yet.
func (t *table) put(h uint64, d *deviceState) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].d != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = slot{h, d}
	t.n++
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, max(16, 2*len(old)))
	t.n = 0
	for _, s := range old {
		if s.d != nil {
			t.put(s.h, s.d)
		}
	}
}

// del removes id, shifting later slots of its probe run back so that no
// lookup stops early at the hole.
func (t *table) del(h uint64, id string) {
	if t.slots == nil {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for {
		s := &t.slots[i]
		if s.d == nil {
			return
		}
		if s.h == h && s.d.id == id {
			break
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j].d != nil; j = (j + 1) & mask {
		home := t.slots[j].h & mask
		// Move j into the hole at i unless its home lies in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot{}
	t.n--
}

func (t *table) each(f func(*deviceState)) {
	for _, s := range t.slots {
		if s.d != nil {
			f(s.d)
		}
	}
}
