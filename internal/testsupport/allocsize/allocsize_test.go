package allocsize

import "testing"

type class48 struct{ _ [48]byte }

type class64 struct{ _ [49]byte }

// TestOf checks the measure against two of the runtime's size classes: a
// struct that fills one exactly, and one a byte over the class below.
func TestOf(t *testing.T) {
	if got := Of[class48](1000); got != 48 {
		t.Errorf("a 48-byte struct measured %d bytes, want 48", got)
	}
	if got := Of[class64](1000); got != 64 {
		t.Errorf("a 49-byte struct measured %d bytes, want the 64-byte class", got)
	}
}
