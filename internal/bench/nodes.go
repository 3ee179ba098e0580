package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/hub"
)

// Several nodes: `candor bench --store postgres --nodes N` runs N `candor
// serve` processes on loopback sharing one fresh PostgreSQL database and
// one NATS deployment, spreads the bench devices over them, and measures
// acknowledged QoS 1 throughput and the CPU the nodes spend per reading,
// next to a single SQLite hub measured in the same run.

// NodesOptions configure a several-nodes run. Zero sizes take the bench
// defaults (Options).
type NodesOptions struct {
	Nodes        int
	Devices      int
	Duration     time.Duration
	Window       int
	PayloadBytes int
	// Postgres is a postgres:// URL of a role that may create databases;
	// the bench creates a database of its own there and drops it.
	Postgres string
	// NATS is the NATS JetStream server the nodes share (nats://…).
	NATS string
	// SkipSingle skips the single-node SQLite side.
	SkipSingle bool
	HubArgv    []string
	HubEnv     []string // added to the hubs' environment
	HubFlags   []string
	JSONPath   string
	Out        io.Writer
	Progress   io.Writer
}

// NodesReport is the outcome of a several-nodes run; it is also the JSON
// document.
type NodesReport struct {
	StartedAt time.Time    `json:"started_at"`
	Machine   Machine      `json:"machine"`
	Settings  Settings     `json:"settings"`
	Sides     []*NodesSide `json:"sides"`
	Errors    []string     `json:"errors,omitempty"`
}

// NodesSide is one configuration: a single SQLite hub, or N nodes.
type NodesSide struct {
	Name  string `json:"name"`
	Nodes int    `json:"nodes"`
	// Database is the PostgreSQL database the bench created (and
	// dropped) for the nodes.
	Database string       `json:"database,omitempty"`
	QoS1     *PhaseResult `json:"qos1,omitempty"`
	// PerNodeAcked is the acknowledged readings each node took.
	PerNodeAcked []int64 `json:"per_node_acked,omitempty"`
	// PostgresCPUSeconds is the CPU time of the PostgreSQL server
	// processes serving the bench's database during the phase (0 for
	// SQLite, or when they could not be read).
	PostgresCPUSeconds float64 `json:"postgres_cpu_seconds,omitempty"`
	PostgresMicrosPer  float64 `json:"postgres_cpu_us_per_msg,omitempty"`
	Error              string  `json:"error,omitempty"`
}

// RunNodes runs the several-nodes comparison and prints its table.
func RunNodes(ctx context.Context, no NodesOptions) (*NodesReport, error) {
	o := Options{Devices: no.Devices, Duration: no.Duration, Window: no.Window, PayloadBytes: no.PayloadBytes,
		IdleConns: -1, Rate: -1, MaxPerDevice: -1, Only: "candor", HubArgv: no.HubArgv, HubEnv: no.HubEnv, HubFlags: no.HubFlags,
		Out: no.Out, Progress: no.Progress, Mosquitto: "off"}
	if err := o.normalize(); err != nil {
		return nil, fmt.Errorf("bench options: %w", err)
	}
	if no.Nodes < 1 || no.Nodes > 16 {
		return nil, fmt.Errorf("nodes: %d is outside 1..16", no.Nodes)
	}
	if no.Postgres == "" || no.NATS == "" {
		return nil, errors.New("several nodes need a PostgreSQL server (--postgres-url) and a NATS server (--nats)")
	}
	for _, u := range []string{no.Postgres, no.NATS} {
		pu, err := url.Parse(u)
		if err != nil || !isLoopback(pu.Host) {
			return nil, fmt.Errorf("%q is not a loopback URL; the benchmark only sends load to this machine", u)
		}
	}
	if _, err := raiseFileLimit(); err != nil {
		o.progress("%v", err)
	}
	rep := &NodesReport{StartedAt: time.Now().UTC(), Machine: machine(o), Settings: Settings{Devices: o.Devices,
		DurationSeconds: o.Duration.Seconds(), Window: o.Window, PayloadBytes: o.PayloadBytes}}
	var errs []error
	if !no.SkipSingle {
		side, err := runSingleSQLite(ctx, o)
		rep.Sides = append(rep.Sides, side)
		if err != nil {
			errs = append(errs, fmt.Errorf("single SQLite hub: %w", err))
		}
	}
	side, err := runNodes(ctx, o, no)
	rep.Sides = append(rep.Sides, side)
	if err != nil {
		errs = append(errs, fmt.Errorf("%d nodes: %w", no.Nodes, err))
	}
	for _, err := range errs {
		rep.Errors = append(rep.Errors, oneLine(err))
	}
	if err := writeNodesTable(o.Out, rep); err != nil {
		errs = append(errs, err)
	}
	if no.JSONPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(no.JSONPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write JSON report %s: %w", no.JSONPath, err))
		}
	}
	return rep, errors.Join(errs...)
}

// runSingleSQLite is the QoS 1 full-speed phase of the single-node bench
// against one hub on its embedded SQLite store.
func runSingleSQLite(ctx context.Context, o Options) (_ *NodesSide, err error) {
	side := &NodesSide{Name: "1 hub, SQLite", Nodes: 1}
	defer func() {
		if err != nil {
			side.Error = oneLine(err)
		}
	}()
	dir, err := os.MkdirTemp("", "candor-bench-")
	if err != nil {
		return side, err
	}
	defer os.RemoveAll(dir)
	h, err := startHub(ctx, o.HubArgv, o.HubEnv, dir, o.HubFlags)
	if err != nil {
		return side, err
	}
	defer func() { _ = h.stop(60 * time.Second) }()
	devs, err := prepareDevices(ctx, o, h, []*hubProc{h})
	if err != nil {
		return side, err
	}
	r, _, err := candorPhase(ctx, o, h, devs, phaseKind{qos: 1})
	side.QoS1 = r
	if r != nil {
		side.PerNodeAcked = []int64{r.Acked}
	}
	return side, err
}

// runNodes starts the nodes on a fresh database, runs the QoS 1 phase
// with the devices spread over them, and stops them.
func runNodes(ctx context.Context, o Options, no NodesOptions) (_ *NodesSide, err error) {
	side := &NodesSide{Name: fmt.Sprintf("%d nodes, PostgreSQL + NATS", no.Nodes), Nodes: no.Nodes}
	defer func() {
		if err != nil {
			side.Error = oneLine(err)
		}
	}()
	dbURL, drop, err := createBenchDatabase(ctx, no.Postgres)
	if err != nil {
		return side, err
	}
	side.Database = dbName(dbURL)
	defer func() {
		if derr := drop(); derr != nil && err == nil {
			err = derr
		}
	}()
	var b [6]byte
	_, _ = rand.Read(b[:])
	deployment := "bench-" + hex.EncodeToString(b[:])
	o.progress("%d nodes: database %s, NATS deployment %s", no.Nodes, redactURL(dbURL), deployment)
	defer func() {
		if derr := deleteDeployment(no.NATS, deployment); derr != nil && err == nil {
			err = derr
		}
	}()

	var nodes []*hubProc
	defer func() {
		for _, h := range nodes {
			_ = h.stop(60 * time.Second)
			_ = os.RemoveAll(h.dir)
		}
	}()
	extra := append([]string{"--store", dbURL, "--nats", no.NATS, "--deployment", deployment}, o.HubFlags...)
	for i := range no.Nodes {
		dir, err := os.MkdirTemp("", "candor-bench-")
		if err != nil {
			return side, err
		}
		if i > 0 {
			// The first node made the deployment's keys; the others
			// start with copies, as the deployment guide says.
			if err := copySharedKeys(nodes[0].dir, dir); err != nil {
				return side, err
			}
		}
		o.progress("%d nodes: starting node %d", no.Nodes, i+1)
		h, err := startHub(ctx, o.HubArgv, o.HubEnv, dir, extra)
		if err != nil {
			_ = os.RemoveAll(dir)
			return side, fmt.Errorf("node %d: %w", i+1, err)
		}
		nodes = append(nodes, h)
	}
	devs, err := prepareDevices(ctx, o, nodes[0], nodes)
	if err != nil {
		return side, err
	}
	r, perNode, pgCPU, err := nodesPhase(ctx, o, nodes, devs, dbName(dbURL), no.Postgres)
	side.QoS1, side.PerNodeAcked = r, perNode
	if pgCPU > 0 && r != nil && r.Acked > 0 {
		side.PostgresCPUSeconds = pgCPU.Seconds()
		side.PostgresMicrosPer = float64(pgCPU.Microseconds()) / float64(r.Acked)
	}
	return side, err
}

// prepareDevices puts the bench manifest and the devices in through
// admin, and makes each device's first connection (argon2id) to the node
// it will publish to, so the phase measures readings, not logins.
func prepareDevices(ctx context.Context, o Options, admin *hubProc, nodes []*hubProc) ([]device, error) {
	doc, err := benchManifest(o.PayloadBytes, []string{phaseKind{qos: 1}.stream()}, "P1D")
	if err != nil {
		return nil, fmt.Errorf("build the bench manifest: %w", err)
	}
	if _, err := admin.putManifest(ctx, doc); err != nil {
		return nil, err
	}
	o.progress("creating %d devices", o.Devices)
	devs, err := admin.addDevices(ctx, o.Devices)
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, len(devs), 8, func(i int) error {
		d := devs[i]
		c, err := Dial(ctx, nodes[i%len(nodes)].mqttAddr, ConnectOptions{ClientID: d.ID, Username: d.ID, Password: d.Secret,
			KeepAlive: keepAlive, Timeout: 60 * time.Second})
		if err != nil {
			return err
		}
		return c.Disconnect()
	})
	if err != nil {
		return nil, fmt.Errorf("first connection of the bench devices: %w", err)
	}
	return devs, nil
}

// nodesPhase runs the QoS 1 full-speed load with device i publishing to
// node i mod N, and sums the nodes' CPU time over the phase.
func nodesPhase(ctx context.Context, o Options, nodes []*hubProc, devs []device, db, admin string) (*PhaseResult, []int64, time.Duration, error) {
	p := phaseKind{qos: 1}
	o.progress("%d nodes: %s, %d devices for %s", len(nodes), p, len(devs), o.Duration)
	specs := make([]loadSpec, len(nodes))
	for i, d := range devs {
		s := &specs[i%len(nodes)]
		s.Clients = append(s.Clients, ConnectOptions{ClientID: d.ID, Username: d.ID, Password: d.Secret, KeepAlive: keepAlive,
			Window: o.Window, Timeout: 30 * time.Second})
		s.Topics = append(s.Topics, "candor/"+d.ID+"/"+p.stream())
	}
	pgPIDs := postgresBackends(ctx, admin, db)
	var (
		once     sync.Once
		before   []procSample
		pgBefore []procSample
	)
	sample := func() {
		before = sampleAll(pids(nodes))
		pgBefore = sampleAll(pgPIDs)
	}
	results := make([]*loadResult, len(nodes))
	errs := make([]error, len(nodes))
	// The loads on the nodes start together: each waits, once its
	// clients are connected, for the others (or for one that failed).
	loads := 0
	for _, s := range specs {
		if len(s.Clients) > 0 {
			loads++
		}
	}
	start := newBarrier(loads)
	var wg sync.WaitGroup
	for i := range nodes {
		s := specs[i]
		if len(s.Clients) == 0 {
			continue
		}
		s.Addr, s.QoS, s.Duration, s.PayloadBytes, s.DrainTimeout = nodes[i].mqttAddr, p.qos, o.Duration, o.PayloadBytes, drainTimeout
		s.MaxPerClient = -1
		arrived := false
		s.OnStart = func() {
			arrived = true
			start.arrive()
			once.Do(sample)
		}
		wg.Go(func() {
			results[i], errs[i] = runLoad(ctx, s)
			if !arrived {
				start.arrive() // failed before its start: do not hold the others
			}
		})
	}
	wg.Wait()
	after := sampleAll(pids(nodes))
	pgAfter := sampleAll(pgPIDs)
	lr := mergeLoads(results)
	r := &PhaseResult{Clients: len(devs)}
	perNode := make([]int64, len(nodes))
	for i, res := range results {
		if res != nil {
			perNode[i] = sum(res.Acked)
		}
	}
	if lr != nil {
		fillLoad(r, p, lr)
		fillProc(r, sumSamples(before), sumSamples(after), false, lr.End.Sub(lr.Start))
	}
	return r, perNode, sumSamples(pgAfter).CPU - sumSamples(pgBefore).CPU, errors.Join(errs...)
}

// barrier lets n parties wait until all of them arrived.
type barrier struct {
	mu      sync.Mutex
	pending int
	all     chan struct{}
}

func newBarrier(n int) *barrier {
	b := &barrier{pending: n, all: make(chan struct{})}
	if n <= 0 {
		close(b.all)
	}
	return b
}

// arrive counts one party in and waits for the rest.
func (b *barrier) arrive() {
	b.mu.Lock()
	b.pending--
	if b.pending == 0 {
		close(b.all)
	}
	b.mu.Unlock()
	<-b.all
}

// mergeLoads joins the loads run against each node into one: the phase
// runs from the first start to the last acknowledgement.
func mergeLoads(rs []*loadResult) *loadResult {
	var m *loadResult
	for _, r := range rs {
		if r == nil {
			continue
		}
		if m == nil {
			m = &loadResult{Start: r.Start, SendEnd: r.SendEnd, End: r.End}
		}
		if r.Start.Before(m.Start) {
			m.Start = r.Start
		}
		m.SendEnd = latest([]time.Time{m.SendEnd, r.SendEnd})
		m.End = latest([]time.Time{m.End, r.End})
		m.Sent = append(m.Sent, r.Sent...)
		m.Acked = append(m.Acked, r.Acked...)
		m.AckLat.Merge(&r.AckLat)
		m.addSocket(&r.SockLat, r.SockUnstamped, r.SockNA)
		// Each load measured this whole process over about the same
		// span: the largest is the closest to the total.
		m.LoadCPU = max(m.LoadCPU, r.LoadCPU)
	}
	return m
}

func pids(nodes []*hubProc) []int {
	out := make([]int, len(nodes))
	for i, h := range nodes {
		out[i] = h.pid()
	}
	return out
}

// sampleAll reads every process; one that cannot be read counts as zero.
func sampleAll(pids []int) []procSample {
	out := make([]procSample, len(pids))
	for i, pid := range pids {
		out[i], _ = readProc(pid)
	}
	return out
}

// sumSamples adds CPU and run-queue wait, and the peak memory of all.
func sumSamples(ss []procSample) procSample {
	var t procSample
	for _, s := range ss {
		t.CPU += s.CPU
		t.RunqWait += s.RunqWait
		t.HWM += s.HWM
		t.RSS += s.RSS
	}
	return t
}

// postgresBackends are the process ids of the PostgreSQL backends
// connected to db (the nodes' pools, open by now); nil when the server is
// not on this machine's /proc or cannot be asked.
func postgresBackends(ctx context.Context, admin, db string) []int {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, db)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := make([]int, 0, len(pids))
	for _, p := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
			out = append(out, int(p))
		}
	}
	return out
}

// createBenchDatabase creates a database with a unique name on the server
// admin names; drop removes it, ending connections left to it.
func createBenchDatabase(ctx context.Context, admin string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL at %s: %w", redactURL(admin), err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "candor_bench_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create bench database %s: %w", name, err)
	}
	drop := func() error {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(dctx, admin)
		if err != nil {
			return fmt.Errorf("drop bench database %s: %w", name, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(dctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			return fmt.Errorf("drop bench database %s: %w", name, err)
		}
		return nil
	}
	u, err := url.Parse(admin)
	if err != nil {
		_ = drop()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// deleteDeployment deletes the deployment's transparency log stream on
// the NATS server, the one thing the nodes leave there.
func deleteDeployment(natsURL, deployment string) error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return fmt.Errorf("delete the bench deployment's log stream: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("delete the bench deployment's log stream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, cluster.StreamName(deployment)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete the bench deployment's log stream: %w", err)
	}
	return nil
}

func dbName(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return ""
	}
	return u.Path[1:]
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// copySharedKeys copies the deployment's keys from one node's data
// directory to another's.
func copySharedKeys(from, to string) error {
	for _, name := range hub.SharedKeyFiles {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return fmt.Errorf("copy the deployment's keys: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, name)), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			return fmt.Errorf("copy the deployment's keys: %w", err)
		}
	}
	return nil
}

func writeNodesTable(w io.Writer, rep *NodesReport) error {
	fmt.Fprintf(w, "\nCandor on several nodes: QoS 1 full speed, %d devices, %.0fs, window %d, %d-byte readings; load average %.2f at start, %d CPUs\n\n",
		rep.Settings.Devices, rep.Settings.DurationSeconds, rep.Settings.Window, rep.Settings.PayloadBytes, rep.Machine.LoadAvg, rep.Machine.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "configuration\tacked msg/s\tPUBACK p50 / p99 ms\tat the client socket p50 / p99 ms\tnodes' CPU µs/msg\tnodes' CPU %\tPostgreSQL CPU µs/msg\tper node acked")
	for _, s := range rep.Sides {
		if s.QoS1 == nil {
			fmt.Fprintf(tw, "%s\tfailed: %s\t\t\t\t\t\t\n", s.Name, s.Error)
			continue
		}
		r := s.QoS1
		pg := "-"
		if s.PostgresMicrosPer > 0 {
			pg = fmt.Sprintf("%.1f", s.PostgresMicrosPer)
		}
		sock := "n/a (" + r.SockAckNA + ")"
		if r.SockAckNA == "" {
			sock = fmt.Sprintf("%.2f / %.2f", r.SockAckP50Ms, r.SockAckP99Ms)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f / %.2f\t%s\t%.1f\t%.0f\t%s\t%v\n", s.Name, r.AckedPerSec, r.AckP50Ms, r.AckP99Ms,
			sock, r.CPUMicrosPerMsg, r.BrokerCPUPercent, pg, s.PerNodeAcked)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPUBACK latency is client-observed; at the client socket it runs from just before the PUBLISH's write(2) to the kernel's receive time of the PUBACK (Linux only).")
	fmt.Fprintln(w, "nodes' CPU is the sum over the candor serve processes (from /proc/<pid>/stat); PostgreSQL CPU is the server processes serving the bench database; NATS and the load generator are not counted.")
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}
