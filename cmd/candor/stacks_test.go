package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
)

// reportStacks is the test binary started as a subprocess: it does what
// candor serve does first, then prints its process id, its GODEBUG and
// the goroutine starting stack size the runtime chose after goroutines
// that use 10 KiB of stack (2048 bytes means adaptivestackstart=0).
func reportStacks() {
	execWithSmallStacks()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); deep(10, stop) }()
	}
	runtime.GC() // the starting size is recomputed at each collection
	runtime.GC()
	close(stop)
	wg.Wait()
	s := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s)
	fmt.Printf("pid=%d godebug=%q start=%d\n", os.Getpid(), os.Getenv("GODEBUG"), s[0].Value.Uint64())
}

// deep parks a goroutine under n frames of 1 KiB each.
func deep(n int, stop chan struct{}) byte {
	var pad [1 << 10]byte
	pad[n] = byte(n)
	if n == 0 {
		<-stop
		return pad[0]
	}
	return deep(n-1, stop) + pad[n]
}

// TestServeStartsWithSmallStacks: candor serve runs under
// GODEBUG=adaptivestackstart=0 (stacks.go), in the same process, keeping
// whatever else GODEBUG says; an operator's own adaptivestackstart
// setting is left alone.
func TestServeStartsWithSmallStacks(t *testing.T) {
	for _, c := range []struct {
		env, want string
		start     uint64 // 0: more than 2048
	}{
		{"", "adaptivestackstart=0", 2048},
		{"GODEBUG=madvdontneed=1", "madvdontneed=1,adaptivestackstart=0", 2048},
		{"GODEBUG=adaptivestackstart=1", "adaptivestackstart=1", 0},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GODEBUG=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "CANDOR_TEST_STACKS=1")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", c.env, err, out.String())
		}
		var pid int
		var godebug string
		var start uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(out.String()), "pid=%d godebug=%q start=%d", &pid, &godebug, &start); err != nil {
			t.Fatalf("%s: output %q: %v", c.env, out.String(), err)
		}
		if pid != cmd.Process.Pid {
			t.Errorf("%s: ran as process %d, started as %d: not the same process", c.env, pid, cmd.Process.Pid)
		}
		if godebug != c.want {
			t.Errorf("%s: GODEBUG %q, want %q", c.env, godebug, c.want)
		}
		if c.start != 0 && start != c.start || c.start == 0 && start <= 2048 {
			t.Errorf("%s: goroutines start with %d-byte stacks, want %d (0: more than 2048)", c.env, start, c.start)
		}
	}
}
