package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/hub"
)

func runServe(args []string) error {
	fs := flag.NewFlagSet("candor serve", flag.ContinueOnError)
	flags := config.Register(fs)
	cpuprofile := fs.String("cpuprofile", "", "developer aid: write a CPU profile of the whole run, start to shutdown, to `file` (candor bench --cpuprofile; docs/benchmarks.md)")
	tracefile := fs.String("trace", "", "developer aid: write a Go execution trace of the whole run, start to shutdown, to `file` (candor bench --hub-flag=--trace=FILE; go tool trace; docs/benchmarks.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see --help", fs.Args())
	}
	// LookupEnv, so that CANDOR_MQTT_ADDR="" can turn plain MQTT off.
	cfg, err := flags.ResolveEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	if *cpuprofile != "" {
		stopProfile, err := startCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	if *tracefile != "" {
		stopTrace, err := startTrace(*tracefile)
		if err != nil {
			return err
		}
		defer stopTrace()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := hub.Start(ctx, cfg, log, os.Stdout)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Close(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

func newLogger(cfg config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// startCPUProfile profiles the process until the returned function is
// called, which writes the rest of the profile and closes the file.
func startCPUProfile(path string) (func(), error) {
	return startRecording(path, "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace starts a Go execution trace written to path (scheduler
// latency, GC, blocking: where a slow PUBACK waited, which a CPU profile
// cannot show) and returns the function that stops it and closes the file.
func startTrace(path string) (func(), error) {
	return startRecording(path, "trace", trace.Start, trace.Stop)
}

// startRecording creates path and has start write to it until the
// returned function calls stop and closes the file.
func startRecording(path, what string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return func() {
		stop()
		_ = f.Close()
	}, nil
}
