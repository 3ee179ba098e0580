package monitor

import (
	"math"
	"strconv"
	"testing"
)

// Sizes and declared maximums are ints from the caller and uint32 in a
// stream's state: they are clamped, never cut to their low 32 bits (a
// declared maximum of 4 GiB + 10 bytes once became 10, flagging every
// reading over 10 bytes as larger than declared).
func TestClampUint32(t *testing.T) {
	cases := []struct {
		in   int
		want uint32
	}{
		{-1, 0},
		{0, 0},
		{100, 100},
		{math.MaxInt32, math.MaxInt32},
	}
	if strconv.IntSize == 64 {
		var one uint64 = 1 // not a constant, so this compiles where int is 32 bits
		cases = append(cases,
			struct {
				in   int
				want uint32
			}{int(one<<32 + 10), math.MaxUint32},
			struct {
				in   int
				want uint32
			}{int(one<<32 - 1), math.MaxUint32},
		)
	}
	for _, c := range cases {
		if got := clampUint32(c.in); got != c.want {
			t.Errorf("clampUint32(%d) = %d, want %d", c.in, got, c.want)
		}
	}

	if strconv.IntSize < 64 {
		return
	}
	var one uint64 = 1
	var s streamState
	s.observe(&Reading{Size: 100, MaxBytes: int(one<<32 + 10)}, 1)
	if s.over != 0 {
		t.Errorf("a 100-byte reading against a declared maximum of 4 GiB + 10 bytes counted as over it")
	}
}
