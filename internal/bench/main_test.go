package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
