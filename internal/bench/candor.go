package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/candor-iot/candor/internal/hub"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/vault"
)

// device is a bench device's credential.
type device struct {
	ID     string
	Secret string
}

// hubProc is a Candor hub run as a subprocess, so its CPU time and memory
// are its own and can be read from /proc.
type hubProc struct {
	cmd      *exec.Cmd
	dir      string
	mqttAddr string
	hc       *http.Client // over the control socket
	stderr   *tailBuffer
	exited   chan struct{}
	waitErr  error
	// pgDB, for a hub on PostgreSQL, is its database's name, whose
	// server backends the phases measure.
	pgDB string
}

// startHub runs `<argv> --data dir --mqtt-addr 127.0.0.1:0 …` and waits
// for its banner, which it prints once every listener is up.
func startHub(ctx context.Context, argv, env []string, dir string, extra []string) (*hubProc, error) {
	args := append([]string{}, argv[1:]...)
	args = append(args, "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn",
		// Every simulated device connects from this one loopback address,
		// which the per-address limit before login exists to stop; a
		// fleet on a LAN comes from many addresses.
		"--mqtt-pending-per-address", "100000")
	args = append(args, extra...)
	cmd := exec.Command(argv[0], args...)
	cmd.Env = append(os.Environ(), env...)
	h := &hubProc{cmd: cmd, dir: dir, stderr: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	cmd.Stderr = h.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start candor hub: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start candor hub %s: %w", argv[0], err)
	}
	go func() {
		h.waitErr = cmd.Wait()
		close(h.exited)
	}()

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var addr string
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if a, ok := strings.CutPrefix(line, "MQTT:"); ok {
				addr = strings.TrimSpace(a)
			}
			if strings.HasPrefix(line, "Data:") {
				ready <- addr
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case h.mqttAddr = <-ready:
	case <-h.exited:
		return nil, fmt.Errorf("candor hub exited before it was ready (%v): %s", h.waitErr, h.stderr.String())
	case <-time.After(60 * time.Second):
		h.kill()
		return nil, fmt.Errorf("candor hub did not print its banner within 60s: %s", h.stderr.String())
	case <-ctx.Done():
		h.kill()
		return nil, ctx.Err()
	}
	if h.mqttAddr == "" {
		h.kill()
		return nil, errors.New("candor hub banner has no MQTT address")
	}
	sock := filepath.Join(dir, hub.SocketName)
	h.hc = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	return h, nil
}

// pid is the hub's process id.
func (h *hubProc) pid() int { return h.cmd.Process.Pid }

// kill ends the hub at once (only used when it failed to start or stop).
func (h *hubProc) kill() {
	_ = h.cmd.Process.Kill()
	<-h.exited
}

// stop asks the hub to shut down (SIGTERM: it commits what it accepted
// and closes the store) and waits for it.
func (h *hubProc) stop(timeout time.Duration) error {
	select {
	case <-h.exited:
		return fmt.Errorf("candor hub had already exited (%v): %s", h.waitErr, h.stderr.String())
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
		if h.waitErr != nil {
			return fmt.Errorf("candor hub shut down with %v: %s", h.waitErr, h.stderr.String())
		}
		return nil
	case <-time.After(timeout):
		h.kill()
		return fmt.Errorf("candor hub did not shut down within %s and was killed", timeout)
	}
}

// do sends a request to the hub's control socket and decodes the JSON
// answer into out.
func (h *hubProc) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://candor"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on the control socket: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: hub answered %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// createWorkers is how many devices the bench adds at once. Each addition
// answers after three fsyncs in a row (the store's commit, the
// transparency log's entries and its signed checkpoint), so with a few at
// once the rate is bound by the disk's latency; the hub commits concurrent
// additions together, as a provisioning tool adding a batch would have it.
const createWorkers = 16

// addDevices creates n devices with generated credentials through the
// control socket, as `candor device add` does.
func (h *hubProc) addDevices(ctx context.Context, n int) ([]device, error) {
	return h.addDevicesNamed(ctx, n, "bench", createWorkers)
}

// addDevicesNamed creates n devices named <prefix>-00000, … , workers at a
// time.
func (h *hubProc) addDevicesNamed(ctx context.Context, n int, prefix string, workers int) ([]device, error) {
	if n == 0 {
		return nil, nil
	}
	devs := make([]device, n)
	add := func(i int) error {
		var out struct {
			Device struct {
				ID string `json:"id"`
			} `json:"device"`
			Secret string `json:"secret"`
		}
		in := map[string]string{"name": fmt.Sprintf("%s-%05d", prefix, i), "type": benchDeviceType}
		if err := h.do(ctx, http.MethodPost, "/api/v1/devices", in, &out); err != nil {
			return fmt.Errorf("create bench device %d: %w", i, err)
		}
		if out.Device.ID == "" || out.Secret == "" {
			return fmt.Errorf("create bench device %d: answer has no id or secret", i)
		}
		devs[i] = device{ID: out.Device.ID, Secret: out.Secret}
		return nil
	}
	// The first device creates the hub's household; the hub does not
	// serialise that, so concurrent first adds would each create one.
	if err := add(0); err != nil {
		return nil, err
	}
	err := parallel(ctx, n-1, workers, func(i int) error { return add(i + 1) })
	return devs, err
}

// metrics scrapes the hub's Prometheus metrics over the control socket
// (see parseMetrics for which are kept).
func (h *hubProc) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://candor/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape hub metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape hub metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format, keeping samples of
// candor_ metrics and the Go runtime's memory and goroutine gauges.
// Labelled series are summed under their bare name; histogram buckets are
// dropped except commitWaitMetric's, kept under their whole series name
// (with the le label) for commitWaitQuantile.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "candor_") && !strings.HasPrefix(line, "go_memstats_") && !strings.HasPrefix(line, "go_goroutines ") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			if strings.Contains(name[i:], `le="`) {
				if name[:i] != commitWaitMetric+"_bucket" {
					continue // histogram buckets, but for the one read as a distribution
				}
			} else {
				name = name[:i]
			}
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		m[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read hub metrics: %w", err)
	}
	return m, nil
}

// storeCheck is what the hub's store holds for one phase's stream.
type storeCheck struct {
	PerDevice []int64   // rows stored per bench device
	Accept    Histogram // send → hub accepted (row timestamp), ns
	// DeviceAccept is Accept per bench device, to see whether some
	// connections are served much later than others.
	DeviceAccept []Histogram
	BadRows      int // rows whose payload carried no send time
}

// openHubStore opens the store of the stopped hub in dir (its SQLite
// file, or the PostgreSQL database at pgURL when that is set) with its
// vault, under the hub's own key, as the hub opens them. The caller closes
// both (the vault first).
func openHubStore(ctx context.Context, dir, pgURL string) (store.Store, *vault.Vault, error) {
	var db store.Store
	var err error
	if pgURL != "" {
		db, err = postgres.Open(ctx, pgURL)
	} else {
		db, err = sqlite.Open(ctx, filepath.Join(dir, hub.DBName))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open the hub's store: %w", err)
	}
	hubKey, err := vault.LoadOrCreateHubIdentity(filepath.Join(dir, "vault.key"))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("the hub's vault key: %w", err)
	}
	v, err := vault.New(ctx, db, vault.Options{Hub: hubKey})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open the hub's vault: %w", err)
	}
	return db, v, nil
}

// readBackLimit is the page size of readStore: the largest both engines
// answer.
const readBackLimit = min(sqlite.MaxReadingLimit, postgres.MaxReadingLimit)

// readStore opens the stopped hub's store (see openHubStore) and counts,
// per device, the readings on each of streams, reading every row back (so
// "stored" means readable) and measuring each reading's send → accept
// latency from its row timestamp.
//
// Readings up to seq above (a prefilled history) are not read.
func readStore(ctx context.Context, dir, pgURL string, devs []device, streams []string, above int64) (map[string]*storeCheck, error) {
	// Readings are sealed at rest: open them with the hub's own vault key,
	// so "stored" means readable by the hub, not merely present.
	db, v, err := openHubStore(ctx, dir, pgURL)
	if err != nil {
		return nil, fmt.Errorf("after the run: %w", err)
	}
	defer db.Close()
	defer v.Close()
	households := map[string]string{}
	for _, d := range devs {
		sd, err := db.Device(ctx, d.ID)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.ID, err)
		}
		households[d.ID] = sd.KeyOwnerID()
	}
	out := map[string]*storeCheck{}
	for _, st := range streams {
		chk := &storeCheck{PerDevice: make([]int64, len(devs)), DeviceAccept: make([]Histogram, len(devs))}
		out[st] = chk
		for i, d := range devs {
			after := above
			for {
				rows, err := db.Readings(ctx, store.ReadingQuery{DeviceID: d.ID, Stream: st, AfterSeq: after, Limit: readBackLimit})
				if err != nil {
					return nil, fmt.Errorf("read back stream %s: %w", st, err)
				}
				if err := v.OpenReadings(households[d.ID], d.ID, rows); err != nil {
					return nil, fmt.Errorf("decrypt stream %s of %s: %w", st, d.ID, err)
				}
				for _, r := range rows {
					chk.PerDevice[i]++
					if t, ok := SentNanos(r.Payload); ok {
						chk.Accept.Record(r.Time.UnixNano() - t)
						chk.DeviceAccept[i].Record(r.Time.UnixNano() - t)
					} else {
						chk.BadRows++
					}
				}
				if len(rows) < readBackLimit {
					break
				}
				after = rows[len(rows)-1].Seq
			}
		}
	}
	return out, nil
}

// supportsFlag reports whether `<argv> --help` mentions flag, so the bench
// passes a hub flag through only to hubs that have it.
func supportsFlag(argv, env []string, flag string) bool {
	args := append(append([]string{}, argv[1:]...), "--help")
	cmd := exec.Command(argv[0], args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return bytes.Contains(out, []byte("-"+flag+" "))
}

// tailBuffer keeps the last max bytes written to it (a subprocess's
// stderr, for error messages).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "(no output on stderr)"
	}
	return strings.Join(strings.Fields(s), " ")
}

// commitWaitMetric is the hub's histogram of how long each committed
// batch's oldest reading waited from acceptance to the end of its commit.
const commitWaitMetric = "candor_store_commit_wait_seconds"

// commitWaitQuantile returns the upper bound, in seconds, of the bucket of
// commitWaitMetric holding quantile q of the batches committed between the
// scrapes m0 and m1; ok is false when none were (or the hub has no such
// metric). +Inf is returned as the largest finite bound.
func commitWaitQuantile(m0, m1 map[string]float64, q float64) (float64, bool) {
	prefix := commitWaitMetric + `_bucket{le="`
	type bucket struct{ le, n float64 }
	var bs []bucket
	var top float64
	for k, v := range m1 {
		rest, found := strings.CutPrefix(k, prefix)
		if !found {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(rest, `"}`), 64)
		if err != nil {
			continue
		}
		if !math.IsInf(le, 1) {
			top = max(top, le)
		}
		bs = append(bs, bucket{le, v - m0[k]})
	}
	if len(bs) == 0 {
		return 0, false
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	total := bs[len(bs)-1].n // the +Inf bucket counts every batch
	if total <= 0 {
		return 0, false
	}
	for _, b := range bs {
		if b.n >= q*total {
			if math.IsInf(b.le, 1) {
				return top, true
			}
			return b.le, true
		}
	}
	return top, true
}
