package export

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Export jobs
//
// Write streams an archive to whoever asked, which is fine for a small
// history but shows no progress, and a dropped connection throws away all
// the work. Jobs runs Write in the background instead, into a file the
// person downloads when it is ready, and reports how far it got.
//
// The file holds personal data, so it is never plaintext on disk: it is
// encrypted on the fly with age to an X25519 identity generated for that
// one job and held only in memory. A crash or a power cut leaves files no
// one can read (not even the hub), and the next start deletes them. Both
// encryption and decryption stream in 64 KiB chunks, so memory stays
// constant whatever the size of the archive.

// JobState is where an export job is.
type JobState string

const (
	// JobRunning: the archive is being written.
	JobRunning JobState = "running"
	// JobDone: the archive is complete and can be downloaded until the
	// job expires.
	JobDone JobState = "done"
	// JobFailed: the archive could not be completed; its partial file is
	// already deleted. The job stays, to tell the person, until it
	// expires.
	JobFailed JobState = "failed"
)

// Errors of the job manager. ErrJobNotFound wraps store.ErrNotFound, so
// callers that map that to "404 not found" need nothing more.
var (
	// ErrJobNotFound: no such job, or not the asking account's (another
	// account's job is not found, never "forbidden", so ids reveal
	// nothing), or it expired or was cancelled.
	ErrJobNotFound = fmt.Errorf("export job: %w", store.ErrNotFound)
	// ErrJobNotReady: the job is still running.
	ErrJobNotReady = errors.New("export job: the archive is not ready yet")
	// ErrJobFailed: the job failed; there is nothing to download.
	ErrJobFailed = errors.New("export job: the export failed")
	// ErrTooManyJobs: the hub already keeps as many jobs as it allows.
	ErrTooManyJobs = errors.New("export jobs: too many exports at once")
	// ErrJobsClosed: the manager is closed (the hub is shutting down).
	ErrJobsClosed = errors.New("export jobs: closed")
)

// Defaults of JobsOptions.
const (
	DefaultJobTTL         = time.Hour
	DefaultMaxJobs        = 32
	DefaultMaxJobsPerUser = 3
)

// Job files are named export-<id>.zip.age; only such files are deleted as
// leftovers, so a mistyped data directory cannot lose anything else.
const (
	jobFilePrefix = "export-"
	jobFileSuffix = ".zip.age"
)

// JobsOptions tunes a Jobs manager; zero values take the defaults.
type JobsOptions struct {
	// TTL is how long a finished job (done or failed) is kept: a done
	// job's archive can be downloaded, as often as wanted, until then.
	TTL time.Duration
	// MaxJobs bounds the jobs kept at once, running or finished, of all
	// accounts: each running job reads the whole history of a household,
	// and each done one takes disk space.
	MaxJobs int
	// MaxPerAccount bounds the jobs of one account. When an account
	// starts a new job at its limit, its oldest finished job is dropped:
	// the new archive supersedes it.
	MaxPerAccount int
	Logger        *slog.Logger
}

// JobStatus is a snapshot of one job.
type JobStatus struct {
	ID    string
	Owner string // the account the job belongs to
	State JobState
	// ReadingsDone of ReadingsTotal readings are in the archive so far.
	// ReadingsTotal is -1 while unknown (before the exporter counted).
	ReadingsDone  int64
	ReadingsTotal int64
	// Bytes is the size of the archive (the ZIP, as it will be
	// downloaded) written so far.
	Bytes      int64
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	ExpiresAt  time.Time // zero while running
	// Error says, in plain words, why a failed job failed. It never
	// carries data from the archive; the details are in the hub's log.
	Error string
}

// Filename is the name to offer for the downloaded archive.
func (s JobStatus) Filename() string {
	return "candor-export-" + s.StartedAt.UTC().Format("20060102-150405") + ".zip"
}

// Jobs runs data exports in the background, one file each, encrypted at
// rest with a key held only in memory. Each job belongs to one account:
// other accounts get ErrJobNotFound. It is safe for concurrent use.
type Jobs struct {
	dir  string
	opts JobsOptions
	log  *slog.Logger

	mu     sync.Mutex
	jobs   map[string]*job
	closed bool
	wg     sync.WaitGroup // running jobs
}

type job struct {
	id     string
	owner  string
	person Person
	path   string
	// key decrypts the file. It exists only here: when the process
	// ends, the file is unreadable.
	key   *age.X25519Identity
	done  chan struct{} // closed when the job's goroutine has ended
	bytes atomic.Int64  // written by the job's goroutine at every write

	// The rest is guarded by Jobs.mu.
	cancel        context.CancelFunc // nil until the goroutine starts
	state         JobState
	readingsDone  int64
	readingsTotal int64
	started       time.Time
	finished      time.Time
	expires       time.Time
	errText       string
	expiry        *time.Timer
	// gone: cancelled, expired or closed. The job is out of the map;
	// its file is removed by whoever sees it end last (see drop).
	gone bool
}

// NewJobs returns a job manager that keeps its files in dir, created
// with mode 0700 if needed. Files left there by an earlier run (which
// crashed or was killed before it could clean up) are deleted: their keys
// died with that run, so they could never be downloaded anyway.
func NewJobs(dir string, opts JobsOptions) (*Jobs, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultJobTTL
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = DefaultMaxJobs
	}
	if opts.MaxPerAccount <= 0 {
		opts.MaxPerAccount = DefaultMaxJobsPerUser
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("export jobs: create directory %s: %w", dir, err)
	}
	// The directory may predate this code or have been created by hand:
	// nobody else needs to list the exports.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("export jobs: restrict directory %s: %w", dir, err)
	}
	n, err := removeLeftovers(dir)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		log.Info("deleted unreadable export files left by an earlier run", "files", n, "dir", dir)
	}
	return &Jobs{dir: dir, opts: opts, log: log, jobs: map[string]*job{}}, nil
}

// removeLeftovers deletes the job files in dir and returns how many.
func removeLeftovers(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("export jobs: list %s: %w", dir, err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, jobFilePrefix) || !strings.HasSuffix(name, jobFileSuffix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("export jobs: delete leftover %s: %w", name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Start starts an export of person's data for the account owner, and
// returns its status with started true. If one of owner's jobs is already
// running, Start returns that one instead, with started false: one export
// at a time per account is enough, and a double click must not start two.
//
// newSource is called, with ctx, only when a new job is to start, and
// before it starts: the caller can record the export (and refuse it, by
// returning an error) exactly once per archive. The job itself runs with
// ctx's values but not its cancellation or deadline: it outlives the
// request that started it, until it is done, cancelled or the manager is
// closed.
func (j *Jobs) Start(ctx context.Context, owner string, person Person, newSource func(context.Context) (Source, error)) (st JobStatus, started bool, err error) {
	if owner == "" {
		return JobStatus{}, false, errors.New("export jobs: a job needs an owner account")
	}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		return JobStatus{}, false, fmt.Errorf("export jobs: generate the job's key: %w", err)
	}
	id, err := newJobID()
	if err != nil {
		return JobStatus{}, false, err
	}

	// Reserve the job first, so limits hold while newSource runs (it may
	// write to the transparency log, which takes a moment).
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return JobStatus{}, false, ErrJobsClosed
	}
	for _, other := range j.jobs {
		if other.owner == owner && other.state == JobRunning {
			st := j.statusLocked(other)
			j.mu.Unlock()
			return st, false, nil
		}
	}
	j.makeRoomLocked(owner)
	if len(j.jobs) >= j.opts.MaxJobs {
		j.mu.Unlock()
		return JobStatus{}, false, ErrTooManyJobs
	}
	jb := &job{
		id: id, owner: owner, person: person, key: key, done: make(chan struct{}),
		path:  filepath.Join(j.dir, jobFilePrefix+id+jobFileSuffix),
		state: JobRunning, readingsTotal: -1, started: time.Now().UTC(),
	}
	j.jobs[id] = jb
	j.mu.Unlock()

	src, err := newSource(ctx)
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(jb.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			err = fmt.Errorf("export jobs: create the job's file: %w", err)
		}
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if err == nil && (j.closed || jb.gone) {
		// Closed, or cancelled by its id, while newSource ran.
		err = ErrJobsClosed
		if !j.closed {
			err = ErrJobNotFound
		}
	}
	if err != nil {
		if f != nil {
			_ = f.Close()
			j.removeFile(jb)
		}
		if !jb.gone {
			jb.gone = true
			delete(j.jobs, id)
		}
		close(jb.done) // no goroutine will: release anyone in Wait
		return JobStatus{}, false, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	jb.cancel = cancel
	j.wg.Add(1)
	go j.run(runCtx, jb, f, src)
	j.log.Info("export job started", "job", jb.id, "account", owner)
	return j.statusLocked(jb), true, nil
}

// makeRoomLocked drops owner's oldest finished jobs until owner has room
// for one more.
func (j *Jobs) makeRoomLocked(owner string) {
	for {
		var mine []*job
		for _, jb := range j.jobs {
			if jb.owner == owner {
				mine = append(mine, jb)
			}
		}
		if len(mine) < j.opts.MaxPerAccount {
			return
		}
		var oldest *job
		for _, jb := range mine {
			if jb.state != JobRunning && (oldest == nil || jb.started.Before(oldest.started)) {
				oldest = jb
			}
		}
		if oldest == nil {
			return // all running: cannot happen with one running per account
		}
		j.dropLocked(oldest)
	}
}

func newJobID() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("export jobs: job id: %w", err)
	}
	return "exp_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// run writes the archive and records how it ended.
func (j *Jobs) run(ctx context.Context, jb *job, f *os.File, src Source) {
	defer j.wg.Done()
	defer close(jb.done)
	start := time.Now()
	err := j.write(ctx, jb, f, src)
	jb.cancelCtx()
	j.finish(jb, err, time.Since(start))
}

func (jb *job) cancelCtx() {
	// cancel is set before the goroutine starts and never changes.
	if jb.cancel != nil {
		jb.cancel()
	}
}

// write streams the archive through age into f.
func (j *Jobs) write(ctx context.Context, jb *job, f *os.File, src Source) (err error) {
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("export job: close the file: %w", cerr)
		}
	}()
	enc, err := age.Encrypt(f, jb.key.Recipient())
	if err != nil {
		return fmt.Errorf("export job: start encryption: %w", err)
	}
	progress := func(done, total int64) {
		j.mu.Lock()
		jb.readingsDone, jb.readingsTotal = done, total
		j.mu.Unlock()
	}
	if err := Write(ctx, &countingWriter{w: enc, n: &jb.bytes}, src, jb.person, jb.started, progress); err != nil {
		// enc is not closed: the file is incomplete either way, and it
		// is deleted.
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("export job: finish encryption: %w", err)
	}
	return nil
}

// countingWriter counts the archive's bytes as they go to the encryptor.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// finish records the end of a job and schedules its expiry.
func (j *Jobs) finish(jb *job, err error, took time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if jb.gone {
		// Cancelled or closed while it ran: drop left the file to us.
		j.removeFile(jb)
		j.log.Info("export job stopped", "job", jb.id, "account", jb.owner)
		return
	}
	jb.finished = time.Now().UTC()
	jb.expires = jb.finished.Add(j.opts.TTL)
	if err != nil {
		jb.state = JobFailed
		jb.errText = failureText(err)
		// A partial archive is useless (no central directory): delete
		// it now rather than at expiry.
		j.removeFile(jb)
		// Write's errors name files, devices and streams, never readings.
		j.log.Error("export job failed", "job", jb.id, "account", jb.owner, "err", err)
	} else {
		jb.state = JobDone
		j.log.Info("export job done", "job", jb.id, "account", jb.owner,
			"readings", jb.readingsDone, "bytes", jb.bytes.Load(), "took", took.Round(time.Millisecond))
	}
	jb.expiry = time.AfterFunc(j.opts.TTL, func() { j.expire(jb) })
}

// failureText says why a job failed, in words fit for the person, without
// anything read from the data.
func failureText(err error) string {
	var le *LockedError
	if errors.As(err, &le) {
		return le.Msg
	}
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "the hub's disk is full"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "the export was stopped before it was finished"
	}
	return "the hub could not finish the export; its log says why"
}

func (j *Jobs) expire(jb *job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !jb.gone {
		j.dropLocked(jb)
		j.log.Info("export job expired", "job", jb.id, "account", jb.owner)
	}
}

// dropLocked removes a job: out of the map, its timer stopped, its
// goroutine cancelled. The file is deleted here if the job has finished;
// a running job's goroutine (or Start, before there is one) deletes it
// when it sees the job gone, so no one deletes a file still being
// written nor leaves one behind.
func (j *Jobs) dropLocked(jb *job) {
	jb.gone = true
	delete(j.jobs, jb.id)
	if jb.expiry != nil {
		jb.expiry.Stop()
	}
	if jb.state == JobRunning {
		jb.cancelCtx()
		return
	}
	j.removeFile(jb)
}

func (j *Jobs) removeFile(jb *job) {
	if err := os.Remove(jb.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.log.Warn("could not delete an export file", "job", jb.id, "err", err)
	}
}

// lookupLocked finds owner's job id.
func (j *Jobs) lookupLocked(owner, id string) (*job, error) {
	jb, ok := j.jobs[id]
	if !ok || owner == "" || jb.owner != owner {
		return nil, ErrJobNotFound
	}
	return jb, nil
}

func (j *Jobs) statusLocked(jb *job) JobStatus {
	st := JobStatus{
		ID: jb.id, Owner: jb.owner, State: jb.state,
		ReadingsDone: jb.readingsDone, ReadingsTotal: jb.readingsTotal,
		Bytes:     jb.bytes.Load(),
		StartedAt: jb.started, FinishedAt: jb.finished, ExpiresAt: jb.expires,
		Error: jb.errText,
	}
	if st.ReadingsTotal >= 0 && st.ReadingsDone > st.ReadingsTotal {
		st.ReadingsTotal = st.ReadingsDone // the total was an estimate
	}
	return st
}

// Status returns the status of owner's job id.
func (j *Jobs) Status(owner, id string) (JobStatus, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, err := j.lookupLocked(owner, id)
	if err != nil {
		return JobStatus{}, err
	}
	return j.statusLocked(jb), nil
}

// List returns owner's jobs, newest first.
func (j *Jobs) List(owner string) []JobStatus {
	j.mu.Lock()
	var out []JobStatus
	for _, jb := range j.jobs {
		if owner != "" && jb.owner == owner {
			out = append(out, j.statusLocked(jb))
		}
	}
	j.mu.Unlock()
	sortJobs(out)
	return out
}

// sortJobs orders jobs newest first.
func sortJobs(out []JobStatus) {
	sort.Slice(out, func(a, b int) bool {
		if !out[a].StartedAt.Equal(out[b].StartedAt) {
			return out[a].StartedAt.After(out[b].StartedAt)
		}
		return out[a].ID < out[b].ID
	})
}

// Wait blocks until owner's job id has finished (or was cancelled), or
// ctx ends, and returns its status then.
func (j *Jobs) Wait(ctx context.Context, owner, id string) (JobStatus, error) {
	j.mu.Lock()
	jb, err := j.lookupLocked(owner, id)
	j.mu.Unlock()
	if err != nil {
		return JobStatus{}, err
	}
	select {
	case <-jb.done:
	case <-ctx.Done():
		return JobStatus{}, fmt.Errorf("export job: wait: %w", ctx.Err())
	}
	return j.Status(owner, id)
}

// Cancel stops owner's job id if it runs, and removes it and its file in
// any case.
func (j *Jobs) Cancel(owner, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	jb, err := j.lookupLocked(owner, id)
	if err != nil {
		return err
	}
	j.dropLocked(jb)
	j.log.Info("export job cancelled", "job", jb.id, "account", owner)
	return nil
}

// Open returns the archive of owner's finished job id, decrypted as it is
// read (constant memory), with the job's status. It fails with
// ErrJobNotReady while the job runs and ErrJobFailed if it failed. The
// caller must close the reader. A download that has started completes
// even if the job expires meanwhile.
func (j *Jobs) Open(ctx context.Context, owner, id string) (io.ReadCloser, JobStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, JobStatus{}, fmt.Errorf("export job: open: %w", err)
	}
	j.mu.Lock()
	jb, err := j.lookupLocked(owner, id)
	if err != nil {
		j.mu.Unlock()
		return nil, JobStatus{}, err
	}
	st := j.statusLocked(jb)
	switch st.State {
	case JobRunning:
		j.mu.Unlock()
		return nil, st, ErrJobNotReady
	case JobFailed:
		j.mu.Unlock()
		return nil, st, ErrJobFailed
	}
	// Opened under the lock, so expiry cannot delete the file between the
	// check and the open; once open, deleting it does not disturb the
	// reader.
	f, err := os.Open(jb.path)
	key := jb.key
	j.mu.Unlock()
	if err != nil {
		return nil, st, fmt.Errorf("export job %s: open the file: %w", id, err)
	}
	r, err := age.Decrypt(f, key)
	if err != nil {
		_ = f.Close()
		return nil, st, fmt.Errorf("export job %s: decrypt: %w", id, err)
	}
	return &download{ctx: ctx, r: r, f: f}, st, nil
}

// download decrypts a job's file as it is read, and stops when its
// context ends.
type download struct {
	ctx context.Context
	r   io.Reader
	f   *os.File
}

func (d *download) Read(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, fmt.Errorf("export job: download: %w", err)
	}
	n, err := d.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		// age authenticates every chunk: a file changed or cut short on
		// disk is an error here, never wrong data.
		err = fmt.Errorf("export job: decrypt: %w", err)
	}
	return n, err
}

func (d *download) Close() error { return d.f.Close() }

// Close stops every running job, waits for them, and deletes every job
// file. Jobs cannot be started afterwards. A download already open
// completes: its file is gone from the directory but still open.
func (j *Jobs) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	for _, jb := range j.jobs {
		j.dropLocked(jb)
	}
	j.mu.Unlock()
	j.wg.Wait()
	_, err := removeLeftovers(j.dir)
	return err
}

// ServeArchive writes a finished job's archive as an HTTP download (the
// API's and the pages' alike). An error means the client got a download
// cut short, which its Content-Length shows; it can try again.
func ServeArchive(w http.ResponseWriter, rc io.Reader, st JobStatus) error {
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, st.Filename()))
	h.Set("Content-Length", strconv.FormatInt(st.Bytes, 10))
	h.Set("Cache-Control", "no-store")
	_, err := io.Copy(w, rc)
	return err
}

// LockedError refuses an export the hub could not complete: some of the
// history is sealed under a key only its owner holds (user-held mode).
// Its kind is ErrLocked; Msg says what to do, and is its detail.
type LockedError struct{ Msg string }

func (e *LockedError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// ProblemKind returns ErrLocked and Msg.
func (e *LockedError) ProblemKind() (*problem.Kind, string) { return ErrLocked, e.Msg }
