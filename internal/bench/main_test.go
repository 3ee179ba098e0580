package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/hub"
)

// hubEnv makes the test binary act as `candor serve` (see TestMain), so
// the bench can run Candor as a subprocess in tests without building the
// candor binary first (which would take longer than the whole test).
const hubEnv = "CANDOR_BENCH_TEST_HUB=1"

// hubStacks is the goroutine stack setting candor serve starts itself
// with (cmd/candor/stacks.go), which the test hub, not started through
// candor's main, is given in its environment instead, so that its idle
// connections cost what candor serve's do.
const hubStacks = "GODEBUG=adaptivestackstart=0"

func TestMain(m *testing.M) {
	if os.Getenv("CANDOR_BENCH_TEST_HUB") == "1" {
		if err := serveHub(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "test hub:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveHub does what cmd/candor's serve does: resolve the settings, start
// the hub, and shut it down cleanly on SIGTERM.
func serveHub(args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	cfg, _, err := config.Load(args, os.Getenv)
	if err != nil {
		return err
	}
	if path := os.Getenv("CANDOR_BENCH_HUB_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	if path := os.Getenv("CANDOR_BENCH_HUB_HEAPPROFILE"); path != "" && heapProfileSignal != nil {
		// The idle-connection profile is taken while the connections are
		// open, which only the bench knows: it sends SIGUSR1 then.
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, heapProfileSignal)
		go func() {
			for range usr1 {
				if err := writeHeapProfile(path); err != nil {
					fmt.Fprintln(os.Stderr, "test hub: heap profile:", err)
				}
			}
		}()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := hub.Start(ctx, cfg, log, os.Stdout)
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.Close(sctx)
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(path string) error {
	// Stacks shrink by half at most once per collection: the figures after
	// each of a few collections show what idle connections settle at.
	stats, err := os.Create(path + ".txt")
	if err != nil {
		return err
	}
	defer stats.Close()
	for i := range 4 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(stats, "test hub: before collection %d: heap in use %d MiB, stacks in use %d MiB, goroutines %d\n",
			i, ms.HeapInuse>>20, ms.StackInuse>>20, runtime.NumGoroutine())
		runtime.GC()
	}
	ss := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(ss)
	fmt.Fprintf(stats, "test hub: goroutine starting stack %d bytes\n", ss[0].Value.Uint64())
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// testHubArgv runs this test binary as the hub.
func testHubArgv(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "serve"}
}

// TestProfileHub profiles a Candor hub under the bench's QoS 1 and QoS 0
// load, with its full policy path. The hub has no --cpuprofile flag yet,
// so the test binary, acting as the hub, writes the profile. It runs only
// when asked (see docs/benchmarks.md):
//
//	go test -c -o /tmp/bench.test ./internal/bench
//	CANDOR_BENCH_PROFILE=/tmp/hub.pprof /tmp/bench.test -test.run TestProfileHub -test.v
//	go tool pprof -top /tmp/bench.test /tmp/hub.pprof
func TestProfileHub(t *testing.T) {
	out := os.Getenv("CANDOR_BENCH_PROFILE")
	if out == "" {
		t.Skip("skipped: set CANDOR_BENCH_PROFILE=<file> to profile the hub under load")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// CANDOR_BENCH_DEVICES and CANDOR_BENCH_DURATION change the load, e.g.
	// many devices and a short load to profile device creation.
	// CANDOR_BENCH_STORM adds the reconnect storm with that many devices.
	devices, _ := strconv.Atoi(os.Getenv("CANDOR_BENCH_DEVICES"))
	storm, _ := strconv.Atoi(os.Getenv("CANDOR_BENCH_STORM"))
	duration, err := time.ParseDuration(cmp.Or(os.Getenv("CANDOR_BENCH_DURATION"), "10s"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, Options{
		Only: "candor", IdleConns: -1, Rate: -1, Duration: duration, Devices: devices, Storm: storm,
		HubArgv: testHubArgv(t), HubEnv: []string{hubEnv, hubStacks, "CANDOR_BENCH_HUB_CPUPROFILE=" + out},
		Out: os.Stdout, Progress: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("profile of the hub written to %s (QoS 1: %.0f msg/s acknowledged)", out, rep.Candor.QoS1.AckedPerSec)
}

// TestProfileIdleHub writes a heap profile of a Candor hub holding idle
// device connections, taken while they are all open. It runs only when
// asked:
//
//	go test -c -o /tmp/bench.test ./internal/bench
//	CANDOR_BENCH_HEAPPROFILE=/tmp/idle.pprof CANDOR_BENCH_IDLE=10000 /tmp/bench.test -test.run TestProfileIdleHub -test.v
//	go tool pprof -sample_index=inuse_space -top /tmp/bench.test /tmp/idle.pprof
//
// CANDOR_BENCH_HUB_ENV adds settings to the hub's environment, as for
// TestIdleHubHold: GODEBUG=adaptivestackstart=0,memprofilerate=1 records
// every allocation instead of one per 512 KiB, so that small per-device
// objects are counted exactly rather than estimated from a few samples.
func TestProfileIdleHub(t *testing.T) {
	out := os.Getenv("CANDOR_BENCH_HEAPPROFILE")
	if out == "" {
		t.Skip("skipped: set CANDOR_BENCH_HEAPPROFILE=<file> to profile a hub holding idle connections")
	}
	n, _ := strconv.Atoi(os.Getenv("CANDOR_BENCH_IDLE"))
	if n <= 0 {
		n = 10_000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Only: "candor", IdleConns: n, Rate: -1, Duration: time.Second, MaxPerDevice: 10,
		HubArgv: testHubArgv(t), HubEnv: append([]string{hubEnv, hubStacks, "CANDOR_BENCH_HUB_HEAPPROFILE=" + out}, strings.Fields(os.Getenv("CANDOR_BENCH_HUB_ENV"))...),
		AtIdle: func(pid int) {
			// The hub collects a few times, then writes; on a loaded
			// machine that takes longer than any fixed pause, so wait
			// for the profile (written after its .txt companion).
			_ = os.Remove(out)
			if err := askHeapProfile(pid); err != nil {
				t.Errorf("heap profile: %v", err)
				return
			}
			for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
					time.Sleep(time.Second) // let the write finish
					return
				}
			}
			t.Errorf("the hub wrote no heap profile to %s within 2 minutes", out)
		},
		Out: os.Stdout, Progress: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile of the hub with %d idle connections written to %s (%.1f KiB RSS per connection)", rep.Candor.Idle.Connected, out, rep.Candor.Idle.RSSPerConnKiB)
}

// TestIdleHubHold holds idle device connections open on a Candor hub for
// a while and reports what the hub spends doing nothing: its CPU over the
// hold, and its resident memory at the start and the end of it (after the
// collector and the scavenger settled). It runs only when asked:
//
//	CANDOR_BENCH_IDLE_HOLD=30s CANDOR_BENCH_IDLE=18000 /tmp/bench.test -test.run TestIdleHubHold -test.v
//
// CANDOR_BENCH_HUB_ENV adds space-separated VAR=value settings to the
// hub's environment only, such as GOMEMLIMIT=1GiB or GOGC=50.
func TestIdleHubHold(t *testing.T) {
	hold, _ := time.ParseDuration(os.Getenv("CANDOR_BENCH_IDLE_HOLD"))
	if hold <= 0 {
		t.Skip("skipped: set CANDOR_BENCH_IDLE_HOLD=<duration> to hold idle connections on a hub")
	}
	n, _ := strconv.Atoi(os.Getenv("CANDOR_BENCH_IDLE"))
	if n <= 0 {
		n = 10_000
	}
	env := append([]string{hubEnv, hubStacks}, strings.Fields(os.Getenv("CANDOR_BENCH_HUB_ENV"))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Only: "candor", IdleConns: n, Rate: -1, Duration: time.Second, MaxPerDevice: 10,
		HubArgv: testHubArgv(t), HubEnv: env,
		AtIdle: func(pid int) {
			a, err := readProc(pid)
			if err != nil {
				t.Errorf("hub process: %v", err)
				return
			}
			time.Sleep(hold)
			b, err := readProc(pid)
			if err != nil {
				t.Errorf("hub process: %v", err)
				return
			}
			t.Logf("holding %d idle connections for %s: hub CPU %.1f%% of one core; RSS %.0f → %.0f MiB",
				n, hold, 100*(b.CPU-a.CPU).Seconds()/hold.Seconds(), mib(a.RSS), mib(b.RSS))
		},
		Out: io.Discard, Progress: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	i := rep.Candor.Idle
	t.Logf("connected %d, %.0f connects/s, %.1f KiB RSS per connection (Go heap %.1f, stacks %.1f KiB)",
		i.Connected, i.ConnectsPerSec, i.RSSPerConnKiB, i.GoHeapPerConnKiB, i.GoStackPerConnKiB)
}
