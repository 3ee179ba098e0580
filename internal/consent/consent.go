package consent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// Manifests resolves the manifest in force for a device; *catalog.Catalog
// implements it. ForDevice's error wraps store.ErrNotFound for an unknown
// device and catalog.ErrNoManifest for a device whose type has no
// manifest in force; the service passes the latter on in its *Error.
type Manifests interface {
	ForDevice(ctx context.Context, deviceID string) (*catalog.Entry, error)
}

// Store is the storage the service needs; every store.Store provides it.
type Store interface {
	store.ConsentStore
	// Device gives the household a decision is recorded under in the
	// transparency log.
	Device(ctx context.Context, id string) (store.Device, error)
}

// Listener is told, after a change, whether a stream of a device is still
// collected at all (collect false: no use of it is on, so the device
// should stop sending it).
type Listener func(deviceID, stream string, collect bool)

// Options configure a Service.
type Options struct {
	Store     Store     // required
	Manifests Manifests // required
	// Key signs receipts (see signkey.LoadOrCreate). Required.
	Key ed25519.PrivateKey
	// Controller is the hub's operator, named in every record. An empty
	// name becomes "The operator of this Candor hub".
	Controller Party
	// Operator, when set, names the controller as the operator settings
	// say at the time of each record, so a name the admin edits reaches
	// the next record; Controller stays the fallback for empty fields.
	Operator func() Party
	// Jurisdiction is written into records when set (for example "EU").
	Jurisdiction string
	// Log, when set, records every decision made with Set and SetRouting
	// (ids only: the device, the stream and the record).
	Log    auditlog.Recorder
	Logger *slog.Logger
	// Now is the clock (default time.Now); records carry milliseconds.
	Now func() time.Time
}

// Decision is what may happen to the next reading of a stream.
type Decision struct {
	// Resolved is false when the device or stream is not declared by a
	// manifest in force, or could not be looked up: then nothing is
	// stored, forwarded or collected.
	Resolved bool `json:"resolved"`
	// Collect is true iff any use of the stream is on; when false the
	// device is told to stop sending it.
	Collect bool `json:"collect"`
	// StoreOnHub is true iff at least one purpose with recipient hub is on
	// and the routing keeps the stream on the hub.
	StoreOnHub bool `json:"store_on_hub"`
	// Recipients are the external recipients (manifest names) the reading
	// may be forwarded to, in manifest order. Shared: do not modify.
	Recipients []string `json:"recipients"`
	// Retention is how long the hub keeps what it stores: the chosen
	// retention, never longer than the manifest in force allows.
	Retention manifest.Duration `json:"retention"`
	// ManifestVersion is the manifest version the decision was computed
	// from. If the caller holds a newer one, call Refresh.
	ManifestVersion int `json:"manifest_version"`
	// Learn is true iff the reading may be learned from: the manifest
	// marks the stream candor:machineLearning, its learning use is on and
	// the stream is collected. Decide is the same for
	// candor:automatedDecisions. See PurposeMachineLearning.
	Learn  bool `json:"learn"`
	Decide bool `json:"decide"`
	// learns and decides are the manifest's marks, for Control.
	learns, decides bool
}

// Service keeps consent decisions, answers Allowed from memory and writes
// records. It is safe for concurrent use.
type Service struct {
	st           Store
	manifests    Manifests
	key          ed25519.PrivateKey
	pub          ed25519.PublicKey
	keyID        string
	controller   Party
	operator     func() Party
	jurisdiction string
	audit        auditlog.Recorder
	log          *slog.Logger
	now          func() time.Time

	// mu serialises every change of the table (and its write to the
	// store), so the table always matches the store's order of commits.
	mu sync.Mutex
	// notifyMu makes listeners run one at a time, in the order of the
	// changes: it is taken before mu is released.
	notifyMu  sync.Mutex
	snap      atomic.Pointer[snapshot]
	listeners atomic.Pointer[[]Listener]
	// older caches olderVersions (olderKey → []*catalog.Entry).
	older sync.Map
}

// snapshot is the immutable table Allowed reads. A change builds a new
// one and swaps the pointer.
//
// The devices are spread over snapShards maps, and a change copies only
// the maps it touches: with one map, every device loaded at its first
// connection copied the whole table, so a reconnect storm of n devices
// cost O(n²) (4.3 s of CPU for 10,000 devices; issue #19).
type snapshot struct {
	shards [snapShards]map[string]*deviceTable
}

const snapShards = 64

// shardOf picks a device's map by the last byte of its id, which is random
// in generated ids; any id works, only the spread would suffer.
func shardOf(id string) int {
	if id == "" {
		return 0
	}
	return int(id[len(id)-1]) % snapShards
}

// get returns the device's table, nil if none is loaded.
func (sn *snapshot) get(id string) *deviceTable { return sn.shards[shardOf(id)][id] }

// ids lists the loaded devices, sorted.
func (sn *snapshot) ids() []string {
	var out []string
	for _, m := range sn.shards {
		for id := range m {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// with returns a copy of sn with tables replaced and drop removed; the maps
// neither touches are shared.
func (sn *snapshot) with(tables []*deviceTable, drop []string) *snapshot {
	next := *sn
	var copied [snapShards]bool
	shard := func(id string) map[string]*deviceTable {
		i := shardOf(id)
		if !copied[i] {
			copied[i] = true
			next.shards[i] = maps.Clone(sn.shards[i])
			if next.shards[i] == nil {
				next.shards[i] = map[string]*deviceTable{}
			}
		}
		return next.shards[i]
	}
	for _, id := range drop {
		delete(shard(id), id)
	}
	for _, dt := range tables {
		shard(dt.id)[dt.id] = dt
	}
	return &next
}

// deviceTable is one device's decisions against one manifest version. It
// is never modified after it is published.
type deviceTable struct {
	id    string
	entry *catalog.Entry
	// base is the manifest the device's defaults were agreed under: the
	// version in force when it was added, when that is older than entry
	// (nil otherwise). What a later version adds or lengthens is not in
	// force by default; see Pending.
	base *catalog.Entry
	// The decision of each stream: in list for devices with up to
	// maxListStreams streams (scanned: comparing a few strings beats
	// hashing one), else in streams. Read them through lookup.
	list     []namedDecision
	streams  map[string]Decision
	explicit map[useKey]store.ConsentDecision
	routing  map[string]store.ConsentRouting
}

type namedDecision struct {
	name string
	d    Decision
}

// maxListStreams is the most streams lookup scans linearly.
const maxListStreams = 16

type useKey struct{ stream, purpose, recipient string }

// slowLoadTimeout bounds the store and catalog lookups Allowed makes the
// first time it sees a device.
const slowLoadTimeout = 5 * time.Second

// New builds a service and loads every stored decision. Devices whose
// manifest cannot be resolved now are loaded when first asked about.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.Manifests == nil {
		return nil, errors.New("consent: Store and Manifests are required")
	}
	if len(opts.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("consent: signing key is %d bytes, want an Ed25519 private key of %d", len(opts.Key), ed25519.PrivateKeySize)
	}
	s := &Service{
		st:           opts.Store,
		manifests:    opts.Manifests,
		key:          opts.Key,
		pub:          opts.Key.Public().(ed25519.PublicKey),
		controller:   opts.Controller,
		operator:     opts.Operator,
		jurisdiction: opts.Jurisdiction,
		audit:        opts.Log,
		log:          opts.Logger,
		now:          opts.Now,
	}
	s.keyID = KeyID(s.pub)
	if s.controller.Name == "" {
		s.controller.Name = "The operator of this Candor hub"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.listeners.Store(&[]Listener{})

	ds, err := s.st.ConsentDecisions(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("consent: load decisions: %w", err)
	}
	rs, err := s.st.ConsentRoutings(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("consent: load routings: %w", err)
	}
	explicit := map[string]map[useKey]store.ConsentDecision{}
	routing := map[string]map[string]store.ConsentRouting{}
	for _, d := range ds {
		if explicit[d.DeviceID] == nil {
			explicit[d.DeviceID] = map[useKey]store.ConsentDecision{}
		}
		explicit[d.DeviceID][useKey{d.Stream, d.Purpose, d.Recipient}] = d
	}
	for _, r := range rs {
		if routing[r.DeviceID] == nil {
			routing[r.DeviceID] = map[string]store.ConsentRouting{}
		}
		routing[r.DeviceID][r.Stream] = r
	}
	var loaded []*deviceTable
	for _, id := range unionKeys(explicit, routing) {
		e, err := s.resolve(ctx, id)
		if err != nil {
			// Fail closed for now; Allowed retries when the device sends.
			s.log.Warn("consent: device not loaded", "device", id, "err", err)
			continue
		}
		loaded = append(loaded, buildTable(id, e, s.baseline(ctx, id, e), explicit[id], routing[id]))
	}
	s.snap.Store((&snapshot{}).with(loaded, nil))
	return s, nil
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// OnChange registers a listener. Listeners run after the change is stored
// and visible to Allowed, one at a time, in the order of the changes. They
// are called for the changed stream after every Set and SetRouting (collect
// may be unchanged), and by Refresh for every stream whose collect state
// changed. A listener must not call Set, SetRouting or Refresh (that would
// deadlock); it may call Allowed and State.
func (s *Service) OnChange(l Listener) {
	for {
		old := s.listeners.Load()
		ls := append(slices.Clone(*old), l)
		if s.listeners.CompareAndSwap(old, &ls) {
			return
		}
	}
}

// PublicKey is the key receipts verify with.
func (s *Service) PublicKey() ed25519.PublicKey { return s.pub }

// KeyID is the id receipts name their key by.
func (s *Service) KeyID() string { return s.keyID }

// Allowed says what may happen to the next reading of deviceID's stream.
// It answers from memory; only the first question about a device not yet
// loaded reads the catalog and the store. A device or stream it cannot
// resolve gets the zero Decision: nothing stored, nothing forwarded.
func (s *Service) Allowed(deviceID, stream string) Decision {
	if dt := s.snap.Load().get(deviceID); dt != nil {
		return dt.lookup(stream)
	}
	return s.allowedSlow(deviceID, stream)
}

// lookup is the hot-path stream lookup. Devices have a handful of
// streams, and comparing a few strings beats hashing one.
func (dt *deviceTable) lookup(stream string) Decision {
	if dt.streams != nil {
		return dt.streams[stream]
	}
	if i := dt.index(stream); i >= 0 {
		return dt.list[i].d
	}
	return Decision{}
}

// index is stream's position in dt.list, -1 if absent.
func (dt *deviceTable) index(stream string) int {
	for i := range dt.list {
		if dt.list[i].name == stream {
			return i
		}
	}
	return -1
}

// names lists the streams the table decides on.
func (dt *deviceTable) names() []string {
	if dt.streams == nil {
		out := make([]string, len(dt.list))
		for i := range dt.list {
			out[i] = dt.list[i].name
		}
		return out
	}
	out := make([]string, 0, len(dt.streams))
	for name := range dt.streams {
		out = append(out, name)
	}
	return out
}

func (s *Service) allowedSlow(deviceID, stream string) Decision {
	ctx, cancel := context.WithTimeout(context.Background(), slowLoadTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if dt := s.snap.Load().get(deviceID); dt != nil {
		return dt.lookup(stream)
	}
	e, err := s.resolve(ctx, deviceID)
	if err != nil {
		s.log.Debug("consent: device not resolved; nothing allowed", "device", deviceID, "err", err)
		return Decision{}
	}
	dt, err := s.loadLocked(ctx, deviceID, e)
	if err != nil {
		s.log.Warn("consent: load decisions; nothing allowed", "device", deviceID, "err", err)
		return Decision{}
	}
	s.publishLocked([]*deviceTable{dt}, nil)
	return dt.lookup(stream)
}

// Refresh (re)loads devices from the catalog and the store. Call it after
// a manifest is put or confirmed, so the new version takes effect (or when
// a Decision's ManifestVersion is older than the entry the caller holds);
// call it with every device id at start-up to warm the table. With no ids
// it reloads every device loaded so far. Devices that no longer resolve
// are dropped (nothing allowed until they do). Listeners hear about every
// stream whose collect state changed.
func (s *Service) Refresh(ctx context.Context, deviceIDs ...string) error {
	s.older.Clear()
	return s.mutate(func() ([]notice, error) {
		snap := s.snap.Load()
		if len(deviceIDs) == 0 {
			deviceIDs = snap.ids()
		}
		var (
			errs    []error
			tables  []*deviceTable
			drop    []string
			notices []notice
		)
		for _, id := range deviceIDs {
			old := snap.get(id)
			e, err := s.resolve(ctx, id)
			if err != nil {
				errs = append(errs, err)
				var ce *Error
				if errors.As(err, &ce) && old != nil {
					drop = append(drop, id)
					notices = append(notices, diff(old, nil, "")...)
				}
				continue
			}
			dt, err := s.loadLocked(ctx, id, e)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			tables = append(tables, dt)
			if old != nil {
				notices = append(notices, diff(old, dt, "")...)
			}
		}
		s.publishLocked(tables, drop)
		return notices, errors.Join(errs...)
	})
}

// resolve returns the manifest in force for a device, with errors that
// name the device.
func (s *Service) resolve(ctx context.Context, deviceID string) (*catalog.Entry, error) {
	if deviceID == "" {
		return nil, &Error{Field: "device_id", Err: ErrUnknownDevice, Msg: "no device given"}
	}
	e, err := s.manifests.ForDevice(ctx, deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, &Error{Field: "device_id", Value: deviceID, Err: ErrUnknownDevice,
			Msg: fmt.Sprintf("unknown device %q", deviceID)}
	case errors.Is(err, catalog.ErrNoManifest):
		return nil, &Error{Field: "device_id", Value: deviceID, Err: catalog.ErrNoManifest,
			Msg: fmt.Sprintf("device %q: its type has no data manifest in force, so nothing can be decided about it", deviceID)}
	case err != nil:
		return nil, fmt.Errorf("consent: look up device %q: %w", deviceID, err)
	case e == nil || e.Manifest == nil:
		return nil, &Error{Field: "device_id", Value: deviceID, Err: catalog.ErrNoManifest,
			Msg: fmt.Sprintf("device %q has no manifest in force", deviceID)}
	}
	return e, nil
}

// loadLocked reads a device's decisions from the store and builds its
// table against e.
func (s *Service) loadLocked(ctx context.Context, deviceID string, e *catalog.Entry) (*deviceTable, error) {
	ds, err := s.st.ConsentDecisions(ctx, deviceID)
	if err != nil {
		return nil, fmt.Errorf("consent: decisions of device %q: %w", deviceID, err)
	}
	rs, err := s.st.ConsentRoutings(ctx, deviceID)
	if err != nil {
		return nil, fmt.Errorf("consent: routings of device %q: %w", deviceID, err)
	}
	// Most devices have no decision or routing of their own: no map then.
	var explicit map[useKey]store.ConsentDecision
	for _, d := range ds {
		if explicit == nil {
			explicit = make(map[useKey]store.ConsentDecision, len(ds))
		}
		explicit[useKey{d.Stream, d.Purpose, d.Recipient}] = d
	}
	var routing map[string]store.ConsentRouting
	for _, r := range rs {
		if routing == nil {
			routing = make(map[string]store.ConsentRouting, len(rs))
		}
		routing[r.Stream] = r
	}
	return buildTable(deviceID, e, s.baseline(ctx, deviceID, e), explicit, routing), nil
}

// currentLocked returns the device's published table (nil if none) and
// its table against e: the published one when it is for e's version,
// else one rebuilt (or loaded) for e, not yet published.
func (s *Service) currentLocked(ctx context.Context, deviceID string, e *catalog.Entry) (old, cur *deviceTable, err error) {
	old = s.snap.Load().get(deviceID)
	switch {
	case old == nil:
		cur, err = s.loadLocked(ctx, deviceID, e)
	case sameManifest(old.entry, e):
		cur = old
	default:
		cur = buildTable(deviceID, e, s.baseline(ctx, deviceID, e), old.explicit, old.routing)
	}
	return old, cur, err
}

func sameManifest(a, b *catalog.Entry) bool {
	return a == b || a.Version == b.Version && a.Manifest.DeviceType == b.Manifest.DeviceType
}

// publishLocked swaps in a new snapshot with tables replaced and drop
// removed.
func (s *Service) publishLocked(tables []*deviceTable, drop []string) {
	if len(tables) == 0 && len(drop) == 0 {
		return
	}
	s.snap.Store(s.snap.Load().with(tables, drop))
}

type notice struct {
	device, stream string
	collect        bool
}

// diff lists the streams whose collect state differs between two tables
// (cur nil: nothing collected any more), plus the touched stream whatever
// its state. Without an old table (the device was not loaded, so what it
// was told is unknown) only the touched stream is listed.
func diff(old, cur *deviceTable, touched string) []notice {
	if old == nil {
		if cur == nil || touched == "" {
			return nil
		}
		return []notice{{cur.id, touched, cur.lookup(touched).Collect}}
	}
	collect := func(dt *deviceTable, stream string) bool {
		return dt != nil && dt.lookup(stream).Collect
	}
	var names []string
	for _, dt := range []*deviceTable{old, cur} {
		if dt == nil {
			continue
		}
		for _, name := range dt.names() {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if touched != "" && !slices.Contains(names, touched) {
		names = append(names, touched)
	}
	slices.Sort(names)
	id := old.id
	var out []notice
	for _, name := range names {
		if c := collect(cur, name); name == touched || c != collect(old, name) {
			out = append(out, notice{id, name, c})
		}
	}
	return out
}

// mutate runs fn under the change lock, then, if fn succeeded, calls the
// listeners with its notices in order, after releasing the change lock.
func (s *Service) mutate(fn func() ([]notice, error)) error {
	s.mu.Lock()
	unlocked := false
	defer func() {
		if !unlocked {
			s.mu.Unlock()
		}
	}()
	notices, err := fn()
	if len(notices) == 0 {
		return err
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	unlocked = true
	s.mu.Unlock()
	ls := *s.listeners.Load()
	for _, n := range notices {
		for _, l := range ls {
			l(n.device, n.stream, n.collect)
		}
	}
	return err
}

// buildTable computes every stream's Decision from the manifest, the
// explicit decisions and the routings. See the package documentation for
// the defaults.
func buildTable(id string, e, base *catalog.Entry, explicit map[useKey]store.ConsentDecision, routing map[string]store.ConsentRouting) *deviceTable {
	// explicit and routing may be nil (nothing decided, the usual case):
	// they are only read here, and a change writes to a copy (cloneMap).
	if base != nil && (base.Version >= e.Version || base.Manifest == nil) {
		base = nil
	}
	dt := &deviceTable{id: id, entry: e, base: base, explicit: explicit, routing: routing}
	// A table is kept for every loaded device, connected or idle, so it
	// holds its decisions once: in a list for the usual handful of
	// streams, in a map only beyond maxListStreams.
	if n := len(e.Manifest.Streams); n <= maxListStreams {
		dt.list = make([]namedDecision, 0, n)
	} else {
		dt.streams = make(map[string]Decision, n)
	}
	for _, st := range e.Manifest.Streams {
		hubOn := false
		for _, p := range st.Purposes {
			if on, _ := dt.useOn(st, p.ID, RecipientHub); on {
				hubOn = true
			}
		}
		var recipients []string
		for _, r := range st.Recipients {
			if r.Name == RecipientHub || slices.Contains(recipients, r.Name) {
				continue
			}
			if on, _ := dt.useOn(st, r.Purpose, r.Name); on {
				recipients = append(recipients, r.Name)
			}
		}
		keep, retention := dt.route(st)
		collect := hubOn || len(recipients) > 0
		d := Decision{
			Resolved:        true,
			Collect:         collect,
			StoreOnHub:      hubOn && keep,
			Recipients:      recipients,
			Retention:       retention,
			ManifestVersion: e.Version,
			Learn:           dt.learningOn(st, PurposeMachineLearning, collect),
			Decide:          dt.learningOn(st, PurposeAutomatedDecisions, collect),
			learns:          st.MachineLearning,
			decides:         st.AutomatedDecisions,
		}
		if dt.streams != nil {
			dt.streams[st.Name] = d
		} else if i := dt.index(st.Name); i >= 0 {
			dt.list[i].d = d // a repeated name: the last one counts, as in a map
		} else {
			dt.list = append(dt.list, namedDecision{st.Name, d})
		}
	}
	return dt
}

// useOn says whether a use is on, and whether a person decided it (else
// the default applies).
func (dt *deviceTable) useOn(st *manifest.Stream, purpose, recipient string) (on, explicit bool) {
	if d, ok := dt.explicit[useKey{st.Name, purpose, recipient}]; ok {
		return d.On, true
	}
	if recipient != RecipientHub {
		return false, false // nothing leaves the hub by default
	}
	if IsLearningPurpose(purpose) {
		return dt.learningDefault(st, purpose), false
	}
	if dt.isNew(st.Name, purpose, recipient) {
		return false, false // added after the device's defaults were agreed
	}
	for _, p := range st.Purposes {
		if p.ID == purpose {
			return p.Essential, false
		}
	}
	return false, false
}

// route returns the stream's effective routing: whether it is kept on the
// hub and for how long (the chosen retention, cut to the manifest's).
func (dt *deviceTable) route(st *manifest.Stream) (keep bool, retention manifest.Duration) {
	agreed := dt.agreedRetention(st)
	r, ok := dt.routing[st.Name]
	if !ok {
		return true, agreed
	}
	retention = agreed
	if r.Retention != "" {
		if d, err := manifest.ParseDuration(r.Retention); err == nil && d.D > 0 && d.D <= st.Retention.D {
			retention = d
		}
	}
	return r.KeepOnHub, retention
}
