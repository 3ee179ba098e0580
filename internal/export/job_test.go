package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/export/exporttest"
	"github.com/candor-iot/candor/internal/store"
)

// Markers that appear in the small source's data and so in the archive;
// none may be readable on disk or in the log.
const (
	jobDeviceName = "Zq7-marker-meter"
	jobWattsBase  = 987650
)

// smallSource is one smart meter with n power readings.
func smallSource(t *testing.T, n int) *fakeSource {
	t.Helper()
	f := &fakeSource{
		manifests: map[string][]byte{"smart-meter/1": mustJSON(t, template(t, "smart-meter"))},
		readings:  map[string][]store.Reading{},
		devices:   []Device{{ID: "dev_meter0000001", Name: jobDeviceName, Type: "smart-meter", ManifestVersions: []int{1}}},
	}
	t0 := time.Now().Add(-time.Hour)
	for i := range n {
		f.readings["dev_meter0000001"] = append(f.readings["dev_meter0000001"], store.Reading{
			Seq: int64(i + 1), DeviceID: "dev_meter0000001", Stream: "power", ManifestVersion: 1,
			Time: t0.Add(time.Duration(i) * time.Millisecond), Payload: fmt.Appendf(nil, `{"watts":%d}`, jobWattsBase+i),
		})
	}
	return f
}

// gatedSource blocks when the exporter asks for the page of the power
// stream after Seq at (PageSize unless set), halfway through the one pass
// over it, until release is closed. With at 1000, progress then shows
// 1000 readings (its report every 1000) of the total.
type gatedSource struct {
	*fakeSource
	at      int64
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func newGated(src *fakeSource) *gatedSource {
	return &gatedSource{fakeSource: src, at: PageSize, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedSource) Readings(ctx context.Context, dev, stream string, after int64, limit int) ([]store.Reading, error) {
	if stream == "power" && after == g.at {
		block := false
		g.once.Do(func() { block = true })
		if block {
			close(g.reached)
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return g.fakeSource.Readings(ctx, dev, stream, after, limit)
}

// lockedBuffer collects log lines written by the jobs' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestJobs(t *testing.T, opts JobsOptions) (*Jobs, string, *lockedBuffer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "exports")
	logs := &lockedBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	j, err := NewJobs(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return j, dir, logs
}

func sourceOf(src Source) func(context.Context) (Source, error) {
	return func(context.Context) (Source, error) { return src, nil }
}

func waitJob(t *testing.T, j *Jobs, owner, id string) JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := j.Wait(ctx, owner, id)
	if err != nil {
		t.Fatalf("wait for job: %v", err)
	}
	return st
}

func jobFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestJobRoundTrip(t *testing.T) {
	const n = 2500
	j, dir, logs := newTestJobs(t, JobsOptions{})
	src := newGated(smallSource(t, n))
	src.at = 1000
	person := Person{ID: "acc_alex", Username: "alex"}
	st, started, err := j.Start(context.Background(), "acc_alex", person, sourceOf(src))
	if err != nil || !started {
		t.Fatalf("start: %v %v", started, err)
	}
	if st.State != JobRunning || !strings.HasPrefix(st.ID, "exp_") || st.StartedAt.IsZero() || !st.FinishedAt.IsZero() {
		t.Fatalf("new job: %+v", st)
	}

	// Halfway: running, with progress on the way to the total.
	select {
	case <-src.reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the export never reached the gate")
	}
	mid, err := j.Status("acc_alex", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if mid.State != JobRunning || mid.ReadingsTotal != n || mid.ReadingsDone != 1000 {
		t.Errorf("halfway: %+v, want running, 1000 of %d", mid, n)
	}
	if _, _, err := j.Open(context.Background(), "acc_alex", st.ID); !errors.Is(err, ErrJobNotReady) {
		t.Errorf("open while running: %v, want ErrJobNotReady", err)
	}
	close(src.release)

	st = waitJob(t, j, "acc_alex", st.ID)
	if st.State != JobDone || st.ReadingsDone != n || st.ReadingsTotal != n || st.Error != "" {
		t.Fatalf("done: %+v", st)
	}
	if st.FinishedAt.IsZero() || st.ExpiresAt.Sub(st.FinishedAt) != DefaultJobTTL || st.Bytes <= 0 {
		t.Errorf("done: times or size wrong: %+v", st)
	}
	if !strings.HasPrefix(st.Filename(), "candor-export-") || !strings.HasSuffix(st.Filename(), ".zip") {
		t.Errorf("filename %q", st.Filename())
	}

	// At rest: one file, private, age-encrypted, no plaintext in it.
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode: %v %v", fi.Mode(), err)
	}
	files := jobFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files in the directory: %q", files)
	}
	path := filepath.Join(dir, files[0])
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v", fi.Mode(), err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")) {
		t.Errorf("the file is not an age file: %q", raw[:min(len(raw), 40)])
	}
	for _, plain := range []string{"PK\x03\x04", "PK\x01\x02", jobDeviceName, fmt.Sprint(jobWattsBase), "README.txt", "index.json", "power.csv"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the file on disk contains %q in plain text", plain)
		}
	}

	// Download: a valid archive whose files match index.json.
	rc, dst, err := j.Open(context.Background(), "acc_alex", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	zb, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if dst.ID != st.ID || int64(len(zb)) != st.Bytes {
		t.Errorf("downloaded %d bytes, status says %d", len(zb), st.Bytes)
	}
	checkArchive(t, zb, n)
	// It stays downloadable until it expires.
	rc, _, err = j.Open(context.Background(), "acc_alex", st.ID)
	if err != nil {
		t.Fatalf("second download: %v", err)
	}
	again, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(again, zb) {
		t.Error("the second download differs")
	}
	if l := logs.String(); strings.Contains(l, jobDeviceName) || strings.Contains(l, fmt.Sprint(jobWattsBase)) {
		t.Errorf("the log shows exported data:\n%s", l)
	}
	if got := j.List("acc_alex"); len(got) != 1 || got[0].ID != st.ID {
		t.Errorf("list: %+v", got)
	}
}

// checkArchive opens a downloaded archive and checks index.json.
func checkArchive(t *testing.T, zb []byte, readings int) {
	t.Helper()
	a := exporttest.Open(t, zb)
	sawCSV := false
	for _, f := range a.Index {
		if strings.HasSuffix(f.Name, "power.csv") {
			sawCSV = true
			if f.Readings == nil || *f.Readings != int64(readings) {
				t.Errorf("%s: %v readings, want %d", f.Name, f.Readings, readings)
			}
		}
	}
	if !sawCSV {
		t.Errorf("index.json lists no power.csv: %+v", a.Index)
	}
}

func TestJobOtherAccountsGetNotFound(t *testing.T) {
	j, _, _ := newTestJobs(t, JobsOptions{})
	st, _, err := j.Start(context.Background(), "acc_alex", Person{ID: "acc_alex"}, sourceOf(smallSource(t, 10)))
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, j, "acc_alex", st.ID)
	for _, other := range []string{"acc_sam", ""} {
		if _, err := j.Status(other, st.ID); !errors.Is(err, ErrJobNotFound) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%q: status: %v", other, err)
		}
		if _, _, err := j.Open(context.Background(), other, st.ID); !errors.Is(err, ErrJobNotFound) {
			t.Errorf("%q: open: %v", other, err)
		}
		if err := j.Cancel(other, st.ID); !errors.Is(err, ErrJobNotFound) {
			t.Errorf("%q: cancel: %v", other, err)
		}
		if _, err := j.Wait(context.Background(), other, st.ID); !errors.Is(err, ErrJobNotFound) {
			t.Errorf("%q: wait: %v", other, err)
		}
		if l := j.List(other); len(l) != 0 {
			t.Errorf("%q: list: %+v", other, l)
		}
	}
	if _, err := j.Status("acc_alex", "exp_nope"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	// Still Alex's, after all that.
	if st, err := j.Status("acc_alex", st.ID); err != nil || st.State != JobDone {
		t.Errorf("owner: %+v %v", st, err)
	}
}

func TestJobOneRunningPerAccountAndCancel(t *testing.T) {
	j, dir, _ := newTestJobs(t, JobsOptions{})
	src := newGated(smallSource(t, 600))
	calls := 0
	open := func(context.Context) (Source, error) { calls++; return src, nil }
	first, started, err := j.Start(context.Background(), "acc_alex", Person{}, open)
	if err != nil || !started {
		t.Fatal(started, err)
	}
	<-src.reached
	again, started, err := j.Start(context.Background(), "acc_alex", Person{}, open)
	if err != nil || started || again.ID != first.ID || again.State != JobRunning {
		t.Errorf("second start while running: %+v started=%v %v", again, started, err)
	}
	if calls != 1 {
		t.Errorf("the source was opened %d times, want once", calls)
	}
	// Another account is not held up.
	sams, started, err := j.Start(context.Background(), "acc_sam", Person{}, sourceOf(smallSource(t, 5)))
	if err != nil || !started || sams.ID == first.ID {
		t.Fatalf("another account's start: %+v %v %v", sams, started, err)
	}
	waitJob(t, j, "acc_sam", sams.ID)

	// Cancel the running job: it stops, and it and its file are gone.
	if err := j.Cancel("acc_alex", first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Status("acc_alex", first.ID); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("status after cancel: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(jobFiles(t, dir)) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if files := jobFiles(t, dir); len(files) != 1 || !strings.Contains(files[0], sams.ID) {
		t.Errorf("files after cancelling Alex's job: %q, want only Sam's", files)
	}
	// Cancel a done job: its file goes at once.
	if err := j.Cancel("acc_sam", sams.ID); err != nil {
		t.Fatal(err)
	}
	if files := jobFiles(t, dir); len(files) != 0 {
		t.Errorf("files after cancelling every job: %q", files)
	}
	// Alex can start again.
	if _, started, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(smallSource(t, 5))); err != nil || !started {
		t.Errorf("start after cancel: %v %v", started, err)
	}
}

func TestJobFailure(t *testing.T) {
	j, dir, logs := newTestJobs(t, JobsOptions{})
	src := smallSource(t, 1200)
	src.failPage = 4
	st, _, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(src))
	if err != nil {
		t.Fatal(err)
	}
	st = waitJob(t, j, "acc_alex", st.ID)
	if st.State != JobFailed || st.Error == "" || st.FinishedAt.IsZero() {
		t.Fatalf("failed job: %+v", st)
	}
	if strings.Contains(st.Error, "database is locked") || strings.Contains(st.Error, jobDeviceName) {
		t.Errorf("the error shown to the person carries internal detail: %q", st.Error)
	}
	if _, _, err := j.Open(context.Background(), "acc_alex", st.ID); !errors.Is(err, ErrJobFailed) {
		t.Errorf("open a failed job: %v", err)
	}
	if files := jobFiles(t, dir); len(files) != 0 {
		t.Errorf("a failed job left files: %q", files)
	}
	if l := logs.String(); !strings.Contains(l, "database is locked") || strings.Contains(l, fmt.Sprint(jobWattsBase)) {
		t.Errorf("the log should give the cause and no data:\n%s", l)
	}
	// A failed job does not block the next one.
	if _, started, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(smallSource(t, 5))); err != nil || !started {
		t.Errorf("start after a failure: %v %v", started, err)
	}
}

func TestJobRefusedBySource(t *testing.T) {
	j, dir, _ := newTestJobs(t, JobsOptions{})
	refused := errors.New("the transparency log is not writable")
	_, _, err := j.Start(context.Background(), "acc_alex", Person{}, func(context.Context) (Source, error) { return nil, refused })
	if !errors.Is(err, refused) {
		t.Fatalf("err = %v", err)
	}
	if l := j.List("acc_alex"); len(l) != 0 {
		t.Errorf("a refused job is listed: %+v", l)
	}
	if files := jobFiles(t, dir); len(files) != 0 {
		t.Errorf("a refused job left files: %q", files)
	}
	if _, _, err := j.Start(context.Background(), "", Person{}, sourceOf(smallSource(t, 1))); err == nil {
		t.Error("a job without an owner started")
	}
}

func TestJobLeftoversRemovedAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "exports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"export-exp_old1.zip.age", "export-exp_old2.zip.age", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("age-encryption.org/v1\n..."), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := &lockedBuffer{}
	j, err := NewJobs(dir, JobsOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if files := jobFiles(t, dir); len(files) != 1 || files[0] != "notes.txt" {
		t.Errorf("after start: %q, want only notes.txt", files)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "files=2") {
		t.Errorf("the log does not say leftovers were deleted:\n%s", logs.String())
	}
}

func TestJobExpires(t *testing.T) {
	j, dir, _ := newTestJobs(t, JobsOptions{TTL: 100 * time.Millisecond})
	st, _, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(smallSource(t, 5)))
	if err != nil {
		t.Fatal(err)
	}
	st = waitJob(t, j, "acc_alex", st.ID)
	if st.State != JobDone || st.ExpiresAt.Sub(st.FinishedAt) != 100*time.Millisecond {
		t.Fatalf("%+v", st)
	}
	// A download opened before expiry completes after it.
	rc, _, err := j.Open(context.Background(), "acc_alex", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := j.Status("acc_alex", st.ID); errors.Is(err, ErrJobNotFound) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := j.Status("acc_alex", st.ID); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("the job did not expire: %v", err)
	}
	if files := jobFiles(t, dir); len(files) != 0 {
		t.Errorf("an expired job left files: %q", files)
	}
	zb, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("a download opened before expiry: %v", err)
	}
	checkArchive(t, zb, 5)
}

func TestJobLimits(t *testing.T) {
	j, _, _ := newTestJobs(t, JobsOptions{MaxJobs: 3, MaxPerAccount: 2})
	// Per account: the third job drops that account's oldest finished one.
	var ids []string
	for range 3 {
		st, started, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(smallSource(t, 3)))
		if err != nil || !started {
			t.Fatal(started, err)
		}
		waitJob(t, j, "acc_alex", st.ID)
		ids = append(ids, st.ID)
	}
	got := j.List("acc_alex")
	if len(got) != 2 || got[0].ID != ids[2] || got[1].ID != ids[1] {
		t.Errorf("Alex's jobs after three: %+v, want the newest two", got)
	}
	// In all: two of Alex's and one of Sam's (running) fill the hub.
	src := newGated(smallSource(t, 600))
	if _, _, err := j.Start(context.Background(), "acc_sam", Person{}, sourceOf(src)); err != nil {
		t.Fatal(err)
	}
	<-src.reached
	if _, _, err := j.Start(context.Background(), "acc_kim", Person{}, sourceOf(smallSource(t, 3))); !errors.Is(err, ErrTooManyJobs) {
		t.Errorf("a job past the limit: %v, want ErrTooManyJobs", err)
	}
	close(src.release)
}

func TestJobsClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "exports")
	j, err := NewJobs(dir, JobsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := newGated(smallSource(t, 600))
	running, _, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(src))
	if err != nil {
		t.Fatal(err)
	}
	done, _, err := j.Start(context.Background(), "acc_sam", Person{}, sourceOf(smallSource(t, 5)))
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, j, "acc_sam", done.ID)
	<-src.reached
	if err := j.Close(); err != nil { // must not wait for release
		t.Fatal(err)
	}
	if files := jobFiles(t, dir); len(files) != 0 {
		t.Errorf("files after close: %q", files)
	}
	if _, err := j.Status("acc_alex", running.ID); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("status after close: %v", err)
	}
	if _, _, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(smallSource(t, 1))); !errors.Is(err, ErrJobsClosed) {
		t.Errorf("start after close: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// ctxKey marks the context that started a job.
type ctxKey struct{}

// valueSource remembers the context value the job's Source calls carry.
type valueSource struct {
	*gatedSource
	mu   sync.Mutex
	seen any
}

func (v *valueSource) Devices(ctx context.Context) ([]Device, error) {
	v.mu.Lock()
	v.seen = ctx.Value(ctxKey{})
	v.mu.Unlock()
	return v.gatedSource.Devices(ctx)
}

// The job runs on after the context that started it ends (the request
// that asked for it), with that context's values (the actor the
// transparency log records).
func TestJobOutlivesItsRequest(t *testing.T) {
	j, _, _ := newTestJobs(t, JobsOptions{})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "alex"))
	src := &valueSource{gatedSource: newGated(smallSource(t, 600))}
	st, _, err := j.Start(ctx, "acc_alex", Person{}, sourceOf(src))
	if err != nil {
		t.Fatal(err)
	}
	<-src.reached
	cancel()
	close(src.release)
	st = waitJob(t, j, "acc_alex", st.ID)
	if st.State != JobDone {
		t.Errorf("the job ended with its request: %+v", st)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.seen != "alex" {
		t.Errorf("the job's context carries %v, want the request's values", src.seen)
	}
}

func TestJobDownloadDetectsTampering(t *testing.T) {
	j, dir, _ := newTestJobs(t, JobsOptions{})
	st, _, err := j.Start(context.Background(), "acc_alex", Person{}, sourceOf(smallSource(t, 50)))
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, j, "acc_alex", st.ID)
	path := filepath.Join(dir, jobFiles(t, dir)[0])
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-20] ^= 1
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err := j.Open(context.Background(), "acc_alex", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("a changed file decrypted without error")
	}
	// A download stops when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := j.Open(ctx, "acc_alex", st.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("open with a cancelled context: %v", err)
	}
}
