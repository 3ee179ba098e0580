package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Action is what the hub does about an alarm.
type Action string

// Actions, mildest first.
const (
	ActNotify     Action = "notify"     // tell the owner, change nothing
	ActRateLimit  Action = "rate_limit" // refuse publishes above a token bucket
	ActQuarantine Action = "quarantine" // refuse every publish, keep the control topic
	ActRevoke     Action = "revoke"     // revoke the device's credential
)

// Transparency-log actions the monitor records, besides
// auditlog.ActionDeviceQuarantine.
const (
	ActionAlarmRaise     = "device.alarm.raise"
	ActionAlarmClear     = "device.alarm.clear"
	ActionAlarmNotify    = "device.alarm.notify"
	ActionRateLimit      = "device.ratelimit"
	ActionRelease        = "device.quarantine.release"
	ActionFleetWaveRaise = "fleet.alarm.raise"
	ActionFleetWaveClear = "fleet.alarm.clear"
)

// Policy maps an alarm's severity to the action taken.
type Policy map[Severity]Action

// DefaultPolicy notifies on info, rate-limits on warning and quarantines
// on critical alarms. Revoking is left to the admin to choose: it locks
// the device out until someone sets it up again.
func DefaultPolicy() Policy {
	return Policy{Info: ActNotify, Warning: ActRateLimit, Critical: ActQuarantine}
}

// ParseAction reads an action name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActNotify, ActRateLimit, ActQuarantine, ActRevoke:
		return a, nil
	}
	return "", fmt.Errorf("unknown action %q (want notify, rate_limit, quarantine or revoke)", s)
}

// For returns the action for a. Wrong secrets and a new source address
// are done to or around the device, not by it: holding the device back
// would hand whoever tries the secrets a way to switch it off, so those
// only notify. A fleet wave names a type, not a device.
func (p Policy) For(a Alarm) Action {
	switch a.Kind {
	case KindWrongSecrets, KindNewAddress, KindWave:
		return ActNotify
	}
	if act, ok := p[a.Severity]; ok {
		return act
	}
	return ActNotify
}

// Store keeps quarantines across restarts.
type Store interface {
	PutQuarantine(ctx context.Context, q store.Quarantine) error
	DeleteQuarantine(ctx context.Context, deviceID string) error
	Quarantines(ctx context.Context) ([]store.Quarantine, error)
}

// Devices looks a device up, for its household (the store is one).
type Devices interface {
	Device(ctx context.Context, id string) (store.Device, error)
}

// Revoker revokes a device's credential; the identity service records
// that in the log itself.
type Revoker interface {
	RevokeDevice(ctx context.Context, id string) error
}

// Verdict is what the broker does with a device's next publish.
type Verdict uint8

// Verdicts.
const (
	Allow Verdict = iota
	Limited
	Quarantined
)

// restriction is a device's hold: quarantined, or rate-limited through a
// token bucket.
type restriction struct {
	quarantined atomic.Bool
	refused     atomic.Int64

	mu     sync.Mutex
	q      store.Quarantine
	tokens float64
	last   time.Time
	rate   float64 // tokens per second
	burst  float64
}

func (r *restriction) take(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() {
		r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	}
	r.last = now
	if r.tokens >= 1 {
		r.tokens--
		return true
	}
	return false
}

// Admit says whether a device's publish may go on. It is on every
// publish, so a hub with no device held back answers from one atomic
// load.
func (m *Monitor) Admit(deviceID string) Verdict {
	if m.nRestricted.Load() == 0 {
		return Allow
	}
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return Allow
	}
	r := v.(*restriction)
	if r.quarantined.Load() {
		r.refused.Add(1)
		return Quarantined
	}
	if !r.take(m.cfg.Now()) {
		r.refused.Add(1)
		return Limited
	}
	return Allow
}

// Status is a device's hold as the owner sees it.
type Status struct {
	Quarantined bool
	RateLimited bool
	Since       time.Time
	Refused     int64 // publishes refused since the hold began (this run)
	Alarm       Alarm // what caused it
}

// Status returns the device's hold, or false when it has none.
func (m *Monitor) Status(deviceID string) (Status, bool) {
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return Status{}, false
	}
	r := v.(*restriction)
	r.mu.Lock()
	q := r.q
	r.mu.Unlock()
	sev, _ := ParseSeverity(q.Severity)
	return Status{
		Quarantined: r.quarantined.Load(),
		RateLimited: !r.quarantined.Load(),
		Since:       q.Since,
		Refused:     r.refused.Load(),
		Alarm: Alarm{Device: deviceID, Kind: Kind(q.Kind), Severity: sev, Stream: q.Stream,
			Observed: q.Observed, Limit: q.Limit, Window: m.cfg.Window, Raised: q.Since},
	}, true
}

// Load restores the holds kept in the store. A held device is told when
// it subscribes to its control topic (the hub reads HoldMessage).
func (m *Monitor) Load(ctx context.Context) error {
	if err := m.loadPolicy(ctx); err != nil {
		return err
	}
	if m.cfg.Store == nil {
		return nil
	}
	m.holds.Lock()
	defer m.holds.Unlock()
	qs, err := m.cfg.Store.Quarantines(ctx)
	if err != nil {
		return fmt.Errorf("load quarantines: %w", err)
	}
	for _, q := range qs {
		m.install(q)
	}
	return nil
}

// hold installs (or tightens) a device's restriction in memory for a
// hold this monitor decides, merged with the one it has: perWindow is the
// declared messages per window that a rate limit allows twice over (0:
// one a second). A hold read from the store is installed as it is
// (install). holds must be held.
func (m *Monitor) hold(q store.Quarantine, perWindow float64) *restriction {
	nr := &restriction{}
	v, loaded := m.restricted.LoadOrStore(q.DeviceID, nr)
	r := v.(*restriction)
	if !loaded {
		m.nRestricted.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quarantined.Load() && q.RateLimited {
		return r // a quarantine is not softened into a rate limit
	}
	if r.quarantined.Load() && q.Advisory == "" {
		// An alarm joins a hold until fixed: the hold keeps both reasons
		// and ends only when both are gone (see Lift and Release).
		q.Advisory = advisoryOf(r.q)
	}
	if q.RateLimited {
		// Twice the declared rate, so a well-behaved device is never
		// held back; a device with no declared rate gets one a second.
		if q.Rate <= 0 {
			q.Rate = 1
			if perWindow > 0 {
				q.Rate = 2 * perWindow / m.cfg.Window.Seconds()
			}
		}
		r.rate = q.Rate
		r.burst = max(r.rate*10, 5)
		r.tokens = r.burst
	} else {
		r.quarantined.Store(true)
	}
	r.q = q
	return r
}

// OnHoldChange registers f, called with the device's id after this
// monitor stored a hold it placed (a quarantine or a rate limit, on an
// alarm or an owner's restriction), changed or lifted. A hub node passes
// the change on to the other nodes with it. Reload and Load do not call
// it: what they install came from the store, put there by someone who
// told the others already.
func (m *Monitor) OnHoldChange(f func(deviceID string)) {
	m.holdMu.Lock()
	m.holdChanged = append(m.holdChanged, f)
	m.holdMu.Unlock()
}

func (m *Monitor) holdChange(deviceID string) {
	m.holdMu.RLock()
	fs := m.holdChanged
	m.holdMu.RUnlock()
	for _, f := range fs {
		f(deviceID)
	}
}

// control tells the hub that the device's quarantine status changed, so
// it publishes the device's control message. The hold in memory is
// already changed: the hub reads the message from it (HoldMessage) at the
// moment it publishes, as it does for a device that subscribes, so two
// changes that cross still leave the device with the newest.
func (m *Monitor) control(deviceID string) {
	if m.cfg.Control == nil {
		return
	}
	m.cfg.Control(deviceID)
}

func controlMessage(held bool, k Kind) []byte {
	msg := struct {
		Quarantined bool   `json:"quarantined"`
		Reason      string `json:"reason,omitempty"`
	}{held, string(k)}
	b, _ := json.Marshal(msg)
	return b
}

// HoldMessage returns the control message that tells the device its
// current hold: the one its last hold was announced with while it is
// quarantined, {"quarantined":false} otherwise (a rate limit is not
// announced). A device that subscribes is always told, so one that was
// released while it was away learns it, whatever it remembered.
func (m *Monitor) HoldMessage(deviceID string) []byte {
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return controlMessage(false, "")
	}
	r := v.(*restriction)
	if !r.quarantined.Load() {
		return controlMessage(false, "")
	}
	r.mu.Lock()
	kind := Kind(r.q.Kind)
	r.mu.Unlock()
	return controlMessage(true, kind)
}

// ErrNotHeld is returned by Release for a device that is not held.
var ErrNotHeld = &problem.Kind{Status: http.StatusConflict, Type: "not-held",
	Text: "device is not held", Detail: "This device is not held back, so there is nothing to release."}

// Release lifts a device's hold, on a person's word and with their
// reason, and records it. The device's alarms start over, so a device
// that keeps misbehaving is held again after RaiseAfter windows.
//
// When an alarm's quarantine joined a hold until fixed, releasing lifts
// the alarm's reason only: the device stays on hold until the flaw is
// fixed (or its owner releases that hold too).
func (m *Monitor) Release(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error {
	m.holds.Lock()
	ev, err := m.releaseLocked(ctx, deviceID, by, reason)
	m.holds.Unlock()
	if err != nil {
		return err
	}
	return m.recordFor(ctx, deviceID, ev)
}

// releaseLocked is Release with holds held; it returns the event to
// record once holds is let go (the log may wait on the network).
func (m *Monitor) releaseLocked(ctx context.Context, deviceID string, by auditlog.Actor, reason string) (auditlog.Event, error) {
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return auditlog.Event{}, ErrNotHeld
	}
	r := v.(*restriction)
	r.mu.Lock()
	q := r.q
	r.mu.Unlock()
	if adv := advisoryOf(q); adv != "" && Kind(q.Kind) != KindAdvisory {
		return m.releaseAlarm(ctx, r, q, adv, by, reason)
	}
	if m.cfg.Store != nil {
		if err := m.cfg.Store.DeleteQuarantine(ctx, deviceID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return auditlog.Event{}, fmt.Errorf("release device %s: %w", deviceID, err)
		}
	}
	if m.restricted.CompareAndDelete(deviceID, v) {
		m.nRestricted.Add(-1)
	}
	m.holdChange(deviceID)
	m.resetAlarms(deviceID)
	m.control(deviceID)
	return auditlog.Event{
		Actor: by, Action: ActionRelease,
		Subject: auditlog.Subject{Device: deviceID, Stream: q.Stream}, Purpose: clipPurpose(reason),
		Detail: map[string]string{"kind": q.Kind, "refused": strconv.FormatInt(r.refused.Load(), 10)},
	}, nil
}

// recordFor records ev about deviceID, with the device's household.
func (m *Monitor) recordFor(ctx context.Context, deviceID string, ev auditlog.Event) error {
	ev.Household = m.household(ctx, deviceID)
	return m.record(ctx, ev)
}

// resetAlarms starts a released device's alarms over.
func (m *Monitor) resetAlarms(deviceID string) {
	sh, d := m.lookup(deviceID)
	if d != nil {
		for i := range d.nStreams() {
			d.streamAt(i).runs = [nStreamRuns]run{}
		}
		for k := range d.ev {
			d.ev[k] = event{}
		}
	}
	sh.mu.Unlock()
}

type opKind uint8

const (
	opRaise opKind = iota + 1
	opClear
)

type effect struct {
	op    opKind
	alarm Alarm
}

func (m *Monitor) household(ctx context.Context, deviceID string) string {
	if m.cfg.Devices == nil || deviceID == "" {
		return ""
	}
	d, err := m.cfg.Devices.Device(ctx, deviceID)
	if err != nil {
		return ""
	}
	return d.HouseholdID
}

func (m *Monitor) record(ctx context.Context, ev auditlog.Event) error {
	if m.cfg.Log == nil {
		return nil
	}
	if err := m.cfg.Log.Record(ctx, ev); err != nil {
		m.cfg.Logger.Error("record monitor event", "action", ev.Action, "device", ev.Subject.Device, "err", err)
		return fmt.Errorf("record %s: %w", ev.Action, err)
	}
	return nil
}

var hubActor = auditlog.Actor{Kind: auditlog.ActorHub}

// apply records an alarm, takes the configured action and notifies.
func (m *Monitor) apply(ctx context.Context, e effect) {
	a := e.alarm
	hh := m.household(ctx, a.Device)
	subj := auditlog.Subject{Device: a.Device, Stream: a.Stream}
	if e.op == opClear {
		act := ActionAlarmClear
		if a.Kind == KindWave {
			act = ActionFleetWaveClear
		}
		_ = m.record(ctx, auditlog.Event{Actor: hubActor, Action: act, Household: hh, Subject: subj, Detail: a.detail()})
		m.cfg.Logger.Info("alarm cleared", "device", a.Device, "kind", a.Kind, "type", a.Type)
		return
	}
	act := m.actionFor(a)
	m.cfg.Logger.Warn("alarm raised", "device", a.Device, "kind", a.Kind, "severity", a.Severity.String(),
		"stream", a.Stream, "observed", a.Observed, "limit", a.Limit, "action", act, "type", a.Type)
	det := a.detail()
	det["action"] = string(act)
	logAct := ActionAlarmRaise
	if a.Kind == KindWave {
		logAct = ActionFleetWaveRaise
	}
	_ = m.record(ctx, auditlog.Event{Actor: hubActor, Action: logAct, Household: hh, Subject: subj, Detail: det})

	switch act {
	case ActRateLimit, ActQuarantine:
		q := store.Quarantine{DeviceID: a.Device, Kind: string(a.Kind), Stream: a.Stream, Severity: a.Severity.String(),
			Observed: a.Observed, Limit: a.Limit, RateLimited: act == ActRateLimit, Since: a.Raised.UTC()}
		perWindow := m.declaredLimit(a)
		m.holds.Lock()
		r := m.hold(q, perWindow)
		// Keep what the hold became: a rate limit does not soften a
		// quarantine, and an alarm keeps a hold until fixed's advisory.
		r.mu.Lock()
		q = r.q
		r.mu.Unlock()
		if m.cfg.Store != nil {
			if err := m.cfg.Store.PutQuarantine(ctx, q); err != nil {
				m.cfg.Logger.Error("persist hold", "device", a.Device, "err", err)
			}
		}
		// Told whatever the action: a rate limit must hold back a device
		// that moves to another hub node as much as a quarantine does.
		m.holdChange(a.Device)
		logAct := ActionRateLimit
		if act == ActQuarantine {
			logAct = auditlog.ActionDeviceQuarantine
			m.control(a.Device)
		}
		m.holds.Unlock()
		_ = m.record(ctx, auditlog.Event{Actor: hubActor, Action: logAct, Household: hh, Subject: subj, Detail: a.detail()})
	case ActRevoke:
		if m.cfg.Revoker != nil {
			if err := m.cfg.Revoker.RevokeDevice(ctx, a.Device); err != nil {
				m.cfg.Logger.Error("revoke device", "device", a.Device, "err", err)
			}
		}
	}
	m.notify(ctx, hh, a, act)
}

// declaredLimit returns the declared messages per window of the alarm's
// stream, if the device has one, for the rate limit's bucket.
func (m *Monitor) declaredLimit(a Alarm) float64 {
	sh, d := m.lookup(a.Device)
	defer sh.mu.Unlock()
	if d == nil {
		return 0
	}
	for i := range d.nStreams() {
		if s := d.streamAt(i); s.name == a.Stream {
			return float64(s.perMinute) * m.cfg.Window.Minutes()
		}
	}
	return 0
}

func (m *Monitor) notify(ctx context.Context, hh string, a Alarm, act Action) {
	if m.cfg.Notifier == nil {
		return
	}
	sent, err := m.cfg.Notifier.Notify(ctx, Notice{Household: hh, Alarm: a, Action: act})
	if err != nil {
		m.cfg.Logger.Error("notify alarm", "device", a.Device, "kind", a.Kind, "err", err)
	}
	if sent == 0 && err == nil {
		return
	}
	det := map[string]string{"kind": string(a.Kind), "sent": strconv.Itoa(sent)}
	if err != nil {
		det["failed"] = "true"
	}
	_ = m.record(ctx, auditlog.Event{Actor: hubActor, Action: ActionAlarmNotify, Household: hh,
		Subject: auditlog.Subject{Device: a.Device, Stream: a.Stream}, Detail: det})
}
