package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/candor-iot/candor/internal/bench"
)

// runBench parses the bench flags and hands over to bench.Run. Only the
// flags given are passed on, so bench applies its own defaults (which
// differ with --quick).
func runBench(args []string) error {
	fs := newFlags("candor bench", "candor bench [--quick] [--devices N] [--duration D] [--json FILE] [--mosquitto PATH|off] [--ref-addr HOST:PORT]")
	devices := fs.Int("devices", bench.DefaultDevices, "simulated devices publishing at once (--quick: 10)")
	duration := fs.Duration("duration", bench.DefaultDuration, "length of each load phase (--quick: 1s)")
	window := fs.Int("window", bench.DefaultWindow, "unacknowledged QoS 1 messages per connection")
	payload := fs.Int("payload-bytes", bench.DefaultPayloadBytes, "size of each JSON reading in bytes")
	idle := fs.Int("idle-conns", bench.DefaultIdleConns, "idle connections for the connection-scale phase, -1 to skip (--quick: 100)")
	rate := fs.Float64("rate", bench.DefaultRate, "total msg/s of the paced QoS 1 latency phase, -1 to skip (--quick: 1000)")
	pacedOnly := fs.Bool("paced-only", false, "run only the paced QoS 1 phase (with --cpuprofile: profile it alone)")
	maxPer := fs.Int("max-per-device", -1, "most messages a device sends in one phase, -1 for no bound but --duration (--quick: 5000)")
	quick := fs.Bool("quick", false, "a run of a few seconds for CI: checks completion and that Candor stored what it acknowledged")
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	mosq := fs.String("mosquitto", bench.DefaultMosquitto, "Mosquitto binary to start as the reference broker on a free loopback port, or off")
	refAddr := fs.String("ref-addr", "", "use a reference broker already running at this loopback host:port instead of starting Mosquitto")
	only := fs.String("only", "", "run only one side: candor or reference")
	keep := fs.Bool("keep-data", false, "keep the hub's data directory after the run")
	fanout := fs.Bool("fanout", false, "instead: --devices devices publish at full speed to one app subscribed to all of them (Candor) or one subscriber (Mosquitto); prints delivered msg/s and drops")
	fanoutQoS := fs.Int("fanout-qos", 1, "QoS of the --fanout publishes and subscription (0 or 1)")
	nodes := addNodesFlags(fs)
	var hubFlags []string
	fs.Func("hub-flag", "extra flag for the hub's serve command, such as --hub-flag=--batch-max-wait=1ms (repeatable)", func(s string) error {
		hubFlags = append(hubFlags, s)
		return nil
	})
	storm := fs.Int("storm", 0, "after the load phases, create this many more devices, restart the hub and time until all are connected again (the target is 10000 back in 10 s), 0 to skip")
	prefillN := fs.Int("prefill", 0, "before the load phases, store this many readings of the bench devices in the hub's store (the hub is stopped for it), and time GET readings over them after the phases; 0 for none")
	hubPostgres := fs.String("hub-postgres", "", "run the Candor hub on a fresh PostgreSQL database instead of its SQLite file: a postgres:// URL of a loopback server and a role that may create (and drop) the bench's database, such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	hubExe := fs.String("hub-exe", "", "run this candor binary as the hub instead of this one (compare two builds under the same load)")
	cpuprofile := fs.String("cpuprofile", "", "")
	// --cpuprofile is hidden (a developer aid): it is passed to the hub's
	// serve --cpuprofile, if the hub has that flag.
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: candor bench [flags]\n\nRuns the same MQTT load against Candor (a subprocess with its full policy path and\ndurable storage) and against Mosquitto, and prints both figures and their ratio.\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "cpuprofile" {
				return
			}
			arg, usage := flag.UnquoteUsage(f)
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(fs.Output(), "  --%s %s\n    \t%s%s\n", f.Name, arg, usage, def)
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see --help", fs.Args())
	}
	o := bench.Options{
		Quick: *quick, JSONPath: *jsonPath, Mosquitto: *mosq, RefAddr: *refAddr,
		Only: *only, KeepData: *keep, CPUProfile: *cpuprofile, HubFlags: hubFlags,
		PacedOnly: *pacedOnly, Postgres: *hubPostgres,
	}
	if *hubExe != "" {
		o.HubArgv = []string{*hubExe, "serve"}
	}
	// Options read 0 as "the default", so a 0 given on purpose is refused
	// (sizes) or read as "skip" / "no bound" (phases and bounds) here,
	// never silently replaced by the default.
	var bad error
	positive := func(name string, v int) int {
		if v <= 0 && bad == nil {
			bad = fmt.Errorf("--%s must be at least 1, not %d", name, v)
		}
		return v
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "devices":
			o.Devices = positive("devices", *devices)
		case "duration":
			o.Duration = *duration
			if *duration <= 0 && bad == nil {
				bad = fmt.Errorf("--duration must be positive, not %s", *duration)
			}
		case "window":
			o.Window = positive("window", *window)
		case "payload-bytes":
			o.PayloadBytes = positive("payload-bytes", *payload)
		case "idle-conns":
			o.IdleConns = skipZero(*idle)
		case "rate":
			o.Rate = *rate
			if *rate == 0 {
				o.Rate = -1
			}
		case "storm":
			o.Storm = *storm
		case "prefill":
			o.Prefill = *prefillN
		case "max-per-device":
			o.MaxPerDevice = skipZero(*maxPer)
		}
	})
	if bad != nil {
		return bad
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if *fanout {
		return runFanout(ctx, o, byte(*fanoutQoS))
	}
	if want, err := nodes.wanted(fs); want || err != nil {
		if err != nil {
			return err
		}
		if *hubPostgres != "" {
			return errors.New("--hub-postgres is for the single hub; --store postgres has its own --postgres-url")
		}
		return runNodesBench(ctx, o, nodes)
	}
	_, err := bench.Run(ctx, o)
	fmt.Fprintf(os.Stderr, "bench: finished in %s\n", time.Since(start).Round(time.Second))
	return err
}

// skipZero maps an explicit 0 to -1, which bench.Options reads as "skip"
// or "no bound" (0 there means "the default").
func skipZero(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

// runFanout runs the fan-out bench with the devices, duration, window,
// payload and Mosquitto of the bench flags.
func runFanout(ctx context.Context, o bench.Options, qos byte) error {
	if qos > 1 {
		return fmt.Errorf("--fanout-qos must be 0 or 1, not %d", qos)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fo := bench.FanoutOptions{HubArgv: []string{exe, "serve"}, Devices: o.Devices, Duration: o.Duration, QoS: qos,
		PayloadBytes: o.PayloadBytes, Window: o.Window, Progress: os.Stderr, Mosquitto: o.Mosquitto}
	if fo.Mosquitto == "" {
		fo.Mosquitto = bench.DefaultMosquitto
	}
	if fo.Mosquitto == "off" {
		fo.Mosquitto = ""
	}
	rep, err := bench.RunFanout(ctx, fo)
	if rep != nil {
		if werr := bench.WriteFanout(os.Stdout, rep); err == nil {
			err = werr
		}
	}
	return err
}
