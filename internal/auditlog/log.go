package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/auditlog/verify"
	"github.com/candor-iot/candor/internal/privfile"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Errors of the log. Tampering is reported as a *TamperError that wraps
// ErrTampered, the same type the offline verifier returns.
var (
	ErrClosed   = errors.New("audit log closed")
	ErrFailed   = errors.New("audit log failed: reopen it to recover")
	ErrLocked   = errors.New("audit log is open in another process")
	ErrRange    = errors.New("beyond the audit log")
	ErrTampered = verify.ErrTampered
)

// TamperError names the first altered index; see verify.TamperError.
type TamperError = verify.TamperError

// Checkpoint is a signed checkpoint; see verify.Checkpoint.
type Checkpoint = verify.Checkpoint

// CheckMode is how much Open verifies.
type CheckMode int

const (
	// CheckFull re-reads every entry on Open, recomputes the tree and
	// compares it with the signed checkpoint and the stored hashes. It
	// costs about a second per million entries and catches any change to
	// any entry. The default.
	CheckFull CheckMode = iota
	// CheckTail checks only what may have changed since the derived files
	// were last flushed: the stored subtree hashes at that point plus the
	// entries after it must reproduce the signed root. Its cost does not
	// grow with the log. An edited old entry is still caught, but only
	// when it is read (Entry, Entries, Export compare each entry with its
	// stored hash) or by Verify. Any doubt falls back to a full check.
	CheckTail
)

// Options tune a Log. The zero value is a sound default.
type Options struct {
	Check CheckMode
	// MaxPending bounds the entries queued for the next commit; appenders
	// block beyond it, so a flood slows callers rather than growing
	// memory. Default 16384.
	MaxPending int
	// SyncDerivedEvery is how often the derived files (offsets, node
	// hashes) are flushed to disk; after a crash at most this much is
	// recomputed from the entries. Default 1s.
	SyncDerivedEvery time.Duration
	// Logger receives the start-up report. Default slog.Default().
	Logger *slog.Logger
	// Now stamps events appended with a zero Time. Default time.Now.
	Now func() time.Time
}

func (o *Options) fill() {
	if o.MaxPending <= 0 {
		o.MaxPending = 16384
	}
	if o.SyncDerivedEvery <= 0 {
		o.SyncDerivedEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

var (
	hasher       = rfc6962.DefaultHasher
	rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// Log is an append-only, Merkle-tree audit log in one directory. It is
// safe for concurrent use; reads never wait for the writer.
type Log struct {
	dir     string
	key     *Key
	opts    Options
	lock    *os.File
	entries *os.File
	offsets *os.File
	nodes   *nodeStore
	states  [2]*os.File

	recovery Recovery
	pub      atomic.Pointer[head]

	// Writer state, owned by the committer goroutine after Open (seq by
	// the publisher).
	rng       *compact.Range
	size      uint64
	end       int64
	seq       uint64
	synced    uint64
	syncedOff int64
	lastSync  time.Time

	// The queue of entries waiting for the next commit.
	mu     sync.Mutex
	space  *sync.Cond
	cur    *batch
	next   uint64 // index the next appended entry gets
	closed bool
	failed error
	kick   chan struct{}
	signed chan signedBatch // committer -> publisher
	done   chan struct{}    // publisher exited

	closeOnce sync.Once
	closeErr  error
}

// head is what readers see: the latest committed and signed tree.
type head struct {
	size       uint64
	end        int64 // entries file offset just after entry size-1
	checkpoint Checkpoint
}

// Recovery reports what Open found and repaired. The hub should log it
// (Open also logs it) and may show it to the household: a truncation
// means a write was cut off by a crash before it was acknowledged.
type Recovery struct {
	Created        bool // the directory held no log; an empty one was made
	Check          CheckMode
	CheckpointSize uint64 // entries the latest checkpoint on disk signed
	Entries        uint64 // entries in the log after recovery
	// Adopted entries were complete on disk after the checkpoint: written
	// just before a crash, never acknowledged. They are kept and signed.
	Adopted uint64
	// Truncated is the torn tail that was cut off, if any.
	Truncated *verify.Damage
	// RebuiltFrom is the first entry whose derived hashes were recomputed
	// (equal to Entries if none were).
	RebuiltFrom uint64
	Duration    time.Duration
}

// Repaired reports whether Open changed anything beyond derived files.
func (r Recovery) Repaired() bool { return r.Truncated != nil || r.Adopted > 0 }

func (r Recovery) String() string {
	if r.Created {
		return "audit log created (empty)"
	}
	mode := "full"
	if r.Check == CheckTail {
		mode = "tail"
	}
	s := fmt.Sprintf("audit log verified (%s check, %v): %d entries, checkpoint signs %d", mode, r.Duration.Round(time.Millisecond), r.Entries, r.CheckpointSize)
	if r.Adopted > 0 {
		s += fmt.Sprintf("; adopted %d complete entries written after the checkpoint just before a crash", r.Adopted)
	}
	if r.Truncated != nil {
		s += "; cut off a torn write: " + r.Truncated.String()
	}
	if r.RebuiltFrom < r.Entries {
		s += fmt.Sprintf("; recomputed derived hashes from entry %d", r.RebuiltFrom)
	}
	return s
}

// Open opens the log in dir, creating it if needed, and signs with key.
//
// Before returning it verifies the log (see CheckMode): the latest state
// slot's checkpoint must be signed by key, and the entries must reproduce
// its root. If they do not, Open returns an error wrapping ErrTampered
// (a *TamperError naming the first altered index) and changes nothing, so
// the evidence stays as found. A torn write after the checkpoint (a crash
// mid-append; never an acknowledged entry, since each batch's checkpoint is
// durable before Append returns) is cut off and reported in Recovery, and
// an "auditlog.recover" event recording it is appended to the log itself.
func Open(ctx context.Context, dir string, key *Key, opts Options) (*Log, error) {
	if key == nil {
		return nil, errors.New("auditlog: Open needs a signing key")
	}
	opts.fill()
	if err := os.MkdirAll(filepath.Join(dir, logformat.NodesDir), 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	l := &Log{
		dir:    dir,
		key:    key,
		opts:   opts,
		nodes:  &nodeStore{dir: dir},
		kick:   make(chan struct{}, 1),
		signed: make(chan signedBatch, 1),
		done:   make(chan struct{}),
	}
	l.space = sync.NewCond(&l.mu)
	l.cur = &batch{done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
	var err error
	if l.lock, err = lockFile(filepath.Join(dir, logformat.LockFile)); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if err := l.openFiles(); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if err := l.recover(ctx); err != nil {
		return nil, fmt.Errorf("auditlog: %s: %w", dir, err)
	}
	ok = true
	go l.run()
	go l.publish()

	r := l.recovery
	if r.Repaired() {
		opts.Logger.Warn("audit log repaired after a crash", "dir", dir, "report", r.String())
		ev := Event{Actor: Actor{Kind: ActorHub}, Action: ActionAuditRecover, Purpose: "crash recovery",
			Detail: map[string]string{"adopted": fmt.Sprint(r.Adopted), "checkpoint_size": fmt.Sprint(r.CheckpointSize)}}
		if t := r.Truncated; t != nil {
			ev.Detail["truncated_bytes"] = fmt.Sprint(t.Bytes)
			ev.Detail["truncated_at_index"] = fmt.Sprint(t.Index)
		}
		if _, err := l.Append(ctx, ev); err != nil {
			l.Close()
			return nil, fmt.Errorf("auditlog: record recovery: %w", err)
		}
	} else {
		opts.Logger.Info("audit log opened", "dir", dir, "report", r.String())
	}
	return l, nil
}

func (l *Log) openFiles() error {
	var err error
	open := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(l.dir, name), os.O_RDWR|os.O_CREATE, 0o600)
	}
	if l.entries, err = open(logformat.EntriesFile); err != nil {
		return err
	}
	if l.offsets, err = open(logformat.OffsetsFile); err != nil {
		return err
	}
	for i, name := range logformat.StateFiles {
		if l.states[i], err = open(name); err != nil {
			return err
		}
	}
	return nil
}

// initialise turns a new directory into an empty log: the file header,
// then a signed checkpoint of the empty tree. From then on a log without
// a checkpoint can only mean deleted files, never a fresh start.
func (l *Log) initialise() error {
	if err := l.entries.Truncate(0); err != nil {
		return err
	}
	if _, err := l.entries.WriteAt(logformat.FileHeader, 0); err != nil {
		return err
	}
	if err := l.entries.Sync(); err != nil {
		return err
	}
	l.end = int64(len(logformat.FileHeader))
	l.syncedOff = l.end
	l.rng = rangeFactory.NewEmptyRange(0)
	if err := l.writeCheckpoint(verify.EmptyRoot()); err != nil {
		return err
	}
	return privfile.SyncDir(l.dir)
}

// isFresh reports whether dir holds no log yet (or one whose creation was
// cut off before its first checkpoint, which holds no entries either).
func (l *Log) isFresh() (bool, error) {
	for _, name := range logformat.StateFiles {
		fi, err := os.Stat(filepath.Join(l.dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		if err == nil && fi.Size() > 0 {
			return false, nil
		}
	}
	fi, err := l.entries.Stat()
	if err != nil {
		return false, err
	}
	return fi.Size() <= int64(len(logformat.FileHeader)), nil
}

// Close commits everything queued, flushes the derived files, records
// that in a final state slot and releases the directory. Appends after
// Close fail with ErrClosed.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.space.Broadcast()
		l.mu.Unlock()
		signal(l.kick)
		<-l.done
		var errs []error
		if l.failedErr() == nil && l.synced < l.size {
			errs = append(errs, l.syncDerived())
			root, err := l.rng.GetRootHash(nil)
			if err == nil {
				err = l.writeCheckpoint(root)
			}
			errs = append(errs, err)
		}
		errs = append(errs, l.closeFiles())
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

func (l *Log) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{l.entries, l.offsets, l.states[0], l.states[1], l.lock} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	errs = append(errs, l.nodes.close())
	return errors.Join(errs...)
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// VerifierKey is the public key string that verifies this log's
// checkpoints; give it to users and auditors.
func (l *Log) VerifierKey() string { return l.key.VerifierKey() }

// Origin is the log's origin line (the key's name).
func (l *Log) Origin() string { return l.key.Name() }

// Recovery is the report of what Open checked and repaired.
func (l *Log) Recovery() Recovery { return l.recovery }

// Size is the number of entries committed and signed.
func (l *Log) Size() uint64 { return l.pub.Load().size }

// Checkpoint returns the latest signed checkpoint. Its Signed field is
// the checkpoint note to serve and to save (e.g. the API's
// /audit/checkpoint); a new one is signed for every committed batch.
func (l *Log) Checkpoint() Checkpoint {
	cp := l.pub.Load().checkpoint
	cp.Root = append([]byte(nil), cp.Root...)
	cp.Signed = append([]byte(nil), cp.Signed...)
	return cp
}

// Verify runs the offline verifier (verify.Dir) over the live log
// directory; it can run while appends continue (for example daily, when
// Open used CheckTail).
func (l *Log) Verify(ctx context.Context) (*verify.DirReport, error) {
	var err error
	for range 3 {
		var rep *verify.DirReport
		if rep, err = verify.Dir(ctx, l.dir, l.key.VerifierKey()); err == nil {
			return rep, nil
		}
		// Under heavy appends both state slots can be caught mid-rewrite
		// in one read; that is a race with the writer, not damage.
		if !errors.Is(err, verify.ErrCheckpoint) {
			return nil, err
		}
	}
	return nil, err
}

// sign makes the signed checkpoint note for the current tree.
func (l *Log) sign(size uint64, root []byte) ([]byte, error) {
	text := logformat.Checkpoint{Origin: l.key.Name(), Size: size, Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: text}, l.key.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return signed, nil
}

// writeCheckpoint signs the tree at l.size and stores it (see writeState).
// Only for use when no committer runs (Open, Close).
func (l *Log) writeCheckpoint(root []byte) error {
	signed, err := l.sign(l.size, root)
	if err != nil {
		return err
	}
	return l.writeState(signedBatch{size: l.size, end: l.end, root: root, signed: signed, synced: l.synced, syncedOff: l.syncedOff})
}

// signedBatch is a committed batch on its way to its checkpoint.
type signedBatch struct {
	b         *batch // nil outside the committer
	size      uint64
	end       int64
	root      []byte
	signed    []byte
	synced    uint64
	syncedOff int64
}

// writeState writes a signed checkpoint to the next state slot, syncs it
// and publishes it to readers. The slots alternate, so a torn write leaves
// the previous checkpoint readable in the other one; calls must therefore
// never overlap.
func (l *Log) writeState(sb signedBatch) error {
	st := logformat.State{Seq: l.seq + 1, Synced: sb.synced, SyncedOffset: sb.syncedOff, Signed: sb.signed}
	data := st.Marshal()
	f := l.states[st.Seq%2]
	if _, err := f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint: %w", err)
	}
	l.seq = st.Seq
	l.pub.Store(&head{size: sb.size, end: sb.end, checkpoint: Checkpoint{
		Origin: l.key.Name(), Size: sb.size, Root: sb.root, Signed: sb.signed,
	}})
	return nil
}

// syncDerived flushes the derived files; after it, a crash costs at most
// re-hashing the entries appended since.
func (l *Log) syncDerived() error {
	if err := l.nodes.sync(); err != nil {
		return err
	}
	if err := l.offsets.Sync(); err != nil {
		return fmt.Errorf("sync offsets: %w", err)
	}
	l.synced, l.syncedOff, l.lastSync = l.size, l.end, time.Now()
	return nil
}
