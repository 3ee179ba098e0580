package bench

import (
	"strings"
	"testing"
)

// The paced phase's heading names issue #19's target for the ack mode the
// hub ran in, read from the hub flags the bench passed: ≤ 5 ms (and ≤ 25
// µs of CPU) acknowledged after commit, ≤ 2 ms with --ack=durable-within.
// Before, every run was headed "PUBACK p99 ≤ 2 ms".
func TestPacedHeadingNamesTheModesTarget(t *testing.T) {
	const commitTarget = "acknowledged after commit (target: PUBACK p99 ≤ 5 ms, CPU ≤ 25 µs per message)"
	const windowTarget = "--ack=durable-within=10ms (target: PUBACK p99 ≤ 2 ms)"
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"no flags", nil, commitTarget},
		{"other flags", []string{"--batch-busy-wait=2ms", "--trace=/tmp/x"}, commitTarget},
		{"ack commit", []string{"--ack=commit"}, commitTarget},
		{"window, one flag", []string{"--ack=durable-within=10ms"}, windowTarget},
		{"window, single dash", []string{"-ack=durable-within=10ms"}, windowTarget},
		{"window, value as the next flag", []string{"--ack", "durable-within=10ms"}, windowTarget},
		{"last one wins", []string{"--ack=durable-within=10ms", "--ack=commit"}, commitTarget},
		{"a value the hub refuses", []string{"--ack=durable-within=soon"}, commitTarget},
		{"a flag named like it", []string{"--acknowledge=durable-within=10ms"}, commitTarget},
		{"a value, not a flag", []string{"--store", "ack=durable-within=10ms"}, commitTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Settings: Settings{Rate: 10000}, Candor: &Side{HubFlags: tc.flags}}
			var heading string
			for _, r := range rows(rep) {
				if strings.HasPrefix(r.Section, "QoS 1 paced at 10,000 msg/s") {
					heading = r.Section
					break
				}
			}
			if heading == "" {
				t.Fatalf("no paced section in the report")
			}
			if !strings.HasSuffix(heading, tc.want) {
				t.Errorf("heading %q, want it to end %q", heading, tc.want)
			}
		})
	}
}
