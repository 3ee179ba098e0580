package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
	"github.com/candor-iot/candor/internal/testenv"
)

// TestQuickCandor runs the whole bench in --quick mode against Candor as a
// subprocess (this test binary acting as `candor serve`), and checks only
// that it completes and that what the hub acknowledged is what its store
// holds afterwards. It asserts no timing.
func TestQuickCandor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, progress bytes.Buffer
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	rep, err := Run(ctx, Options{
		Quick: true, Only: "candor", Devices: 5, IdleConns: 20, MaxPerDevice: 1000,
		HubArgv: testHubArgv(t), HubEnv: []string{hubEnv},
		Out: &out, Progress: &progress, JSONPath: jsonPath,
	})
	if err != nil {
		t.Fatalf("quick run failed: %v\nprogress:\n%s\nreport:\n%s", err, progress.String(), out.String())
	}
	c := rep.Candor
	if c == nil || c.QoS1 == nil || c.QoS0 == nil || c.Paced == nil || c.Idle == nil {
		t.Fatalf("incomplete report: %+v", c)
	}
	for _, p := range []*PhaseResult{c.QoS1, c.Paced} {
		if p.Acked == 0 {
			t.Errorf("QoS %d (paced %v): nothing acknowledged", p.QoS, p.PacedRate)
		}
		// The read-back count is the check; the hub's counter (Stored) is
		// a during-the-run figure and can lag on a busy machine.
		if p.StoredVerified == nil || !*p.StoredVerified || p.StoredReadBack != p.Acked {
			t.Errorf("QoS %d (paced %v): acked %d, stored %d, read back %d", p.QoS, p.PacedRate, p.Acked, p.Stored, p.StoredReadBack)
		}
	}
	checkSocketLatency(t, c.QoS1, c.Paced)
	if c.QoS0.Sent == 0 || c.QoS0.StoredReadBack != c.QoS0.Sent {
		t.Errorf("QoS 0: sent %d, stored %d, read back %d", c.QoS0.Sent, c.QoS0.Stored, c.QoS0.StoredReadBack)
	}
	// How evenly devices were served, and how long accepted readings
	// waited for their commit, which the row timestamps leave out.
	if q := c.QoS0; q.DeviceSentMin <= 0 || q.DeviceSentMax < q.DeviceSentMin || q.DeviceP99MinMs <= 0 ||
		q.DeviceP99MaxMs < q.DeviceP99MinMs || q.CommitWaitMaxMs <= 0 || q.CommitWaitMaxMs < q.CommitWaitP99Ms {
		t.Errorf("QoS 0 per-device and commit-wait figures missing or inconsistent: %+v", q)
	}
	if c.Idle.Connected != 20 {
		t.Errorf("idle: %d of 20 connected (%s)", c.Idle.Connected, c.Idle.FirstError)
	}
	table := out.String()
	for _, want := range []string{"acknowledged msg/s", "stored == acknowledged, read back", "yes,", "not measured by this command", "Sinks:", "PUBACK latency at the client socket p99 ms"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if back.Candor == nil || back.Candor.QoS1 == nil || back.Candor.QoS1.Acked != c.QoS1.Acked || len(back.Rows) == 0 {
		t.Errorf("JSON report does not match the run")
	}
	t.Logf("quick run: QoS 1 %d acked and stored, QoS 0 %d of %d stored", c.QoS1.Acked, c.QoS0.Stored, c.QoS0.Sent)
}

// TestQuickCandorPrefill: with a prefilled history the hub serves it
// through GET readings (so it was sealed as the hub seals, for the bench's
// own devices, in the windows asked for), the phases' read-back still
// matches what was acknowledged (the history is left out of it), and the
// report's header names the prefill. It asserts no timing. With
// PostgreSQL the hub runs on a database the bench makes, filled by COPY
// and vacuumed, and read back from there.
func TestQuickCandorPrefill(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var pg string
			if engine == "postgres" {
				pgtest.NewDatabase(t) // skips (or fails in CI) without a server
				pg = pgtest.AdminURL()
			}
			quickPrefill(t, engine, pg)
		})
	}
}

func quickPrefill(t *testing.T, engine, pg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var out, progress bytes.Buffer
	const devices, n = 4, 30_000
	rep, err := Run(ctx, Options{
		Quick: true, Only: "candor", Devices: devices, IdleConns: -1, MaxPerDevice: 500, Prefill: n, Postgres: pg,
		HubArgv: testHubArgv(t), HubEnv: []string{hubEnv}, Out: &out, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("quick run failed: %v\nprogress:\n%s\nreport:\n%s", err, progress.String(), out.String())
	}
	c := rep.Candor
	if c == nil || c.Prefill == nil || c.QoS1 == nil {
		t.Fatalf("incomplete report: %+v", c)
	}
	if rep.Settings.Store != engine {
		t.Errorf("report's store %q, want %q", rep.Settings.Store, engine)
	}
	// The PostgreSQL server's share of the work is measured: the hub's
	// backends are found (the CPU they use in a phase this short may be
	// under /proc's 10 ms tick, so it may read 0); on SQLite nothing is
	// reported at all.
	if onPG := c.QoS1.PostgresBackends > 0; onPG != (engine == "postgres") {
		t.Errorf("%d PostgreSQL backends measured on %s", c.QoS1.PostgresBackends, engine)
	}
	if engine != "postgres" && c.QoS1.PostgresMicrosPer != 0 {
		t.Errorf("PostgreSQL CPU %v µs per message on %s", c.QoS1.PostgresMicrosPer, engine)
	}
	t.Logf("%s: PostgreSQL CPU %v µs per message over %d backends", engine, c.QoS1.PostgresMicrosPer, c.QoS1.PostgresBackends)
	if vacuumed := c.Prefill.VacuumSeconds > 0; vacuumed != (engine == "postgres") {
		t.Errorf("VACUUM after the fill took %v s on %s", c.Prefill.VacuumSeconds, engine)
	}
	if c.Prefill.Readings != n || c.Prefill.MaxSeq < n {
		t.Errorf("prefill stored %d readings up to seq %d, want %d", c.Prefill.Readings, c.Prefill.MaxSeq, n)
	}
	// Reading i is device i%4's, one a second: a device has 900 per hour.
	want := map[string]float64{"oldest": 100, "after": 100, "dayago": 900, "middle": 900}
	if len(c.Prefill.Queries) != len(want) {
		t.Fatalf("queries %+v, want %d kinds", c.Prefill.Queries, len(want))
	}
	for _, q := range c.Prefill.Queries {
		if q.Readings != want[q.Name] || q.Requests != prefillRequests(true) {
			t.Errorf("%s: %d requests, %v readings each; want %d, %v", q.Name, q.Requests, q.Readings, prefillRequests(true), want[q.Name])
		}
		// Serving them takes the hub's CPU (the figure is read, not
		// estimated).
		if q.CPUMicrosPerRequest <= 0 {
			t.Errorf("%s: hub CPU %v µs per request", q.Name, q.CPUMicrosPerRequest)
		}
	}
	if p := c.QoS1; p.StoredVerified == nil || !*p.StoredVerified || p.StoredReadBack != p.Acked {
		t.Errorf("QoS 1: acked %d, read back %d", p.Acked, p.StoredReadBack)
	}
	if !strings.Contains(out.String(), "history: 30,000 readings of the bench devices prefilled") {
		t.Errorf("the header does not name the prefill:\n%s", out.String())
	}
}

// TestQuickMosquitto runs the reference side against a Mosquitto started
// by the bench, when Debian's mosquitto package is installed.
func TestQuickMosquitto(t *testing.T) {
	if _, err := os.Stat(DefaultMosquitto); err != nil {
		testenv.Missing(t, "%s is not installed (Debian package mosquitto): %v", DefaultMosquitto, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, progress bytes.Buffer
	rep, err := Run(ctx, Options{Quick: true, Only: "reference", Devices: 5, IdleConns: 20, MaxPerDevice: 1000, Out: &out, Progress: &progress})
	if err != nil {
		t.Fatalf("quick run failed: %v\nprogress:\n%s\nreport:\n%s", err, progress.String(), out.String())
	}
	r := rep.Reference
	if r == nil || r.Skipped != "" || r.QoS1 == nil || r.QoS0 == nil || r.Idle == nil {
		t.Fatalf("incomplete report: %+v", r)
	}
	if r.QoS1.Acked == 0 || r.QoS1.Stored == 0 || r.QoS0.Sent == 0 {
		t.Errorf("QoS 1 acked %d, delivered %d; QoS 0 sent %d", r.QoS1.Acked, r.QoS1.Stored, r.QoS0.Sent)
	}
	checkSocketLatency(t, r.QoS1)
	if r.QoS1.BrokerCPUSeconds <= 0 && r.QoS1.PeakRSSMiB <= 0 {
		t.Error("Mosquitto's CPU and memory were not read from /proc")
	}
	if r.Idle.Connected != 20 {
		t.Errorf("idle: %d of 20 connected (%s)", r.Idle.Connected, r.Idle.FirstError)
	}
}

func TestOptionsBounds(t *testing.T) {
	for _, o := range []Options{
		{Devices: maxDevices + 1},
		{Duration: time.Hour},
		{Window: MaxWindow + 1},
		{PayloadBytes: 10},
		{RefAddr: "192.0.2.1:1883"},
		{Only: "both"},
		{PacedOnly: true, Rate: -1}, // nothing left to run
		{Prefill: maxPrefill + 1},
	} {
		o.Out, o.Progress = &bytes.Buffer{}, &bytes.Buffer{}
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "bench options") {
			t.Errorf("%+v: got %v, want an options error", o, err)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP candor_readings_accepted_total x
# TYPE candor_readings_accepted_total counter
candor_readings_accepted_total 1234
candor_readings_refused_total{reason="too_large"} 2
candor_readings_refused_total{reason="not_json_object"} 3
candor_store_batch_rows_bucket{le="1"} 7
candor_store_batch_rows_sum 5000
candor_store_batch_rows_count 10
go_goroutines 12
go_gc_duration_seconds{quantile="0"} 1
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"candor_readings_accepted_total": 1234, "candor_readings_refused_total": 5,
		"candor_store_batch_rows_sum": 5000, "candor_store_batch_rows_count": 10,
		"go_goroutines": 12,
	}
	if len(m) != len(want) {
		t.Errorf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

// TestCommitWaitQuantile: the hub's commit-wait histogram is kept by
// bucket and read as the difference between two scrapes, so batches of an
// earlier phase do not count.
func TestCommitWaitQuantile(t *testing.T) {
	scrape := func(counts ...int) map[string]float64 {
		var b strings.Builder
		for i, le := range []string{"0.01", "0.1", "1", "+Inf"} {
			fmt.Fprintf(&b, "%s_bucket{le=%q} %d\n", commitWaitMetric, le, counts[i])
		}
		fmt.Fprintf(&b, "%s_count %d\n", commitWaitMetric, counts[3])
		m, err := parseMetrics(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Before the phase: 50 batches, all under 10 ms. During it: 100
	// more, 90 under 10 ms, 9 under 100 ms, 1 under 1 s.
	m0 := scrape(50, 50, 50, 50)
	m1 := scrape(140, 149, 150, 150)
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 0.01}, {0.9, 0.01}, {0.95, 0.1}, {0.99, 0.1}, {1, 1}} {
		if got, ok := commitWaitQuantile(m0, m1, c.q); !ok || got != c.want {
			t.Errorf("quantile %v = %v, %v; want %v", c.q, got, ok, c.want)
		}
	}
	if _, ok := commitWaitQuantile(m1, m1, 0.99); ok {
		t.Error("a quantile was reported for a phase without batches")
	}
	if _, ok := commitWaitQuantile(map[string]float64{}, map[string]float64{"candor_readings_accepted_total": 1}, 0.99); ok {
		t.Error("a quantile was reported for a hub without the metric")
	}
}

func TestProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS {
		t.Errorf("RSS %d, HWM %d", s.RSS, s.HWM)
	}
	if _, err := readProc(0); err == nil {
		t.Error("readProc(0) succeeded")
	}
}

func TestPacedOnlyRunsOnlyThePacedPhase(t *testing.T) {
	ps := phases(Options{PacedOnly: true, Rate: 500})
	if len(ps) != 1 || ps[0].rate != 500 || ps[0].qos != 1 {
		t.Errorf("phases with PacedOnly: %v, want only QoS 1 paced at 500 msg/s", ps)
	}
	if ps := phases(Options{Rate: 500}); len(ps) != 3 {
		t.Errorf("phases without PacedOnly: %v, want the two full-speed phases and the paced one", ps)
	}
}

func TestMosquittoConfigIsLoopbackOnly(t *testing.T) {
	conf := mosquittoConfig(18830)
	for _, want := range []string{"listener 18830 127.0.0.1\n", "allow_anonymous true\n", "persistence false\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if !isLoopback("127.0.0.1:1883") || !isLoopback("localhost:1") || isLoopback("192.0.2.1:1883") {
		t.Error("isLoopback is wrong")
	}
}

// checkSocketLatency: on Linux every PUBACK of a real broker's QoS 1
// phases got a kernel receive time, and the latency at the client socket
// is at most the client-observed one, quantile by quantile: each PUBACK's
// socket interval lies inside its client-observed one (written after its
// send time, received before the reader had it), and histogram quantiles
// keep that order. Elsewhere the figure must be absent with a reason.
func checkSocketLatency(t *testing.T, ps ...*PhaseResult) {
	t.Helper()
	for _, p := range ps {
		if runtime.GOOS != "linux" {
			if p.SockAckNA == "" || p.SockAckCount != 0 {
				t.Errorf("QoS 1 (paced %v) off Linux: socket latency over %d PUBACKs, reason %q", p.PacedRate, p.SockAckCount, p.SockAckNA)
			}
			continue
		}
		if p.SockAckNA != "" || p.SockAckCount != p.Acked {
			t.Errorf("QoS 1 (paced %v): socket latency over %d of %d PUBACKs (%s)", p.PacedRate, p.SockAckCount, p.Acked, p.SockAckNA)
			continue
		}
		if p.SockAckP50Ms > p.AckP50Ms || p.SockAckP99Ms > p.AckP99Ms || p.SockAckMaxMs > p.AckMaxMs {
			t.Errorf("QoS 1 (paced %v): at the socket p50/p99/max %v/%v/%v ms, above the client-observed %v/%v/%v",
				p.PacedRate, p.SockAckP50Ms, p.SockAckP99Ms, p.SockAckMaxMs, p.AckP50Ms, p.AckP99Ms, p.AckMaxMs)
		}
		t.Logf("QoS 1 (paced %v): PUBACK p50/p99/max ms client-observed %.3f/%.3f/%.3f, at the socket %.3f/%.3f/%.3f",
			p.PacedRate, p.AckP50Ms, p.AckP99Ms, p.AckMaxMs, p.SockAckP50Ms, p.SockAckP99Ms, p.SockAckMaxMs)
	}
}
