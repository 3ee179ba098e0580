package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// History prefill (issue #19: ingest and GET readings at 10M stored
// readings within 10% of 100k). With Options.Prefill the hub's store holds
// that many readings of the bench's own devices before any load phase, so
// the phases append into the middle of a deep b-tree as a long-running hub
// does, not onto an empty one. The readings are written straight into the
// stopped hub's store through the store package, sealed with the hub's own
// vault key as ingest seals them (so the hub can read them back through
// its API), on a stream no phase uses (prefillStream), one reading a
// second across all devices, ending just before the fill: with 100
// devices each reports every 100 s, and 10M readings span 116 days.
//
// Either engine is filled through its own AppendReadings, as ingest
// writes: SQLite in big transactions of multi-row inserts, PostgreSQL by
// COPY (with its monthly partitions made as needed). A PostgreSQL fill is
// followed by VACUUM (ANALYZE), which autovacuum would have run on a hub
// that took this history over months: without it the planner has no
// statistics for the new rows and index-only scans find no page
// all-visible, which a long-running hub does not see.

// prefillStream is the stream the prefilled history is stored on.
const prefillStream = "bench_history"

// prefillRetention is the manifest retention with n prefilled readings:
// their span (one reading a second) and two days more. A shorter one
// would have the hub's retention sweep delete most of the history while
// the phases run: that measures a sweep, not ingest on a deep history.
func prefillRetention(n int) string {
	return fmt.Sprintf("P%dD", n/86400+2)
}

// prefillBatch is readings per commit of the fill: big commits, each
// device's readings in a row (seq order within a device follows time),
// so each commit appends to every device's last leaf pages once.
const prefillBatch = 50_000

// maxPrefill bounds the fill (about 250 bytes of file per reading).
const maxPrefill = 50_000_000

// prefillPayload is what each prefilled reading holds (sealed at rest).
var prefillPayload = []byte(`{"celsius":21.5,"humidity":40,"battery":87,"note":"prefilled history reading, sealed at rest"}`)

// PrefillResult is the history written into the hub's store before the
// load phases, and GET readings latency through the hub's API over it.
type PrefillResult struct {
	Readings    int64   `json:"readings"`
	FillSeconds float64 `json:"fill_seconds"`
	FillPerSec  float64 `json:"fill_per_sec"`
	// VacuumSeconds is the VACUUM (ANALYZE) after a PostgreSQL fill (not
	// in FillSeconds).
	VacuumSeconds float64 `json:"vacuum_seconds,omitempty"`
	// MaxSeq is the highest seq the fill stored; the read-back after the
	// run starts above it.
	MaxSeq int64 `json:"max_seq"`
	// newest100 is, per device, the seq after which its newest 100
	// prefilled readings follow (for the after= request).
	newest100 []int64
	// Queries is GET /api/v1/devices/{id}/readings latency, per kind.
	Queries []QueryLatency `json:"queries,omitempty"`
}

// QueryLatency is one kind of GET readings request, repeated round the
// bench's devices.
type QueryLatency struct {
	Name     string  `json:"name"`
	What     string  `json:"what"`
	Requests int     `json:"requests"`
	Readings float64 `json:"readings_per_request"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MeanMs   float64 `json:"mean_ms"`
	// CPUMicrosPerRequest is the hub process's CPU time over the kind's
	// requests, per request: it moves far less with the machine's other
	// load than the latencies do.
	CPUMicrosPerRequest float64 `json:"cpu_us_per_request"`
}

// prefill writes n readings of devs into the store of the stopped hub in
// dir (or in the PostgreSQL database at pgURL), sealed with the hub's
// vault key.
func prefill(ctx context.Context, o Options, dir, pgURL string, devs []device, n int) (*PrefillResult, error) {
	start := time.Now()
	db, v, err := openHubStore(ctx, dir, pgURL)
	if err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	defer db.Close()
	defer v.Close()
	owners := make([]string, len(devs))
	for i, d := range devs {
		sd, err := db.Device(ctx, d.ID)
		if err != nil {
			return nil, fmt.Errorf("prefill: device %s: %w", d.ID, err)
		}
		owners[i] = sd.KeyOwnerID()
		// As the hub does for a device's first reading (hub/owners.go):
		// the owner is enrolled in hub-assisted mode when first needed.
		if _, err := v.Status(owners[i]); errors.Is(err, vault.ErrUnknownOwner) {
			if err := v.Refresh(ctx, owners[i]); err != nil {
				return nil, fmt.Errorf("prefill: look up %s in the vault: %w", owners[i], err)
			}
			if _, err := v.Status(owners[i]); errors.Is(err, vault.ErrUnknownOwner) {
				if _, err := v.Enroll(ctx, owners[i], vault.Settings{Mode: vault.HubAssisted}); err != nil {
					return nil, fmt.Errorf("prefill: enroll %s in the vault: %w", owners[i], err)
				}
			}
		}
	}
	// Reading i (of all devices) is at end - (n-i) s, device i % len(devs).
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	first := end.Add(-time.Duration(n) * time.Second)
	nd := len(devs)
	perDevice := max(prefillBatch/nd, 1)
	r := &PrefillResult{}
	batch := make([]store.Reading, 0, perDevice*nd)
	batchDev := make([]int, 0, perDevice*nd) // batch[k] is devs[batchDev[k]]
	aad := make([]byte, 0, 128)
	lap := time.Now()
	// Each device's last 101 seqs, for newest100.
	ring, ringAt := make([][]int64, nd), make([]int, nd)
	for d := range ring {
		ring[d] = make([]int64, 101)
	}
	// Rounds of perDevice readings per device: round k covers readings
	// k*perDevice*nd … of the sequence.
	for base := 0; base < n; base += perDevice * nd {
		batch, batchDev = batch[:0], batchDev[:0]
		for d := range nd {
			for j := range perDevice {
				i := base + j*nd + d
				if i >= n {
					break
				}
				at := first.Add(time.Duration(i) * time.Second)
				aad = vault.AppendReadingAAD(aad[:0], devs[d].ID, prefillStream, at)
				sealed, err := v.Seal(owners[d], prefillPayload, aad)
				if err != nil {
					return nil, fmt.Errorf("prefill: seal a reading of %s: %w", devs[d].ID, err)
				}
				batch = append(batch, store.Reading{DeviceID: devs[d].ID, Stream: prefillStream, Time: at, Payload: sealed})
				batchDev = append(batchDev, d)
			}
		}
		if err := db.AppendReadings(ctx, batch); err != nil {
			return nil, fmt.Errorf("prefill: append: %w", err)
		}
		for k, rd := range batch {
			d := batchDev[k]
			ring[d][ringAt[d]%len(ring[d])] = rd.Seq
			ringAt[d]++
		}
		r.Readings += int64(len(batch))
		r.MaxSeq = max(r.MaxSeq, batch[len(batch)-1].Seq)
		if time.Since(lap) > 30*time.Second {
			o.progress("Candor: prefill, %d of %d readings stored (%.0f/s)", r.Readings, n, float64(r.Readings)/time.Since(start).Seconds())
			lap = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	r.newest100 = make([]int64, nd)
	for d := range nd {
		// The oldest of the ring is the 101st newest (or 0: fewer).
		if ringAt[d] >= len(ring[d]) {
			r.newest100[d] = ring[d][ringAt[d]%len(ring[d])]
		}
	}
	if err := db.Close(); err != nil { // SQLite: checkpoints the WAL into the file
		return nil, fmt.Errorf("prefill: close the store: %w", err)
	}
	r.FillSeconds = time.Since(start).Seconds()
	r.FillPerSec = float64(r.Readings) / r.FillSeconds
	if pgURL != "" {
		t := time.Now()
		if err := vacuumAnalyze(ctx, pgURL); err != nil {
			return nil, fmt.Errorf("prefill: %w", err)
		}
		r.VacuumSeconds = time.Since(t).Seconds()
	}
	return r, nil
}

// vacuumAnalyze runs VACUUM (ANALYZE) on the database at pgURL.
func vacuumAnalyze(ctx context.Context, pgURL string) error {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("vacuum: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// prefillRequests is how many of each GET readings request are timed:
// about a second of the hub's CPU per kind, so the CPU figure is read
// to about 1% (/proc counts it in 10 ms ticks); a --quick run (CI, and
// tests under -race) times fewer.
func prefillRequests(quick bool) int {
	if quick {
		return 100
	}
	return 500
}

// historyQueries times GET /api/v1/devices/{id}/readings over the
// prefilled history through the hub's control socket (the API with the
// operator's rights; each page is opened with the vault as for any
// client), going round the devices. The windows are placed in the
// prefilled history: its middle, a day before its end, and the first and
// last pages by cursor.
func historyQueries(ctx context.Context, h *hubProc, devs []device, pr *PrefillResult, requests int) error {
	n := int(pr.Readings)
	nd := len(devs)
	type kind struct {
		name, what string
		q          func(device int) url.Values
	}
	// The fill's time of reading i is first + i s; rebuild it from the
	// first reading of device 0 read back once.
	first, err := prefillFirst(ctx, h, devs[0].ID)
	if err != nil {
		return err
	}
	at := func(i int) string { return first.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano) }
	hour := 3600
	kinds := []kind{
		{"oldest", "the first page of 100 (limit only)", func(int) url.Values {
			return url.Values{"limit": {"100"}}
		}},
		{"after", "the newest 100 of the history by after= cursor", func(d int) url.Values {
			return url.Values{"limit": {"100"}, "after": {strconv.FormatInt(pr.newest100[d], 10)}}
		}},
		{"dayago", "one hour a day before the history's end (since+until)", func(int) url.Values {
			i := max(n-24*hour, 0)
			return url.Values{"since": {at(i)}, "until": {at(i + hour)}, "limit": {"1000"}}
		}},
		{"middle", "one hour in the middle of the history (since+until)", func(int) url.Values {
			return url.Values{"since": {at(n / 2)}, "until": {at(n/2 + hour)}, "limit": {"1000"}}
		}},
	}
	for _, k := range kinds {
		var lat Histogram
		got := 0
		var sum time.Duration
		cpu0, err := readProc(h.pid())
		if err != nil {
			return err
		}
		for i := range requests {
			d := i % nd
			var out struct {
				Readings []json0 `json:"readings"`
			}
			path := "/api/v1/devices/" + url.PathEscape(devs[d].ID) + "/readings?" + k.q(d).Encode()
			t := time.Now()
			if err := h.do(ctx, http.MethodGet, path, nil, &out); err != nil {
				return fmt.Errorf("GET readings (%s): %w", k.name, err)
			}
			el := time.Since(t)
			sum += el
			lat.Record(int64(el))
			got += len(out.Readings)
		}
		cpu1, err := readProc(h.pid())
		if err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("GET readings (%s): no readings in %d requests", k.name, requests)
		}
		per := float64(requests)
		pr.Queries = append(pr.Queries, QueryLatency{Name: k.name, What: k.what, Requests: requests,
			Readings: float64(got) / per, P50Ms: Millis(lat.Quantile(0.5)), P99Ms: Millis(lat.Quantile(0.99)),
			MeanMs: sum.Seconds() * 1000 / per, CPUMicrosPerRequest: float64((cpu1.CPU - cpu0.CPU).Microseconds()) / per})
	}
	return nil
}

// json0 is a reading in a GET readings answer, of which only the count
// is used.
type json0 struct {
	Seq int64 `json:"seq"`
}

// prefillFirst returns the time of the device's first prefilled reading.
func prefillFirst(ctx context.Context, h *hubProc, id string) (time.Time, error) {
	var out struct {
		Readings []struct {
			Time   time.Time `json:"time"`
			Stream string    `json:"stream"`
		} `json:"readings"`
	}
	if err := h.do(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id)+"/readings?limit=1", nil, &out); err != nil {
		return time.Time{}, fmt.Errorf("GET readings: %w", err)
	}
	if len(out.Readings) == 0 || out.Readings[0].Stream != prefillStream {
		return time.Time{}, fmt.Errorf("GET readings of %s: the prefilled history is not there", id)
	}
	return out.Readings[0].Time, nil
}
