// Package ingest is the per-reading policy path shared by every way data
// enters the hub (MQTT and HTTP): check the reading, count what is refused,
// and commit what is accepted durably before it is acknowledged.
//
// It serves clause 2A of the IoT Good Practice paper (the hub only keeps
// what it can account for) and the project rule that no acknowledged
// reading is ever lost: a QoS 1/2 publish or an HTTP ingest is answered
// only after its batch is committed. Every check happens here, in this one
// place and in this order: the reading's form, the manifest in force for
// the device's type, then the person's consent, which decides whether the
// reading goes to the forwarder (external recipients) and whether it is
// kept; what is kept is sealed under its key owner's data key and queued.
package ingest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fastjson"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// Refusal reasons, used as the reason label of candor_readings_refused_total
// and in error messages. They describe what was wrong, never the content.
// Manifest violations use the manifest.Viol* reasons.
const (
	ReasonTooLarge   = "too_large"
	ReasonNotJSON    = "not_json_object"
	ReasonBadStream  = "bad_stream_name"
	ReasonOverloaded = "overloaded"
	ReasonNoManifest = "no_manifest"
	ReasonNoDevice   = "no_device"
	// The abuse monitor holds the device back: quarantined until a person
	// releases it, or rate-limited.
	ReasonQuarantined = "quarantined"
	ReasonRateLimited = "rate_limited"
)

// RefusedError says why a reading was refused. It never carries payload
// contents, so it is safe to log and to return to the device.
type RefusedError struct {
	DeviceID string
	Stream   string
	Reason   string // one of the Reason constants or a manifest.Viol* reason
	Detail   string // human-readable, content-free
	// Violation is set when the reading broke its manifest.
	Violation *manifest.Violation
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("reading from device %s on stream %q refused: %s", e.DeviceID, e.Stream, e.Detail)
}

// Options tune the pipeline. Zero values take the defaults.
type Options struct {
	MaxPayloadBytes int // default 64 KiB
	BatchMaxRows    int // default 1000
	// BatchMaxWait is how long a batch gathers before it is written; 0
	// (the default) writes as soon as the writer is free, so readings that
	// arrive during a write form the next batch: low latency when idle,
	// large batches under load.
	BatchMaxWait time.Duration
	// BatchBusyWait is how long a batch gathers while the writer stays
	// busy: after a commit during which more readings arrived, the next
	// batch is written once its first reading is this old (or it is
	// full). The first reading after a quiet spell never waits for it, so
	// a household hub's latency is unchanged; under steady paced traffic
	// it trades a fraction of a millisecond for fewer commits, each of
	// which costs a transaction and an fsync whatever its size. 0 (the
	// default) writes as soon as the writer is free.
	BatchBusyWait time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer // nil: metrics are not exported
	// CounterFlushInterval is how often per-device counters are written to
	// the store (default 5s).
	CounterFlushInterval time.Duration
	// Manifests supplies the manifest in force for a device. The hub always
	// sets it; nil skips manifest enforcement, which only tests of the
	// batching machinery do.
	Manifests Manifests
	// StripUndeclared removes undeclared fields instead of refusing the
	// reading (a per-hub choice; refusing is the default).
	StripUndeclared bool
	// Consent decides per reading whether it may be stored. nil stores
	// every accepted reading (only tests of the batching machinery).
	Consent Consent
	// Sealer encrypts each stored reading under its owner's data key, and
	// KeyOwners names the key owner of a device. The hub always sets both;
	// nil stores plain readings (only tests of the batching machinery).
	Sealer    Sealer
	KeyOwners KeyOwners
	// Forwarder, if set, is handed each accepted reading that consent
	// lets go to external recipients, whether or not it is stored here.
	Forwarder Forwarder
	// Monitor, if set, sees every reading's metadata (never its values)
	// and may hold a device back.
	Monitor Monitor
	// Apps, if set, is handed each reading that passed the manifest
	// check once it is committed (or, when consent says not to keep it,
	// once it is acknowledged); it decides which of the household's apps
	// receive it.
	Apps Apps
}

// Apps delivers readings live to the apps people allowed to receive
// them. Deliver must not block and must copy payload.
type Apps interface {
	// Wants reports whether any app may receive the stream now, so
	// readings no app may have are not kept in memory until their commit.
	Wants(deviceID, stream string) bool
	Deliver(deviceID, stream string, payload []byte)
}

// Forwarder delivers readings to external recipients. Forward must not
// block and must copy payload.
type Forwarder interface {
	Forward(ctx context.Context, deviceID, stream string, t time.Time, payload []byte, recipients []string)
}

// Sealer encrypts one reading under an owner's data key (envelope
// encryption: a symmetric AEAD, never a public-key operation per reading).
type Sealer interface {
	AppendSeal(dst []byte, ownerID string, plaintext, aad []byte) ([]byte, error)
}

// KeyOwners names the owner of the data keys a device's readings are
// sealed under: its person, or its household for a shared device. It is
// called for every stored reading, so it should answer from memory.
type KeyOwners interface {
	KeyOwner(ctx context.Context, deviceID string) (string, error)
}

// Consent answers, from memory, what may happen to a stream's next reading.
type Consent interface {
	Allowed(deviceID, stream string) consent.Decision
	Refresh(ctx context.Context, deviceIDs ...string) error
}

// Manifests resolves the manifest in force for a device.
type Manifests interface {
	ForDevice(ctx context.Context, deviceID string) (*catalog.Entry, error)
}

// Store is what the pipeline needs from storage.
type Store interface {
	AppendReadings(ctx context.Context, rs []store.Reading) error
	AddDeviceCounters(ctx context.Context, deltas map[string]store.DeviceCounters) error
	AddViolations(ctx context.Context, vs []store.ViolationCount) error
}

// Pipeline accepts readings, applies policy and commits them in batches.
type Pipeline struct {
	st      Store
	opts    Options
	log     *slog.Logger
	batcher *batcher
	now     func() time.Time
	health  health

	accepted    prometheus.Counter
	refused     *prometheus.CounterVec
	batchRows   prometheus.Histogram
	batchSecs   prometheus.Histogram
	commitWait  prometheus.Histogram
	storeErrors prometheus.Counter
	// storeRefused counts readings the store refused from batches it
	// otherwise committed (store.RefusedReadingsError).
	storeRefused prometheus.Counter

	cmu        sync.Mutex
	counters   map[string]store.DeviceCounters // not yet flushed to the store
	flushing   map[string]store.DeviceCounters // being written right now
	vflushing  []store.ViolationCount          // violations being written right now
	flushMu    sync.Mutex                      // one write of counters at a time
	violations map[violationKey]*store.ViolationCount
	vnames     map[string]int // distinct entries per device in violations, overflow aside
	rates      rateTable
	flagged    *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	stopOnce   sync.Once
	stopC      chan struct{}
	doneC      chan struct{}
}

type violationKey struct{ device, stream, field, reason string }

// New starts a pipeline writing to st. Close it to flush and stop.
func New(st Store, opts Options) *Pipeline {
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = 64 << 10
	}
	if opts.BatchMaxRows <= 0 {
		opts.BatchMaxRows = 1000
	}
	if opts.BatchMaxWait < 0 {
		opts.BatchMaxWait = 0
	}
	if opts.BatchBusyWait < 0 {
		opts.BatchBusyWait = 0
	}
	if opts.CounterFlushInterval <= 0 {
		opts.CounterFlushInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		st:         st,
		opts:       opts,
		log:        opts.Logger,
		now:        time.Now,
		counters:   make(map[string]store.DeviceCounters),
		violations: make(map[violationKey]*store.ViolationCount),
		vnames:     make(map[string]int),
		rates:      rateTable{m: make(map[rateKey]*rateState)},
		stopC:      make(chan struct{}),
		doneC:      make(chan struct{}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_readings_accepted_total",
			Help: "Readings accepted and committed to storage.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_readings_refused_total",
			Help: "Readings refused by the policy path, by reason.",
		}, []string{"reason"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "candor_store_batch_rows",
			Help:    "Readings per committed storage batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		batchSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "candor_store_batch_seconds",
			Help:    "Time to commit one storage batch durably.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		// What a batch's readings waited after the policy path took them:
		// a reading's row timestamp is its acceptance, so latency figures
		// taken from stored rows leave this part out.
		commitWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "candor_store_commit_wait_seconds",
			Help:    "Per committed batch, how long its oldest reading waited from acceptance until the commit finished.",
			Buckets: prometheus.ExponentialBuckets(0.001, 1.25, 40),
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_store_batch_errors_total",
			Help: "Storage batches that failed to commit (their publishers were not acknowledged).",
		}),
		storeRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_store_readings_refused_total",
			Help: "Readings the store could not keep (a storage limit reached), any others of their batch committed; not acknowledged unless acknowledged before the commit (--ack durable-within).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_readings_dropped_total",
			Help: "Readings accepted but not stored because a person's choice says so, by reason.",
		}, []string{"reason"}),
		flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_behaviour_flags_total",
			Help: "Streams seen far outside their manifest's declared behaviour profile, by kind.",
		}, []string{"kind"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(p.accepted, p.refused, p.batchRows, p.batchSecs, p.commitWait, p.storeErrors, p.storeRefused, p.flagged, p.dropped)
	}
	p.health = health{log: p.log, now: func() time.Time { return p.now() }}
	p.batcher = newBatcher(st, opts.BatchMaxRows, opts.BatchMaxWait, opts.BatchBusyWait, p.committed)
	p.batcher.onRefused = p.storeRefusedReadings
	if opts.Apps != nil {
		p.batcher.onLive = func(ls []liveReading) {
			for _, l := range ls {
				opts.Apps.Deliver(l.device, l.stream, l.payload)
			}
		}
	}
	go p.flushCountersLoop()
	return p
}

func (p *Pipeline) committed(n int, d time.Duration, err error) {
	p.batchSecs.Observe(d.Seconds())
	// The batcher reports a commit before it clears the batch being
	// written, so its lag is still the age of this batch's oldest reading.
	p.commitWait.Observe(p.batcher.lag().Seconds())
	p.health.commit(n, err)
	if err != nil {
		p.storeErrors.Inc()
		return
	}
	p.batchRows.Observe(float64(n))
	p.accepted.Add(float64(n))
}

// storeRefusedReadings counts and logs readings the store refused from a
// batch it otherwise committed; their senders get an error wrapping
// ErrStorage (Ticket.Wait).
func (p *Pipeline) storeRefusedReadings(re *store.RefusedReadingsError) {
	p.storeRefused.Add(float64(len(re.Refused)))
	p.health.refused(len(re.Refused), re)
}

// Check applies the manifest-independent policy to a reading without
// storing it.
func (p *Pipeline) Check(deviceID, stream string, payload []byte) error {
	if deviceID == "" {
		return &RefusedError{Stream: stream, Reason: ReasonNoDevice, Detail: "reading without a device id"}
	}
	if !ValidStream(stream) {
		return &RefusedError{DeviceID: deviceID, Stream: stream, Reason: ReasonBadStream,
			Detail: "stream names are 1-64 characters of a-z, 0-9 and _, and 'control' is reserved for the hub"}
	}
	if len(payload) > p.opts.MaxPayloadBytes {
		return &RefusedError{DeviceID: deviceID, Stream: stream, Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("payload is over the %d-byte limit", p.opts.MaxPayloadBytes)}
	}
	if !isJSONObject(payload) {
		return &RefusedError{DeviceID: deviceID, Stream: stream, Reason: ReasonNotJSON,
			Detail: "payload must be a JSON object"}
	}
	return nil
}

// Ticket is a queued reading's claim on its commit.
type Ticket struct {
	b       *batch
	row     int // the reading's index in b's rows
	dropped bool
}

// Stored reports whether the reading was queued for storage; false means
// the person's consent says not to keep it, so it was accepted and dropped.
func (t Ticket) Stored() bool { return !t.dropped }

// Completed returns a ticket whose commit already finished with err (nil
// for success), for callers that decided without queuing anything.
func Completed(err error) Ticket {
	b := &batch{done: make(chan struct{}), err: err, over: true}
	close(b.done)
	return Ticket{b: b}
}

// Wait blocks until the reading is durably committed (nil) or its batch
// failed, or the store refused this reading alone, or ctx ends. The
// reading is committed or reported failed either way; only the waiting
// stops. A failure wraps ErrStorage.
func (t Ticket) Wait(ctx context.Context) error { return t.b.wait(ctx, t.row) }

// Lag is the age of the oldest reading queued for storage and not yet
// committed, 0 when all are committed. The broker's bounded-window ack
// mode acknowledges at once only while Lag is under its window.
func (p *Pipeline) Lag() time.Duration { return p.batcher.lag() }

// Ready reports, without blocking, whether the reading's commit has
// finished (Wait would return at once). The broker uses it to put the
// acknowledgements of everything already committed into one write.
func (t Ticket) Ready() bool {
	select {
	case <-t.b.done:
		return true
	default:
		return false
	}
}

// NotifyCommit arranges for w.Committed to be called once the reading's
// batch has committed (Ready is then true), from the goroutine that
// committed it. It reports false, arranging nothing, if the commit has
// already finished or the ticket has no batch to wait on (Completed): the
// caller then looks at Ready itself. One call registers w once for the
// whole batch, so a caller with several readings in a batch registers
// only for the first of them, and a registration costs no allocation
// once the batcher's lists have grown to the number of waiting callers.
func (t Ticket) NotifyCommit(w Waker) bool {
	bt := t.b
	if bt == nil {
		return false
	}
	bt.wakeMu.Lock()
	defer bt.wakeMu.Unlock()
	if bt.over {
		return false
	}
	bt.wake = append(bt.wake, w)
	return true
}

// Submit checks a reading and queues it for storage. When wait is true it
// returns only after the reading is durably committed (use it for anything
// that will be acknowledged); otherwise it returns once queued.
func (p *Pipeline) Submit(ctx context.Context, deviceID, stream string, payload []byte, wait bool) error {
	t, err := p.Enqueue(ctx, deviceID, stream, payload)
	if err != nil || !wait {
		return err
	}
	if err := t.Wait(ctx); err != nil {
		return fmt.Errorf("commit reading from device %s: %w", deviceID, err)
	}
	return nil
}

// Enqueue checks a reading against the policy and the device's manifest
// and queues it for storage, returning a Ticket to wait on for the commit.
// It lets a connection keep reading while earlier readings commit, and
// acknowledge them in order as they do. ctx bounds the wait for room in
// the queue. Enqueue copies payload.
func (p *Pipeline) Enqueue(ctx context.Context, deviceID, stream string, payload []byte) (Ticket, error) {
	if err := p.admit(deviceID, stream); err != nil {
		p.Refuse(deviceID, err)
		return Ticket{}, err
	}
	if err := p.Check(deviceID, stream, payload); err != nil {
		p.Refuse(deviceID, err)
		p.watchRefused(ctx, deviceID, stream, len(payload), err)
		return Ticket{}, err
	}
	version := 0
	// One clock read serves the rate window, the monitor, forwarding and
	// the stored time (read keeps the monotonic reading, which UTC drops).
	read := p.now()
	now := read.UTC()
	if p.opts.Manifests != nil {
		e, out, err := p.checkManifest(ctx, deviceID, stream, payload)
		if err != nil {
			p.watchRefused(ctx, deviceID, stream, len(payload), err)
			return Ticket{}, err
		}
		s := e.Manifest.Stream(stream)
		if s != nil {
			p.observeRate(deviceID, s, read)
		}
		payload, version = out, e.Version
		if p.opts.Consent == nil {
			p.watch(e, s, deviceID, stream, len(payload), false, now)
		} else {
			d := p.opts.Consent.Allowed(deviceID, stream)
			if d.ManifestVersion != e.Version {
				// The manifest changed since the decision table was built.
				if err := p.opts.Consent.Refresh(ctx, deviceID); err != nil {
					return Ticket{}, fmt.Errorf("refresh consent of device %s: %w", deviceID, err)
				}
				d = p.opts.Consent.Allowed(deviceID, stream)
			}
			p.watch(e, s, deviceID, stream, len(payload), !d.Collect, now)
			if len(d.Recipients) > 0 && p.opts.Forwarder != nil {
				p.opts.Forwarder.Forward(ctx, deviceID, stream, now, payload, d.Recipients)
			}
			if !d.StoreOnHub {
				// Off means not stored from this very reading on. The device
				// did nothing wrong, so it is acknowledged, not refused.
				p.dropped.WithLabelValues("consent").Inc()
				// Nothing to commit: it is acknowledged now, so apps
				// may have it now.
				if p.opts.Apps != nil {
					p.opts.Apps.Deliver(deviceID, stream, payload)
				}
				t := Completed(nil)
				t.dropped = true
				return t, nil
			}
		}
	}
	var stored []byte
	if p.opts.Sealer == nil || p.opts.KeyOwners == nil {
		stored = append([]byte(nil), payload...)
	} else {
		owner, err := p.opts.KeyOwners.KeyOwner(ctx, deviceID)
		if err != nil {
			return Ticket{}, fmt.Errorf("key owner of device %s: %w", deviceID, err)
		}
		// The AAD binds the ciphertext to its device, stream and time, so
		// a stored reading cannot be moved to another row unnoticed.
		var buf [96]byte // fits the usual id and stream without a heap allocation
		aad := vault.AppendReadingAAD(buf[:0], deviceID, stream, now)
		if stored, err = p.opts.Sealer.AppendSeal(nil, owner, payload, aad); err != nil {
			return Ticket{}, fmt.Errorf("seal reading of device %s: %w", deviceID, err)
		}
	}
	var live *liveReading
	if p.opts.Apps != nil && p.opts.Manifests != nil && p.opts.Apps.Wants(deviceID, stream) {
		// Apps get the reading only after its batch commits (see
		// batcher.flush); the copy outlives the caller's buffer.
		live = &liveReading{device: deviceID, stream: stream, payload: bytes.Clone(payload)}
	}
	bt, row, err := p.batcher.add(ctx, store.Reading{
		DeviceID:        deviceID,
		Stream:          stream,
		Time:            now,
		Payload:         stored,
		ManifestVersion: version,
	}, live)
	if err != nil {
		if errors.Is(err, errOverloaded) {
			p.refused.WithLabelValues(ReasonOverloaded).Inc()
		}
		return Ticket{}, err
	}
	return Ticket{b: bt, row: row}, nil
}

// Vet holds data that is not yet a reading to the rules a reading meets
// (stream name, size, JSON object syntax, the manifest in force) without
// storing it: an MQTT will is vetted when the device registers it, so it
// is refused then rather than lost when it is sent. Consent is not
// checked, since it decides whether to keep a reading, not whether it is
// acceptable. A refusal is counted as a refused reading.
func (p *Pipeline) Vet(ctx context.Context, deviceID, stream string, payload []byte) error {
	if err := p.Check(deviceID, stream, payload); err != nil {
		p.Refuse(deviceID, err)
		return err
	}
	if p.opts.Manifests == nil {
		return nil
	}
	_, _, err := p.checkManifest(ctx, deviceID, stream, payload)
	return err
}

// checkManifest checks a reading against its device's manifest in force
// and returns the entry and the payload to keep (undeclared fields
// stripped, if so configured). Refusals are counted.
func (p *Pipeline) checkManifest(ctx context.Context, deviceID, stream string, payload []byte) (*catalog.Entry, []byte, error) {
	e, err := p.opts.Manifests.ForDevice(ctx, deviceID)
	if err != nil {
		if errors.Is(err, catalog.ErrNoManifest) {
			err = &RefusedError{DeviceID: deviceID, Stream: stream, Reason: ReasonNoManifest,
				Detail: "the device's type has no data manifest in force, so the hub accepts nothing from it"}
			p.Refuse(deviceID, err)
		}
		return nil, nil, err
	}
	out, v := e.Checker.Check(stream, payload, p.opts.StripUndeclared)
	if v != nil {
		err := &RefusedError{DeviceID: deviceID, Stream: stream, Reason: v.Reason, Detail: v.Error(), Violation: v}
		p.Refuse(deviceID, err)
		return nil, nil, err
	}
	return e, out, nil
}

// Refuse counts a refused reading for the device and in the metrics.
func (p *Pipeline) Refuse(deviceID string, err error) {
	reason := "other"
	var re *RefusedError
	if errors.As(err, &re) {
		reason = re.Reason
	}
	p.refused.WithLabelValues(reason).Inc()
	p.Count(deviceID, store.DeviceCounters{Refused: 1})
	if re != nil && re.Violation != nil {
		p.recordViolation(deviceID, re.Violation.Stream, re.Violation.Field, re.Violation.Reason)
	}
}

// recordViolation tallies a manifest violation or behaviour flag for the
// owner to see; flushed with the counters.
func (p *Pipeline) recordViolation(deviceID, stream, field, reason string) {
	now := p.now().UTC()
	p.cmu.Lock()
	p.addViolationLocked(store.ViolationCount{DeviceID: deviceID, Stream: stream, Field: field, Reason: reason, Count: 1, LastAt: now})
	p.cmu.Unlock()
}

// addViolationLocked adds v to the counts waiting for the next flush. The
// device picks the field names, so they are clipped, and new names beyond
// store.MaxViolationRows per device (between two flushes) are counted in
// the device's overflow entry: a device sending ever new names cannot
// grow this map, as the store bounds its rows.
func (p *Pipeline) addViolationLocked(v store.ViolationCount) {
	v.Field = store.ClipViolationField(v.Field)
	k := violationKey{v.DeviceID, v.Stream, v.Field, v.Reason}
	cur := p.violations[k]
	if cur == nil && p.vnames[v.DeviceID] >= store.MaxViolationRows {
		k = violationKey{device: v.DeviceID, reason: store.ViolationOverflow}
		cur = p.violations[k]
	}
	if cur == nil {
		cur = &store.ViolationCount{DeviceID: k.device, Stream: k.stream, Field: k.field, Reason: k.reason}
		p.violations[k] = cur
		if k.reason != store.ViolationOverflow {
			p.vnames[v.DeviceID]++
		}
	}
	cur.Count += v.Count
	if v.LastAt.After(cur.LastAt) {
		cur.LastAt = v.LastAt
	}
}

// PendingViolations returns violation counts of a device not yet written
// to the store, in the order they will be written (store.MergeViolations):
// those being written now, then the rest, each by stream, field and
// reason. Those being written stay visible until the write is done, as
// PendingCounters' do; a reader that reads them before the store sees a
// write's counts twice for an instant, never not at all.
func (p *Pipeline) PendingViolations(deviceID string) []store.ViolationCount {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	var out []store.ViolationCount
	for _, v := range p.vflushing {
		if v.DeviceID == deviceID {
			out = append(out, v)
		}
	}
	n := len(out)
	for k, v := range p.violations {
		if k.device == deviceID {
			out = append(out, *v)
		}
	}
	sortViolations(out[n:])
	return out
}

// sortViolations puts counts in the order they are written to the store,
// which decides which new names get a row of their own when a device has
// more than store.MaxViolationRows.
func sortViolations(vs []store.ViolationCount) {
	slices.SortFunc(vs, func(a, b store.ViolationCount) int {
		return cmp.Or(strings.Compare(a.DeviceID, b.DeviceID), strings.Compare(a.Stream, b.Stream),
			strings.Compare(a.Field, b.Field), strings.Compare(a.Reason, b.Reason))
	})
}

// Count adds to a device's counters (refusals, ACL denials, auth failures).
// They reach the store within CounterFlushInterval and on Close.
func (p *Pipeline) Count(deviceID string, delta store.DeviceCounters) {
	p.cmu.Lock()
	p.counters[deviceID] = p.counters[deviceID].Add(delta)
	p.cmu.Unlock()
}

// PendingCounters returns counts not yet written to the store, so readers
// can show up-to-the-second figures.
func (p *Pipeline) PendingCounters(deviceID string) store.DeviceCounters {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	return p.counters[deviceID].Add(p.flushing[deviceID])
}

func (p *Pipeline) flushCountersLoop() {
	defer close(p.doneC)
	t := time.NewTicker(p.opts.CounterFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.flushCounters()
		case <-p.stopC:
			p.flushCounters()
			return
		}
	}
}

// FlushCounters writes the counters and violations waiting for the next
// CounterFlushInterval to the store now (as Close does), for a caller that
// needs the store up to date: when it returns, what was counted before
// the call is written (or put back after a failed write, and logged).
func (p *Pipeline) FlushCounters() { p.flushCounters() }

func (p *Pipeline) flushCounters() {
	// One at a time: each keeps what it writes visible (flushing,
	// vflushing) until its write is done.
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.cmu.Lock()
	if len(p.counters) == 0 && len(p.violations) == 0 {
		p.cmu.Unlock()
		return
	}
	// Counts being written stay visible through PendingCounters until the
	// write commits, so the figure shown never dips.
	pending := p.counters
	p.flushing = pending
	p.counters = make(map[string]store.DeviceCounters)
	viols := make([]store.ViolationCount, 0, len(p.violations))
	for _, v := range p.violations {
		viols = append(viols, *v)
	}
	sortViolations(viols)
	p.violations = make(map[violationKey]*store.ViolationCount)
	clear(p.vnames)
	p.vflushing = viols
	p.cmu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.st.AddDeviceCounters(ctx, pending)
	p.cmu.Lock()
	p.flushing = nil
	if err != nil {
		// Put them back so the counts are not lost.
		for id, c := range pending {
			p.counters[id] = p.counters[id].Add(c)
		}
	}
	p.cmu.Unlock()
	if err != nil {
		p.log.Error("flush device counters", "devices", len(pending), "err", err)
	}
	if len(viols) == 0 {
		return
	}
	err = p.st.AddViolations(ctx, viols)
	p.cmu.Lock()
	p.vflushing = nil
	if err != nil {
		for _, v := range viols {
			p.addViolationLocked(v)
		}
	}
	p.cmu.Unlock()
	if err != nil {
		p.log.Error("flush manifest violations", "rows", len(viols), "err", err)
	}
}

// Close stops accepting readings, commits everything queued and flushes
// the counters.
func (p *Pipeline) Close() {
	p.batcher.close()
	p.stopOnce.Do(func() { close(p.stopC) })
	<-p.doneC
}

// ValidStream reports whether s is an acceptable stream name.
func ValidStream(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "control" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isJSONObject reports whether b is one JSON object (RFC 8259; like
// encoding/json.Valid, bytes inside strings are not checked as UTF-8).
// fastjson's validator gives the same answers as encoding/json.Valid
// (FuzzCheck compares them) in about 60% of the time, on every reading.
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return fastjson.ValidateBytes(b) == nil
		default:
			return false
		}
	}
	return false
}
