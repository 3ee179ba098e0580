package main

import (
	"os"
	"strings"
	"syscall"
)

// Goroutine stacks are most of what an idle device connection costs: mochi
// runs two goroutines per connection, a read loop and a write loop. The
// write loop needs just over 2 KiB parked (its frame holds a whole packet),
// so it would fit in 4 KiB; but the Go runtime starts every goroutine at
// the average stack size it last saw (GODEBUG adaptivestackstart, on by
// default), which a hub full of 16 KiB read loops drives to 8 KiB, and a
// stack shrinks only while less than a quarter of it is used, so each
// write loop kept 8 KiB for life. With adaptivestackstart=0 goroutines
// start at 2 KiB and grow to what they need: 4 KiB less per connection
// (docs/benchmarks.md, "Session 6: memory per idle connection").
//
// The setting is read once, when the runtime starts, and Go accepts it
// neither from the source (//go:debug: not a registered setting) nor from
// os.Setenv afterwards. So candor serve starts itself again, in place
// (same process id, same arguments), with the setting added to GODEBUG,
// unless GODEBUG already names it: an operator who wants the runtime's
// default sets GODEBUG=adaptivestackstart=1.
const smallStacksSetting = "adaptivestackstart=0"

// execWithSmallStacks replaces the process with itself under
// smallStacksSetting. It returns only if it did not (the setting is
// already decided, or exec failed: the hub then runs with the runtime's
// default, which costs memory, not correctness).
func execWithSmallStacks() {
	godebug, set := os.LookupEnv("GODEBUG")
	if strings.Contains(godebug, "adaptivestackstart=") {
		return
	}
	if set && godebug != "" {
		godebug += ","
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GODEBUG="+godebug+smallStacksSetting)
	// /proc/self/exe: this very binary, even if its file was replaced or
	// removed since it started.
	_ = syscall.Exec("/proc/self/exe", os.Args, env)
}
