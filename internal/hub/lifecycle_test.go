package hub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPartsStartInOrderAndStopInReverse(t *testing.T) {
	errStart := errors.New("start failed")
	errStop := errors.New("stop failed")
	tests := []struct {
		name      string
		failStart string // the part whose start fails
		failStop  string // the part whose stop fails
		want      []string
		wantErr   error // of start
		stopErr   error // of the explicit stop after a successful start
	}{{
		name: "all start, then stop",
		want: []string{"start a", "start b", "start c", "start d", "stop d", "stop c", "stop a"},
	}, {
		name:      "a late part fails: the earlier ones stop in reverse",
		failStart: "d",
		want:      []string{"start a", "start b", "start c", "start d", "stop c", "stop a"},
		wantErr:   errStart,
	}, {
		name:      "the first part fails: nothing to stop",
		failStart: "a",
		want:      []string{"start a"},
		wantErr:   errStart,
	}, {
		name:     "a failing stop does not keep the others open",
		failStop: "c",
		want:     []string{"start a", "start b", "start c", "start d", "stop d", "stop c", "stop a"},
		stopErr:  errStop,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			mk := func(name string, stoppable bool) part {
				p := part{name: name, start: func(context.Context) error {
					got = append(got, "start "+name)
					if name == tt.failStart {
						return errStart
					}
					return nil
				}}
				if stoppable {
					p.stop = func(context.Context) error {
						got = append(got, "stop "+name)
						if name == tt.failStop {
							return errStop
						}
						return nil
					}
				}
				return p
			}
			ps := parts{log: slog.New(slog.DiscardHandler)}
			// b has nothing to undo.
			err := ps.start(t.Context(), []part{mk("a", true), mk("b", false), mk("c", true), mk("d", true)})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("start: %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				err := ps.stop(t.Context())
				if !errors.Is(err, tt.stopErr) || (err == nil) != (tt.stopErr == nil) {
					t.Errorf("stop: %v, want %v", err, tt.stopErr)
				}
				if err != nil && !strings.Contains(err.Error(), "stop c") {
					t.Errorf("stop error %q does not name the part", err)
				}
			}
			// A second stop (Close after a failed start, or twice) stops
			// nothing again.
			if err := ps.stop(t.Context()); err != nil {
				t.Errorf("second stop: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("calls:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestJobWaitCancelsAndWaits(t *testing.T) {
	var j job
	if err := j.wait(t.Context()); err != nil { // never started: nothing to wait for
		t.Fatal(err)
	}
	finished := false
	j.run(func(ctx context.Context) {
		<-ctx.Done()
		finished = true
	})
	if err := j.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !finished { // the race detector also checks wait orders the write before this read
		t.Error("wait returned before the job did")
	}
}

// openFilesUnder lists the files under dir this process holds open
// (Linux: /proc/self/fd).
func openFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd to list open files")
	}
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			open = append(open, target)
		}
	}
	return open
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// A hub that fails to start part-way must release what it had opened: the
// store and the transparency log (their files and locks), the broker's
// port and the control socket, so that the next start on the same data
// directory succeeds.
func TestFailedStartReleasesEarlierParts(t *testing.T) {
	tests := []struct {
		name  string
		taken string // which address is already in use: "http" or "mqtt"
		flag  string // the flag the error must point to
	}{
		{name: "HTTP port taken", taken: "http", flag: "--http-addr"},
		{name: "MQTT port taken", taken: "mqtt", flag: "--mqtt-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortTempDir(t)
			other, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			cfg := testConfig(t, dir)
			cfg.MQTTAddr = freeAddr(t)
			switch tt.taken {
			case "http":
				cfg.HTTPAddr = other.Addr().String()
			case "mqtt":
				cfg.MQTTAddr = other.Addr().String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			h, err := Start(ctx, cfg, nil, io.Discard)
			if err == nil {
				h.Close(ctx)
				t.Fatal("started with its port taken")
			}
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("error %q: want address in use, pointing to %s", err, tt.flag)
			}
			if open := openFilesUnder(t, dir); len(open) > 0 {
				t.Errorf("still open after the failed start: %v", open)
			}

			// Same data directory; after a failed HTTP start also the same
			// MQTT port, which the broker must have let go of.
			cfg.HTTPAddr = "127.0.0.1:0"
			if tt.taken == "mqtt" {
				cfg.MQTTAddr = "127.0.0.1:0"
			}
			h, err = Start(ctx, cfg, nil, io.Discard)
			if err != nil {
				t.Fatalf("second start on the same data directory: %v", err)
			}
			if tt.taken == "http" && h.MQTTAddr() != cfg.MQTTAddr {
				t.Errorf("broker on %s, want %s", h.MQTTAddr(), cfg.MQTTAddr)
			}
			if err := h.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if open := openFilesUnder(t, dir); len(open) > 0 {
				t.Errorf("still open after Close: %v", open)
			}
		})
	}
}
