package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
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
	rep, err := Run(ctx, Options{
		Only: "candor", IdleConns: -1, Rate: -1, Duration: 10 * time.Second,
		HubArgv: testHubArgv(t), HubEnv: []string{hubEnv, "CANDOR_BENCH_HUB_CPUPROFILE=" + out},
		Out: os.Stdout, Progress: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("profile of the hub written to %s (QoS 1: %.0f msg/s acknowledged)", out, rep.Candor.QoS1.AckedPerSec)
}
