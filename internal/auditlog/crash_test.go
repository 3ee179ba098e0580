package auditlog

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const crashDirEnv = "CANDOR_AUDITLOG_CRASH_DIR"

// TestCrashChild is not a test on its own: TestCrashRecovery runs the test
// binary again with crashDirEnv set, and this function is then the process
// that appends until it is killed. It prints "index id" for every append
// that returned, i.e. was acknowledged.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	key, err := LoadOrCreateKey(filepath.Join(dir, "key"), "candor.test/crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := Open(context.Background(), filepath.Join(dir, "log"), key, Options{Logger: quiet, SyncDerivedEvery: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(idx uint64, id string) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line, so a kill can cut at most the last line.
		os.Stdout.WriteString(strconv.FormatUint(idx, 10) + " " + id + "\n")
	}
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				if g%4 == 3 { // some callers append in batches
					evs := make([]Event, 5)
					for j := range evs {
						evs[j] = event(i*5 + j)
						evs[j].Detail["id"] = fmt.Sprintf("%d-%d-%d", g, i, j)
					}
					first, err := l.AppendBatch(context.Background(), evs)
					if err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
					for j := range evs {
						ack(first+uint64(j), evs[j].Detail["id"])
					}
					continue
				}
				ev := event(i)
				ev.Detail["id"] = fmt.Sprintf("%d-%d", g, i)
				idx, err := l.Append(context.Background(), ev)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				ack(idx, ev.Detail["id"])
			}
		}()
	}
	time.Sleep(30 * time.Second) // the parent kills us long before
	os.Exit(4)
}

// TestCrashRecovery kills an appending process with SIGKILL at a random
// moment, several times over the same log, and checks after each kill
// that Open succeeds and every acknowledged entry is there, at the index
// Append returned, with the content that was appended.
//
// SIGKILL loses the process, not the page cache, so this exercises
// interrupted commits (entries written but their checkpoint not yet,
// adopted on Open); torn writes as a power cut leaves them are simulated
// byte for byte in TestTornTailIsRepairedAndReported.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	root := t.TempDir()
	acked := map[uint64]string{}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	adopted := uint64(0)
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+root)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			r := bufio.NewReader(out)
			for {
				s, err := r.ReadString('\n')
				if err != nil { // EOF: a cut-off last line is not an ack
					return
				}
				lines <- s
			}
		}()
		// Let it run, then kill it mid-flight.
		want := 100 + rnd.IntN(400)
		deadline := time.After(20 * time.Second)
		got := 0
	wait:
		for got < want {
			select {
			case s, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: child exited early: %s", round, stderr.String())
				}
				record(t, acked, s)
				got++
			case <-deadline:
				break wait
			}
		}
		time.Sleep(time.Duration(rnd.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for s := range lines {
			record(t, acked, s)
		}
		cmd.Wait()
		if got == 0 {
			t.Fatalf("round %d: no appends before the deadline: %s", round, stderr.String())
		}

		key, err := LoadOrCreateKey(filepath.Join(root, "key"), "")
		if err != nil {
			t.Fatal(err)
		}
		l, err := Open(context.Background(), filepath.Join(root, "log"), key, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		r := l.Recovery()
		adopted += r.Adopted
		t.Logf("round %d: %d acknowledged so far; %v", round, len(acked), r)
		for idx, id := range acked {
			e, err := l.Entry(context.Background(), idx)
			if err != nil {
				t.Fatalf("round %d: acknowledged entry %d: %v", round, idx, err)
			}
			if e.Event.Detail["id"] != id {
				t.Fatalf("round %d: entry %d holds %q, Append acknowledged %q", round, idx, e.Event.Detail["id"], id)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("entries adopted after kills: %d", adopted)
}

func record(t *testing.T, acked map[uint64]string, line string) {
	t.Helper()
	idxS, id, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	idx, err := strconv.ParseUint(idxS, 10, 64)
	if !ok || err != nil {
		return // test framework output, not an ack
	}
	if prev, dup := acked[idx]; dup && prev != id {
		t.Fatalf("index %d acknowledged twice: %q and %q", idx, prev, id)
	}
	acked[idx] = id
}
