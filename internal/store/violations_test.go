package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestMergeViolations: pending counts join the stored rows as AddViolations
// will store them: a known name adds to its row, a new one gets a row
// while the device has fewer than MaxViolationRows named rows and goes to
// the overflow row after that; field names are clipped; the newest time
// of a row wins.
func TestMergeViolations(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	v := func(field string, n int64, at int) ViolationCount {
		return ViolationCount{DeviceID: "dev_a", Stream: "temperature", Field: field, Reason: "undeclared_field", Count: n, LastAt: t0.Add(time.Duration(at) * time.Minute)}
	}
	over := func(n int64, at int) ViolationCount {
		return ViolationCount{DeviceID: "dev_a", Reason: ViolationOverflow, Count: n, LastAt: t0.Add(time.Duration(at) * time.Minute)}
	}
	names := func(prefix string, n int) []ViolationCount {
		var out []ViolationCount
		for i := range n {
			out = append(out, v(fmt.Sprintf("%s%02d", prefix, i), 1, 0))
		}
		return out
	}
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name            string
		stored, pending []ViolationCount
		rows            int   // rows in all
		overflow        int64 // the overflow row's count (0: none)
		total           int64
	}{
		{"nothing", nil, nil, 0, 0, 0},
		{"pending only", nil, names("a", 3), 3, 0, 3},
		{"a known name adds to its row", names("a", 3), []ViolationCount{v("a01", 5, 9)}, 3, 0, 8},
		{"new names up to the bound", names("a", 30), names("b", 2), 32, 0, 32},
		{"new names past the bound go to the overflow row", names("a", 30), names("b", 10), 33, 8, 40},
		{"a full store: every new name overflows", append(names("a", 32), over(8, 0)), names("b", 40), 33, 48, 80},
		{"pending overflow joins the stored one", append(names("a", 32), over(8, 0)), []ViolationCount{over(2, 5)}, 33, 10, 42},
		{"pending alone past the bound", nil, names("b", 40), 33, 8, 40},
		{"a long name is one row however often sent", nil, []ViolationCount{v(long, 1, 0), v(long, 1, 1)}, 1, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeViolations(tc.stored, tc.pending)
			if len(got) != tc.rows {
				t.Fatalf("%d rows, want %d: %+v", len(got), tc.rows, got)
			}
			var total, overflow int64
			for _, r := range got {
				total += r.Count
				if len(r.Field) > MaxViolationField {
					t.Errorf("a field name of %d bytes", len(r.Field))
				}
				if r.Reason == ViolationOverflow {
					if r.Stream != "" || r.Field != "" {
						t.Errorf("overflow row %+v names a stream or field", r)
					}
					overflow = r.Count
				}
			}
			if total != tc.total || overflow != tc.overflow {
				t.Errorf("counted %d, overflow %d; want %d and %d", total, overflow, tc.total, tc.overflow)
			}
		})
	}
	// The newest time of a row wins.
	got := MergeViolations([]ViolationCount{v("a", 1, 3)}, []ViolationCount{v("a", 1, 1), v("a", 1, 7)})
	if len(got) != 1 || !got[0].LastAt.Equal(t0.Add(7*time.Minute)) {
		t.Errorf("merged %+v, want one row last at +7m", got)
	}
}
