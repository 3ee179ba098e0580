package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// keepAlive is the keep-alive the bench's clients announce, in seconds. The
// lean client sends no PINGREQ, so it is longer than any bounded run.
const keepAlive = 900

// Defaults and bounds of a run.
const (
	DefaultDevices      = 100
	DefaultDuration     = 10 * time.Second
	DefaultWindow       = 16
	DefaultPayloadBytes = 100
	DefaultIdleConns    = 2000
	DefaultRate         = 10000

	maxDevices   = 5000
	maxIdleConns = 200_000
	maxStorm     = 200_000
	maxDuration  = 5 * time.Minute
	minDuration  = 200 * time.Millisecond
	maxPayload   = 64 << 10
	maxRate      = 1e6
	drainTimeout = 30 * time.Second
)

// Options configure a run. Zero values take the defaults (the --quick
// defaults when Quick is set).
type Options struct {
	Devices      int           // publishing devices (default 100; quick 10)
	Duration     time.Duration // of each load phase (default 10s; quick 1s)
	Window       int           // unacknowledged QoS 1 messages per connection (default 16)
	PayloadBytes int           // size of each JSON reading (default 100)
	IdleConns    int           // idle connections for the connection-scale phase (default 2000; quick 100); <0 skips it
	Rate         float64       // msg/s of the paced QoS 1 latency phase (default 10000; quick 1000); <0 skips it
	// PacedOnly skips the full-speed phases: only the paced one runs (for
	// profiling it alone).
	PacedOnly bool
	Quick     bool // a few seconds, for CI: checks completion and stored == acknowledged
	// MaxPerDevice bounds the messages each device sends in a phase
	// (default: no bound but Duration; quick 5000; <0 no bound).
	MaxPerDevice int
	// Storm, if positive, adds the reconnect storm after the load phases
	// (Candor only): this many more devices are created, the hub is
	// restarted, and all of them connect again (see runStorm).
	Storm int
	// Prefill, if positive, stores this many readings of the bench's
	// devices in the hub's store before the first connections (the hub is
	// stopped for it and started again), and times GET readings over
	// them after the load phases (Candor only; see prefill.go).
	Prefill int
	// Postgres, if set, is a postgres:// URL of a loopback server and a
	// role that may create databases: the Candor hub then stores in a
	// fresh PostgreSQL database made for the run (and dropped after it,
	// unless KeepData) instead of its SQLite file (Candor only).
	Postgres string

	// Only limits the run to "candor" or "reference"; empty runs both.
	Only string
	// HubArgv runs Candor's server: the program and the arguments before
	// the serve flags. Default: this executable with "serve".
	HubArgv []string
	// HubEnv is added to the hub's environment.
	HubEnv []string
	// HubFlags are extra flags for the hub's serve command, for
	// experiments such as --batch-max-wait=1ms.
	HubFlags []string
	// Mosquitto is the broker binary to start as the reference (default
	// /usr/sbin/mosquitto); "off" skips the reference side.
	Mosquitto string
	// RefAddr, if set, is a reference broker already running on a
	// loopback address; no Mosquitto is started, and its CPU and memory
	// are not measured.
	RefAddr string
	// CPUProfile asks the hub subprocess to write a CPU profile there, if
	// the hub has a --cpuprofile flag.
	CPUProfile string
	// KeepData keeps the hub's data directory after the run.
	KeepData bool
	// AtIdle, if set, is called with the broker's process id while all
	// the idle connections of the connection-scale phase are open, after
	// they were measured (a test takes a heap profile there).
	AtIdle func(pid int)

	JSONPath string    // also write the report as JSON here
	Out      io.Writer // the table (default os.Stdout)
	Progress io.Writer // progress lines (default os.Stderr)
}

func (o *Options) normalize() error {
	def := func(v *int, normal, quick int) {
		if *v == 0 {
			*v = normal
			if o.Quick {
				*v = quick
			}
		}
	}
	def(&o.Devices, DefaultDevices, 10)
	def(&o.Window, DefaultWindow, DefaultWindow)
	def(&o.PayloadBytes, DefaultPayloadBytes, DefaultPayloadBytes)
	def(&o.IdleConns, DefaultIdleConns, 100)
	def(&o.MaxPerDevice, -1, 5000)
	if o.Duration == 0 {
		o.Duration = DefaultDuration
		if o.Quick {
			o.Duration = time.Second
		}
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
		if o.Quick {
			o.Rate = 1000
		}
	}
	var errs []error
	if o.Devices < 1 || o.Devices > maxDevices {
		errs = append(errs, fmt.Errorf("devices: %d is outside 1..%d", o.Devices, maxDevices))
	}
	if o.Duration < minDuration || o.Duration > maxDuration {
		errs = append(errs, fmt.Errorf("duration: %s is outside %s..%s", o.Duration, minDuration, maxDuration))
	}
	if o.Window < 1 || o.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window: %d is outside 1..%d", o.Window, MaxWindow))
	}
	if o.PayloadBytes < MinPayloadBytes || o.PayloadBytes > maxPayload {
		errs = append(errs, fmt.Errorf("payload-bytes: %d is outside %d..%d", o.PayloadBytes, MinPayloadBytes, maxPayload))
	}
	if o.IdleConns > maxIdleConns {
		errs = append(errs, fmt.Errorf("idle-conns: %d is above %d", o.IdleConns, maxIdleConns))
	}
	if o.Storm > maxStorm {
		errs = append(errs, fmt.Errorf("storm: %d is above %d", o.Storm, maxStorm))
	}
	if o.Prefill > maxPrefill {
		errs = append(errs, fmt.Errorf("prefill: %d is above %d", o.Prefill, maxPrefill))
	}
	if o.Rate > maxRate {
		errs = append(errs, fmt.Errorf("rate: %g is above %g", o.Rate, maxRate))
	}
	if o.PacedOnly && o.Rate < 0 {
		errs = append(errs, errors.New("paced-only: the paced phase is skipped (rate < 0), so nothing would run"))
	}
	switch o.Only {
	case "", "candor", "reference":
	default:
		errs = append(errs, fmt.Errorf("only: %q is not candor or reference", o.Only))
	}
	if o.Postgres != "" {
		if u, err := url.Parse(o.Postgres); err != nil || !isLoopback(u.Host) {
			errs = append(errs, fmt.Errorf("postgres: %q is not a loopback URL; the benchmark only sends load to this machine", redactURL(o.Postgres)))
		}
	}
	if o.RefAddr != "" && !isLoopback(o.RefAddr) {
		errs = append(errs, fmt.Errorf("ref-addr: %q is not a loopback host:port; the benchmark only sends load to this machine", o.RefAddr))
	}
	if o.Mosquitto == "" {
		o.Mosquitto = DefaultMosquitto
	}
	if len(o.HubArgv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			errs = append(errs, fmt.Errorf("find the candor executable to run the hub: %w", err))
		}
		o.HubArgv = []string{exe, "serve"}
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	return errors.Join(errs...)
}

// storeName is the Candor hub's storage engine in the run.
func (o *Options) storeName() string {
	if o.Postgres != "" {
		return "postgres"
	}
	return "sqlite"
}

// Report is the outcome of a run; it is also the JSON document.
type Report struct {
	Schema            int       `json:"schema"`
	StartedAt         time.Time `json:"started_at"`
	Machine           Machine   `json:"machine"`
	Settings          Settings  `json:"settings"`
	Candor            *Side     `json:"candor,omitempty"`
	Reference         *Side     `json:"reference,omitempty"`
	Rows              []Row     `json:"rows"`
	NotYetImplemented []string  `json:"not_yet_implemented"`
	Notes             []string  `json:"notes"`
	Errors            []string  `json:"errors,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memory_gib"`
	GoVersion string  `json:"go_version"`
	OSArch    string  `json:"os_arch"`
	Kernel    string  `json:"kernel"`
	// LoadAvg is /proc/loadavg's 1-minute load when the run started:
	// other work on the machine skews every figure.
	LoadAvg   float64 `json:"loadavg_1m"`
	Mosquitto string  `json:"mosquitto,omitempty"`
}

// Settings are the run's resolved options.
type Settings struct {
	Devices         int     `json:"devices"`
	DurationSeconds float64 `json:"duration_seconds"`
	Window          int     `json:"window"`
	PayloadBytes    int     `json:"payload_bytes"`
	IdleConns       int     `json:"idle_conns"`
	Rate            float64 `json:"paced_rate"`
	MaxPerDevice    int     `json:"max_per_device,omitempty"`
	Storm           int     `json:"storm,omitempty"`
	Prefill         int     `json:"prefill,omitempty"`
	// Store is the Candor hub's storage engine: "sqlite" or "postgres".
	Store string `json:"store,omitempty"`
	Quick bool   `json:"quick"`
}

// Side is one broker's results.
type Side struct {
	Name    string `json:"name"`
	Addr    string `json:"addr,omitempty"`
	Sink    string `json:"sink"`
	Skipped string `json:"skipped,omitempty"`
	// FirstConnectsPerSec is the rate of each device's first connection,
	// which runs the hub's full credential check (Candor only).
	FirstConnectsPerSec float64 `json:"first_connects_per_sec,omitempty"`
	// DevicesAddedPerSec is the rate of device creation through the API,
	// createWorkers at a time (Candor only).
	DevicesAddedPerSec float64  `json:"devices_added_per_sec,omitempty"`
	HubFlags           []string `json:"hub_flags,omitempty"`
	// Manifest is true when the hub enforces data manifests and the
	// bench's readings were checked against the bench device manifest.
	Manifest bool         `json:"manifest_enforced,omitempty"`
	Idle     *IdleResult  `json:"idle,omitempty"`
	Storm    *StormResult `json:"storm,omitempty"`
	// Prefill is the history stored before the load phases (--prefill).
	Prefill *PrefillResult `json:"prefill,omitempty"`
	QoS1    *PhaseResult   `json:"qos1,omitempty"`
	QoS0    *PhaseResult   `json:"qos0,omitempty"`
	Paced   *PhaseResult   `json:"qos1_paced,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// PhaseResult is one load phase on one broker.
type PhaseResult struct {
	QoS            int     `json:"qos"`
	Clients        int     `json:"clients"`
	PacedRate      float64 `json:"paced_rate,omitempty"`
	LoadSeconds    float64 `json:"load_seconds"`    // start → last publish sent
	ElapsedSeconds float64 `json:"elapsed_seconds"` // start → last PUBACK (QoS 1) or last flush (QoS 0)
	Sent           int64   `json:"sent"`
	Acked          int64   `json:"acked,omitempty"`
	SentPerSec     float64 `json:"sent_per_sec"`
	AckedPerSec    float64 `json:"acked_per_sec,omitempty"`
	// Stored is, for Candor, readings committed to its store (the hub's
	// accepted counter during the run; checked row by row afterwards);
	// for the reference broker, messages delivered to the sink subscriber.
	Stored        int64   `json:"stored"`
	StoredSeconds float64 `json:"stored_seconds"` // start → last stored/delivered
	StoredPerSec  float64 `json:"stored_per_sec"`
	// StoredVerified is set for Candor once the store was read back
	// after the run: rows per device equal acknowledgements (QoS 1) or
	// messages sent (QoS 0).
	StoredVerified *bool `json:"stored_verified,omitempty"`
	StoredReadBack int64 `json:"stored_read_back,omitempty"`
	Refused        int64 `json:"refused,omitempty"`

	// AckP50Ms etc. are the client-observed PUBACK latency: from the
	// load generator's send time to its reader goroutine having the
	// PUBACK, so they include the generator's own scheduling delays.
	AckP50Ms float64 `json:"puback_p50_ms,omitempty"`
	AckP99Ms float64 `json:"puback_p99_ms,omitempty"`
	AckMaxMs float64 `json:"puback_max_ms,omitempty"`
	// SockAckP50Ms etc. are the PUBACK latency at the client socket:
	// from just before the write(2) of the PUBLISH to the kernel's
	// receive time of the PUBACK (SO_TIMESTAMPNS), over SockAckCount
	// PUBACKs. SockAckNA, when set, is why they were not measured (not
	// Linux, or PUBACKs without a receive time); they are then absent
	// rather than computed from part of the PUBACKs.
	SockAckP50Ms float64 `json:"puback_socket_p50_ms,omitempty"`
	SockAckP99Ms float64 `json:"puback_socket_p99_ms,omitempty"`
	SockAckMaxMs float64 `json:"puback_socket_max_ms,omitempty"`
	SockAckCount int64   `json:"puback_socket_count,omitempty"`
	SockAckNA    string  `json:"puback_socket_unavailable,omitempty"`
	// SinkP50Ms etc. are, for Candor, publish → accepted by the policy
	// path (the stored row's timestamp minus the send time in the
	// payload); for the reference broker, publish → delivered to the sink.
	SinkP50Ms float64 `json:"sink_p50_ms,omitempty"`
	SinkP99Ms float64 `json:"sink_p99_ms,omitempty"`
	SinkMaxMs float64 `json:"sink_max_ms,omitempty"`

	// DeviceP99MinMs and DeviceP99MaxMs are, for Candor, the p99 of
	// publish → accepted of the device served best and of the one served
	// worst: far apart, connections are served unevenly.
	DeviceP99MinMs float64 `json:"device_p99_min_ms,omitempty"`
	DeviceP99MaxMs float64 `json:"device_p99_max_ms,omitempty"`
	// DeviceSentMin and DeviceSentMax are the fewest and most messages one
	// device got into the broker's socket in the phase.
	DeviceSentMin int64 `json:"device_sent_min,omitempty"`
	DeviceSentMax int64 `json:"device_sent_max,omitempty"`

	RowsPerBatch float64 `json:"rows_per_batch,omitempty"`
	CommitMeanMs float64 `json:"commit_mean_ms,omitempty"`
	// CommitWaitP99Ms and CommitWaitMaxMs are, for Candor, how long the
	// oldest reading of a committed batch waited from acceptance (its row
	// timestamp) until the commit finished, p99 and largest over the
	// phase's batches, each the upper bound of a histogram bucket (the
	// hub's candor_store_commit_wait_seconds). Added to publish → accepted
	// they bound publish → durable.
	CommitWaitP99Ms float64 `json:"commit_wait_p99_ms,omitempty"`
	CommitWaitMaxMs float64 `json:"commit_wait_max_ms,omitempty"`

	BrokerCPUSeconds float64 `json:"broker_cpu_seconds,omitempty"`
	BrokerCPUPercent float64 `json:"broker_cpu_percent,omitempty"` // of one core, over the phase
	// BrokerRunqPercent is how long the broker's threads waited for a
	// CPU, in % of the phase (summed over threads, so it can pass 100):
	// a high figure means other work on the machine slowed the broker.
	BrokerRunqPercent float64 `json:"broker_runq_wait_percent,omitempty"`
	CPUMicrosPerMsg   float64 `json:"broker_cpu_us_per_msg,omitempty"`
	// PostgresCPUSeconds and PostgresMicrosPer are, for a Candor hub on
	// PostgreSQL (Options.Postgres), the CPU time of the server's
	// backends serving the hub's database over the phase, in all and per
	// message: the store's work that the hub's own CPU leaves out.
	PostgresCPUSeconds float64 `json:"postgres_cpu_seconds,omitempty"`
	PostgresMicrosPer  float64 `json:"postgres_cpu_us_per_msg,omitempty"`
	// PostgresBackends is how many of the server's backends serving the
	// hub's database were found (and measured) at the phase's start; a
	// backend the hub opened during the phase is not seen. A short phase
	// can use less CPU there than /proc's 10 ms ticks show, so a zero
	// PostgresCPUSeconds with backends found means "under a tick".
	PostgresBackends int     `json:"postgres_backends,omitempty"`
	PeakRSSMiB       float64 `json:"broker_peak_rss_mib,omitempty"`
	// DiskBytesPerMsg is what the broker wrote to storage over the phase
	// per message it took (for Candor: WAL frames plus checkpoints).
	DiskBytesPerMsg float64 `json:"broker_disk_bytes_per_msg,omitempty"`
	PeakRSSIsPhase  bool    `json:"broker_peak_rss_is_phase,omitempty"` // false: peak since the broker started
	LoadGenCPU      float64 `json:"loadgen_cpu_seconds"`

	accepted int64 // messages the broker took: acked (QoS 1) or sent (QoS 0)
}

// ErrNotVerified is wrapped by Run's error when Candor's store does not
// hold exactly the readings it acknowledged.
var ErrNotVerified = errors.New("stored readings do not match acknowledged readings")

// Run runs the benchmark, prints the table to o.Out (and the JSON to
// o.JSONPath) and returns the report. The error is non-nil if a side
// failed or Candor's stored count did not match what it acknowledged;
// the report is printed in either case.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.normalize(); err != nil {
		return nil, fmt.Errorf("bench options: %w", err)
	}
	if _, err := raiseFileLimit(); err != nil && (o.IdleConns > 500 || o.Storm > 500) {
		fmt.Fprintf(o.Progress, "bench: %v; the connection-scale phase may hit it\n", err)
	}
	rep := &Report{
		Schema:    1,
		StartedAt: time.Now().UTC(),
		Machine:   machine(o),
		Settings: Settings{
			Devices: o.Devices, DurationSeconds: o.Duration.Seconds(), Window: o.Window,
			PayloadBytes: o.PayloadBytes, IdleConns: max(o.IdleConns, 0), Rate: max(o.Rate, 0), Quick: o.Quick,
			MaxPerDevice: max(o.MaxPerDevice, 0), Storm: max(o.Storm, 0), Prefill: max(o.Prefill, 0),
			Store: o.storeName(),
		},
		NotYetImplemented: append([]string(nil), notYetImplemented...),
	}
	var errs []error
	if o.Only != "reference" {
		side, err := runCandor(ctx, o)
		rep.Candor = side
		if err != nil {
			errs = append(errs, fmt.Errorf("candor: %w", err))
		}
	}
	if o.Only != "candor" {
		side, err := runReference(ctx, o)
		rep.Reference = side
		if err != nil {
			errs = append(errs, fmt.Errorf("reference: %w", err))
		}
	}
	if rep.Candor != nil && rep.Candor.Error == "" && !rep.Candor.Manifest {
		rep.NotYetImplemented = append(rep.NotYetImplemented, manifestNotYet)
	}
	for _, err := range errs {
		rep.Errors = append(rep.Errors, oneLine(err))
	}
	rep.Rows = rows(rep)
	rep.Notes = notes(rep)
	if err := writeTable(o.Out, rep); err != nil {
		errs = append(errs, fmt.Errorf("print report: %w", err))
	}
	if o.JSONPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(o.JSONPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write JSON report %s: %w", o.JSONPath, err))
		}
	}
	return rep, errors.Join(errs...)
}

// notYetImplemented are the figures the report lists that this command
// does not measure; they are printed as such rather than estimated.
// The consent check and the encryption of each reading are part of the
// policy path measured above.
var notYetImplemented = []string{
	"transparency log append rate: not measured by this command; see `go test -bench Append ./internal/auditlog/` (figures in docs/benchmarks.md)",
	"consent change to effect latency: not measured by this command; the change is in force when its API call returns (tested), the decision is a ~22 ns in-memory lookup",
	"account deletion time at 1M readings: not measured by this command; see `go test -run '^$' -bench DeleteAccount -benchtime 1x ./internal/erasure/` (real SQLite and vault; figures in docs/benchmarks.md)",
}

// manifestNotYet is printed when the hub under test has no data
// manifests (a build that predates them).
const manifestNotYet = "manifest check cost: not measured (the hub under test has no data manifests: readings are only checked for being a JSON object within the size limit on a valid stream)"

func machine(o Options) Machine {
	m := Machine{
		CPUs:      runtime.NumCPU(),
		MemoryGiB: float64(memTotal()) / (1 << 30),
		GoVersion: runtime.Version(),
		OSArch:    runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAvg, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if o.Only != "candor" && o.RefAddr == "" && o.Mosquitto != "off" {
		if _, err := os.Stat(o.Mosquitto); err == nil {
			m.Mosquitto = mosquittoVersion(o.Mosquitto)
		}
	}
	return m
}

func (o *Options) progress(format string, args ...any) {
	fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
}

// phaseNames are the load phases in the order they run.
func phases(o Options) []phaseKind {
	var ps []phaseKind
	if !o.PacedOnly {
		ps = append(ps, phaseKind{qos: 1}, phaseKind{qos: 0})
	}
	if o.Rate > 0 {
		ps = append(ps, phaseKind{qos: 1, rate: o.Rate})
	}
	return ps
}

// phaseKind is one load phase: QoS, and a pacing rate (0: full speed).
type phaseKind struct {
	qos  byte
	rate float64
}

// stream is the Candor stream (and topic level) of a phase's readings,
// so the store can be checked phase by phase.
func (p phaseKind) stream() string {
	if p.rate > 0 {
		return fmt.Sprintf("bench_qos%d_paced", p.qos)
	}
	return fmt.Sprintf("bench_qos%d", p.qos)
}

func (p phaseKind) String() string {
	if p.rate > 0 {
		return fmt.Sprintf("QoS %d paced at %.0f msg/s", p.qos, p.rate)
	}
	return fmt.Sprintf("QoS %d full speed", p.qos)
}

func setPhase(side *Side, p phaseKind, r *PhaseResult) {
	switch {
	case p.rate > 0:
		side.Paced = r
	case p.qos == 1:
		side.QoS1 = r
	default:
		side.QoS0 = r
	}
}

// fillLoad fills the publisher side of a phase result.
func fillLoad(r *PhaseResult, p phaseKind, lr *loadResult) {
	r.QoS = int(p.qos)
	r.PacedRate = p.rate
	r.Sent = sum(lr.Sent)
	r.LoadSeconds = lr.SendEnd.Sub(lr.Start).Seconds()
	r.ElapsedSeconds = lr.End.Sub(lr.Start).Seconds()
	if r.LoadSeconds > 0 {
		r.SentPerSec = float64(r.Sent) / r.LoadSeconds
	}
	r.accepted = r.Sent
	if len(lr.Sent) > 0 {
		r.DeviceSentMin, r.DeviceSentMax = slices.Min(lr.Sent), slices.Max(lr.Sent)
	}
	if p.qos == 1 {
		r.Acked = sum(lr.Acked)
		r.accepted = r.Acked
		if r.ElapsedSeconds > 0 {
			r.AckedPerSec = float64(r.Acked) / r.ElapsedSeconds
		}
		r.AckP50Ms = Millis(lr.AckLat.Quantile(0.50))
		r.AckP99Ms = Millis(lr.AckLat.Quantile(0.99))
		r.AckMaxMs = Millis(lr.AckLat.Max())
		fillSocket(r, lr)
	}
	r.LoadGenCPU = lr.LoadCPU.Seconds()
}

// fillSocket fills the PUBACK latency at the client socket, or why it is
// missing: a figure over only the PUBACKs that had a receive time could
// leave out the slow ones, so any PUBACK without one voids it.
func fillSocket(r *PhaseResult, lr *loadResult) {
	switch n := int64(lr.SockLat.Count()); {
	case lr.SockNA != "":
		r.SockAckNA = lr.SockNA
	case lr.SockUnstamped > 0:
		r.SockAckNA = fmt.Sprintf("%d of %d PUBACKs came without a kernel receive time", lr.SockUnstamped, lr.SockUnstamped+n)
	case n == 0:
		r.SockAckNA = "no PUBACK"
	default:
		r.SockAckCount = n
		r.SockAckP50Ms = Millis(lr.SockLat.Quantile(0.50))
		r.SockAckP99Ms = Millis(lr.SockLat.Quantile(0.99))
		r.SockAckMaxMs = Millis(lr.SockLat.Max())
	}
}

// fillProc fills the broker's CPU and memory for a phase.
func fillProc(r *PhaseResult, before, after procSample, phaseReset bool, elapsed time.Duration) {
	cpu := after.CPU - before.CPU
	r.BrokerCPUSeconds = cpu.Seconds()
	if elapsed > 0 {
		r.BrokerCPUPercent = 100 * cpu.Seconds() / elapsed.Seconds()
		r.BrokerRunqPercent = 100 * (after.RunqWait - before.RunqWait).Seconds() / elapsed.Seconds()
	}
	if r.accepted > 0 {
		r.CPUMicrosPerMsg = float64(cpu.Microseconds()) / float64(r.accepted)
		if before.DiskWrites >= 0 && after.DiskWrites >= 0 {
			r.DiskBytesPerMsg = float64(after.DiskWrites-before.DiskWrites) / float64(r.accepted)
		}
	}
	r.PeakRSSMiB = mib(after.HWM)
	r.PeakRSSIsPhase = phaseReset
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
