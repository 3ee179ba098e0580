package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Sink descriptions, printed with the results: the two sides keep
// messages in different places, and the figures mean different things.
const (
	candorSink = "Candor's sink is its durable store: each reading passes device auth, the namespace ACL and the policy check%s, " +
		"and is committed to SQLite (WAL, synchronous=FULL) in group-commit batches; a QoS 1 PUBACK is sent only after the commit"
	referenceSink = "the reference broker's sink is one subscriber (same QoS as the publishers); the broker persists nothing, " +
		"so 'stored' there means delivered to that subscriber"
)

// idleStream is the stream each idle connection sends its one QoS 1
// reading on.
const idleStream = "bench_idle"

// runCandor benchmarks a Candor hub run as a subprocess, then stops it and
// reads its store back to check that every acknowledged reading is there.
func runCandor(ctx context.Context, o Options) (_ *Side, err error) {
	side := &Side{Name: "Candor (full policy path)", Sink: fmt.Sprintf(candorSink, ""), HubFlags: o.HubFlags}
	defer func() {
		if err != nil {
			side.Error = oneLine(err)
		}
	}()
	dir, err := os.MkdirTemp("", "candor-bench-")
	if err != nil {
		return side, fmt.Errorf("create data directory: %w", err)
	}
	if o.KeepData {
		o.progress("Candor data directory kept in %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var extra []string
	var pgURL string // the hub's PostgreSQL database (o.Postgres)
	if o.Postgres != "" {
		var drop func() error
		if pgURL, drop, err = createBenchDatabase(ctx, o.Postgres); err != nil {
			return side, err
		}
		side.Name = "Candor (full policy path, PostgreSQL)"
		if o.KeepData {
			o.progress("Candor database kept: %s", redactURL(pgURL))
		} else {
			defer func() {
				if derr := drop(); derr != nil && err == nil {
					err = derr
				}
			}()
		}
		extra = append(extra, "--store", pgURL)
	}
	if o.CPUProfile != "" {
		if supportsFlag(o.HubArgv, o.HubEnv, "cpuprofile") {
			extra = append(extra, "--cpuprofile", o.CPUProfile)
		} else {
			o.progress("the hub has no --cpuprofile flag yet, so it is not profiled; profile the hot path with go test -cpuprofile (docs/benchmarks.md)")
		}
	}

	o.progress("starting Candor: %s", strings.Join(o.HubArgv, " "))
	extra = append(extra, o.HubFlags...)
	h, err := startHub(ctx, o.HubArgv, o.HubEnv, dir, extra)
	if err != nil {
		return side, err
	}
	if pgURL != "" {
		h.pgDB = dbName(pgURL)
	}
	stopped := false
	defer func() {
		if !stopped {
			h.kill()
		}
	}()
	side.Addr = h.mqttAddr

	var streams []string
	for _, p := range phases(o) {
		streams = append(streams, p.stream())
	}
	declared, retention := append(streams, idleStream), "P1D"
	if o.Prefill > 0 {
		declared = append(declared, prefillStream)
		retention = prefillRetention(o.Prefill)
	}
	doc, err := benchManifest(o.PayloadBytes, declared, retention)
	if err != nil {
		return side, fmt.Errorf("build the bench manifest: %w", err)
	}
	if side.Manifest, err = h.putManifest(ctx, doc); err != nil {
		return side, err
	}
	if side.Manifest {
		side.Sink = fmt.Sprintf(candorSink, " with the device type's data manifest (declared streams and fields, types, ranges, rate)")
	}
	o.progress("Candor: creating %d devices with generated credentials over the control socket", o.Devices)
	tAdd := time.Now()
	devs, err := h.addDevices(ctx, o.Devices)
	if err != nil {
		return side, err
	}
	side.DevicesAddedPerSec = float64(len(devs)) / time.Since(tAdd).Seconds()

	if o.Prefill > 0 {
		o.progress("Candor: prefill, stopping the hub and storing %d readings of the bench devices in its store", o.Prefill)
		stopped = true
		if err := h.stop(60 * time.Second); err != nil {
			return side, fmt.Errorf("stop the hub for the prefill: %w", err)
		}
		pr, err := prefill(ctx, o, dir, pgURL, devs, o.Prefill)
		side.Prefill = pr
		if err != nil {
			return side, err
		}
		o.progress("Candor: prefill, %d readings in %.1f s (%.0f/s); starting the hub again", pr.Readings, pr.FillSeconds, pr.FillPerSec)
		if h, err = startHub(ctx, o.HubArgv, o.HubEnv, dir, extra); err != nil {
			return side, fmt.Errorf("start the hub after the prefill: %w", err)
		}
		if pgURL != "" {
			h.pgDB = dbName(pgURL)
		}
		stopped = false
		side.Addr = h.mqttAddr
	}

	// Each device's first connection runs the hub's full credential check
	// (generated secrets: the fast keyed hash; chosen ones: argon2id);
	// later ones hit its in-memory cache. Doing this once here keeps that
	// out of the per-connection figure and checks the credentials before
	// any load.
	o.progress("Candor: first connection of each device (credential verification)")
	t0 := time.Now()
	err = parallel(ctx, len(devs), 8, func(i int) error {
		d := devs[i]
		c, err := Dial(ctx, h.mqttAddr, ConnectOptions{ClientID: d.ID, Username: d.ID, Password: d.Secret, KeepAlive: keepAlive, Timeout: 60 * time.Second})
		if err != nil {
			return err
		}
		return c.Disconnect()
	})
	if err != nil {
		return side, fmt.Errorf("first connection of the bench devices: %w", err)
	}
	side.FirstConnectsPerSec = float64(len(devs)) / time.Since(t0).Seconds()

	if o.IdleConns > 0 {
		// One device per connection, as in a real fleet: what the hub
		// keeps per device (its monitor state, its session) is part of
		// the cost measured, and no device sends from hundreds of
		// connections at once (which the abuse monitor rate-limits).
		o.progress("Candor: connection scale, creating %d more devices, then %d idle connections", o.IdleConns, o.IdleConns)
		idleDevs, err := h.addDevicesNamed(ctx, o.IdleConns, "bench-idle", createWorkers)
		if err != nil {
			return side, err
		}
		clients := make([]ConnectOptions, o.IdleConns)
		topics := make([]string, o.IdleConns)
		for k := range clients {
			d := idleDevs[k]
			clients[k] = ConnectOptions{
				ClientID: fmt.Sprintf("%s-idle%d", d.ID, k), Username: d.ID, Password: d.Secret,
				KeepAlive: keepAlive, Timeout: 30 * time.Second, LocalIP: idleSource(h.mqttAddr, k), Small: true,
			}
			topics[k] = "candor/" + d.ID + "/" + idleStream
		}
		mem := func() (goMem, error) {
			m, err := h.metrics(ctx)
			return goMem{Heap: m["go_memstats_heap_inuse_bytes"], Stack: m["go_memstats_stack_inuse_bytes"], Goroutines: m["go_goroutines"]}, err
		}
		r := runIdle(ctx, idleSpec{Addr: h.mqttAddr, Clients: clients, PID: h.pid(), Timeout: 90 * time.Second, GoMem: mem, AtIdle: o.AtIdle,
			Topics: topics, PayloadBytes: o.PayloadBytes})
		side.Idle = &r
	}

	loads := map[string]*loadResult{}
	results := map[string]*PhaseResult{}
	for _, p := range phases(o) {
		r, lr, err := candorPhase(ctx, o, h, devs, p)
		if r != nil {
			setPhase(side, p, r)
		}
		if err != nil {
			return side, fmt.Errorf("%s: %w", p, err)
		}
		loads[p.stream()], results[p.stream()] = lr, r
	}

	if side.Prefill != nil {
		o.progress("Candor: GET readings over the prefilled history, %d requests of each kind", prefillRequests(o.Quick))
		if err := historyQueries(ctx, h, devs, side.Prefill, prefillRequests(o.Quick)); err != nil {
			return side, err
		}
	}

	if o.Storm > 0 {
		r, h2, err := runStorm(ctx, o, h, extra)
		side.Storm = r
		if h2 == nil {
			stopped = true // runStorm stopped it; the restart failed
		} else {
			h = h2
		}
		if err != nil {
			return side, fmt.Errorf("reconnect storm: %w", err)
		}
	}

	o.progress("Candor: stopping the hub and reading its store back")
	stopped = true
	if err := h.stop(60 * time.Second); err != nil {
		return side, err
	}
	var above int64 // the prefilled history is not read back
	if side.Prefill != nil {
		above = side.Prefill.MaxSeq
	}
	checks, err := readStore(ctx, dir, pgURL, devs, streams, above)
	if err != nil {
		return side, err
	}
	var errs []error
	for _, p := range phases(o) {
		st := p.stream()
		r, lr, chk := results[st], loads[st], checks[st]
		r.StoredReadBack = sum(chk.PerDevice)
		r.SinkP50Ms = Millis(chk.Accept.Quantile(0.50))
		r.SinkP99Ms = Millis(chk.Accept.Quantile(0.99))
		r.SinkMaxMs = Millis(chk.Accept.Max())
		for i := range chk.DeviceAccept {
			if chk.DeviceAccept[i].Count() == 0 {
				continue
			}
			p99 := Millis(chk.DeviceAccept[i].Quantile(0.99))
			if r.DeviceP99MinMs == 0 || p99 < r.DeviceP99MinMs {
				r.DeviceP99MinMs = p99
			}
			r.DeviceP99MaxMs = max(r.DeviceP99MaxMs, p99)
		}
		want, what := lr.Sent, "sent"
		if p.qos == 1 {
			want, what = lr.Acked, "acknowledged"
		}
		var bad []string
		for i, d := range devs {
			if chk.PerDevice[i] != want[i] {
				bad = append(bad, fmt.Sprintf("device %s: %d stored, %d %s", d.ID, chk.PerDevice[i], want[i], what))
			}
		}
		ok := len(bad) == 0 && chk.BadRows == 0
		r.StoredVerified = &ok
		if chk.BadRows > 0 {
			bad = append(bad, fmt.Sprintf("%d stored rows are not the readings that were sent", chk.BadRows))
		}
		if !ok && p.qos == 1 {
			if len(bad) > 3 {
				bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
			}
			errs = append(errs, fmt.Errorf("%s: %w: %s", p, ErrNotVerified, strings.Join(bad, "; ")))
		}
	}
	return side, errors.Join(errs...)
}

// candorPhase runs one load phase against the hub: every device publishes
// to candor/<id>/<stream> with its own credential.
func candorPhase(ctx context.Context, o Options, h *hubProc, devs []device, p phaseKind) (*PhaseResult, *loadResult, error) {
	o.progress("Candor: %s, %d devices for %s", p, len(devs), o.Duration)
	clients := make([]ConnectOptions, len(devs))
	topics := make([]string, len(devs))
	for i, d := range devs {
		clients[i] = ConnectOptions{ClientID: d.ID, Username: d.ID, Password: d.Secret, KeepAlive: keepAlive, Window: o.Window, Timeout: 30 * time.Second}
		topics[i] = "candor/" + d.ID + "/" + p.stream()
	}
	m0, err := h.metrics(ctx)
	if err != nil {
		return nil, nil, err
	}
	pid := h.pid()
	var (
		before   procSample
		reset    bool
		pgPIDs   []int // the hub's PostgreSQL backends (its pool is open by now)
		pgBefore []procSample
	)
	if h.pgDB != "" {
		pgPIDs = postgresBackends(ctx, o.Postgres, h.pgDB)
	}
	lr, err := runLoad(ctx, loadSpec{
		Addr: h.mqttAddr, Clients: clients, Topics: topics, QoS: p.qos, Rate: p.rate,
		Duration: o.Duration, PayloadBytes: o.PayloadBytes, DrainTimeout: drainTimeout, MaxPerClient: int64(o.MaxPerDevice),
		OnStart: func() {
			reset = resetPeakRSS(pid)
			before, _ = readProc(pid)
			pgBefore = sampleAll(pgPIDs)
		},
	})
	r := &PhaseResult{Clients: len(devs)}
	if lr != nil {
		fillLoad(r, p, lr)
	}
	if err != nil {
		return r, lr, err
	}
	// Wait until the hub's accepted counter shows every reading the
	// publishers handed over as committed (for QoS 1 it already does:
	// the PUBACK follows the commit).
	const accepted = "candor_readings_accepted_total"
	base := int64(m0[accepted])
	// A large QoS 0 backlog commits in batches of thousands of rows, each
	// of which can take seconds on a busy machine: only a long stall ends
	// the wait early, so the next phase starts from a settled counter.
	got, at, err := waitFor(ctx, base+r.accepted, 20*time.Second, 2*time.Minute, func() (int64, error) {
		m, err := h.metrics(ctx)
		return int64(m[accepted]), err
	})
	if err != nil {
		return r, lr, err
	}
	after, err := readProc(pid)
	if err != nil {
		return r, lr, err
	}
	r.PostgresBackends = len(pgPIDs)
	if pg := cpuGrowth(pgBefore, sampleAll(pgPIDs)); pg > 0 && r.accepted > 0 {
		r.PostgresCPUSeconds = pg.Seconds()
		r.PostgresMicrosPer = float64(pg.Microseconds()) / float64(r.accepted)
	}
	m1, err := h.metrics(ctx)
	if err != nil {
		return r, lr, err
	}
	r.Stored = got - base
	r.StoredSeconds = at.Sub(lr.Start).Seconds()
	if r.StoredSeconds > 0 {
		r.StoredPerSec = float64(r.Stored) / r.StoredSeconds
	}
	r.Refused = int64(m1["candor_readings_refused_total"] - m0["candor_readings_refused_total"])
	if n := m1["candor_store_batch_rows_count"] - m0["candor_store_batch_rows_count"]; n > 0 {
		r.RowsPerBatch = (m1["candor_store_batch_rows_sum"] - m0["candor_store_batch_rows_sum"]) / n
	}
	if n := m1["candor_store_batch_seconds_count"] - m0["candor_store_batch_seconds_count"]; n > 0 {
		r.CommitMeanMs = 1000 * (m1["candor_store_batch_seconds_sum"] - m0["candor_store_batch_seconds_sum"]) / n
	}
	if v, ok := commitWaitQuantile(m0, m1, 0.99); ok {
		r.CommitWaitP99Ms = 1000 * v
		v, _ = commitWaitQuantile(m0, m1, 1)
		r.CommitWaitMaxMs = 1000 * v
	}
	fillProc(r, before, after, reset, at.Sub(lr.Start))
	return r, lr, nil
}

// cpuGrowth is the CPU time the processes sampled in before and after (in
// the same order) used in between. A process that ended meanwhile reads
// as zero after: its share is left out, not subtracted.
func cpuGrowth(before, after []procSample) time.Duration {
	var d time.Duration
	for i := range min(len(before), len(after)) {
		if g := after[i].CPU - before[i].CPU; g > 0 {
			d += g
		}
	}
	return d
}

// runReference benchmarks the reference broker: Mosquitto started here on
// a free loopback port, or a broker already running at o.RefAddr.
func runReference(ctx context.Context, o Options) (_ *Side, err error) {
	side := &Side{Sink: referenceSink}
	defer func() {
		if err != nil {
			side.Error = oneLine(err)
		}
	}()
	var (
		addr string
		pid  int
	)
	switch {
	case o.RefAddr != "":
		addr = o.RefAddr
		side.Name = "reference broker at " + addr + " (CPU and memory not measured)"
	case o.Mosquitto == "off":
		side.Name = "reference broker"
		side.Skipped = "turned off (--mosquitto off)"
		return side, nil
	default:
		side.Name = "Mosquitto"
		if _, err := os.Stat(o.Mosquitto); err != nil {
			side.Skipped = fmt.Sprintf("%s not found: install Debian's mosquitto package (apt-get install mosquitto) or give --ref-addr", o.Mosquitto)
			o.progress("reference side skipped: %s", side.Skipped)
			return side, nil
		}
		side.Name = trimVersion(mosquittoVersion(o.Mosquitto))
		dir, derr := os.MkdirTemp("", "candor-bench-mosquitto-")
		if derr != nil {
			return side, fmt.Errorf("create mosquitto config directory: %w", derr)
		}
		defer os.RemoveAll(dir)
		o.progress("starting %s on a free loopback port (generated config, no persistence)", side.Name)
		m, serr := startMosquitto(o.Mosquitto, dir)
		if serr != nil {
			return side, serr
		}
		defer func() {
			if serr := m.stop(10 * time.Second); serr != nil && err == nil {
				err = serr
			}
			if err != nil {
				err = fmt.Errorf("%w (mosquitto's log: %s)", err, m.stderr.String())
			}
		}()
		addr, pid = m.addr, m.pid()
	}
	side.Addr = addr

	if o.IdleConns > 0 {
		o.progress("%s: connection scale, %d idle connections", side.Name, o.IdleConns)
		clients := make([]ConnectOptions, o.IdleConns)
		topics := make([]string, o.IdleConns)
		for k := range clients {
			clients[k] = ConnectOptions{ClientID: fmt.Sprintf("bench-idle-%05d", k), KeepAlive: keepAlive, Timeout: 30 * time.Second, LocalIP: idleSource(addr, k), Small: true}
			topics[k] = "candor/" + clients[k].ClientID + "/" + idleStream
		}
		r := runIdle(ctx, idleSpec{Addr: addr, Clients: clients, PID: pid, Timeout: 90 * time.Second, Topics: topics, PayloadBytes: o.PayloadBytes})
		side.Idle = &r
	}
	for _, p := range phases(o) {
		r, err := referencePhase(ctx, o, side.Name, addr, pid, p)
		if r != nil {
			setPhase(side, p, r)
		}
		if err != nil {
			return side, fmt.Errorf("%s: %w", p, err)
		}
	}
	return side, nil
}

// referencePhase runs one load phase against the reference broker, with
// one subscriber as the sink.
func referencePhase(ctx context.Context, o Options, name, addr string, pid int, p phaseKind) (*PhaseResult, error) {
	o.progress("%s: %s, %d devices for %s, one subscriber as the sink", name, p, o.Devices, o.Duration)
	st := p.stream()
	sk, err := startSink(ctx, addr, "bench-sink-"+st, "candor/+/"+st, p.qos)
	if err != nil {
		return nil, err
	}
	defer sk.conn.Close()
	clients := make([]ConnectOptions, o.Devices)
	topics := make([]string, o.Devices)
	for i := range clients {
		id := fmt.Sprintf("bench-dev-%05d", i)
		clients[i] = ConnectOptions{ClientID: id, KeepAlive: keepAlive, Window: o.Window, Timeout: 30 * time.Second}
		topics[i] = "candor/" + id + "/" + st
	}
	var (
		before procSample
		reset  bool
	)
	lr, err := runLoad(ctx, loadSpec{
		Addr: addr, Clients: clients, Topics: topics, QoS: p.qos, Rate: p.rate,
		Duration: o.Duration, PayloadBytes: o.PayloadBytes, DrainTimeout: drainTimeout, MaxPerClient: int64(o.MaxPerDevice),
		OnStart: func() {
			if pid > 0 {
				reset = resetPeakRSS(pid)
				before, _ = readProc(pid)
			}
		},
	})
	r := &PhaseResult{Clients: o.Devices}
	if lr != nil {
		fillLoad(r, p, lr)
	}
	if err != nil {
		return r, err
	}
	got, _, _ := waitFor(ctx, r.accepted, 2*time.Second, 30*time.Second, func() (int64, error) {
		return sk.count.Load(), nil
	})
	var after procSample
	if pid > 0 {
		if after, err = readProc(pid); err != nil {
			return r, err
		}
	}
	if err := sk.conn.Disconnect(); err != nil {
		return r, fmt.Errorf("sink: %w", err)
	}
	last := time.Unix(0, sk.last.Load())
	r.Stored = got
	if got > 0 {
		r.StoredSeconds = last.Sub(lr.Start).Seconds()
		if r.StoredSeconds > 0 {
			r.StoredPerSec = float64(got) / r.StoredSeconds
		}
	}
	r.SinkP50Ms = Millis(sk.lat.Quantile(0.50))
	r.SinkP99Ms = Millis(sk.lat.Quantile(0.99))
	r.SinkMaxMs = Millis(sk.lat.Max())
	if pid > 0 {
		fillProc(r, before, after, reset, last.Sub(lr.Start))
	}
	return r, nil
}
