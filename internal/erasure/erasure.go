// Package erasure deletes people's data for good: account deletion by
// crypto-shredding, unlinking history into anonymised aggregates, and the
// background removal of the rows both leave behind.
//
// It serves clause 2B of the IoT Good Practice paper (people control their
// data, including the right to have it forgotten) in a way that holds at
// any size: deleting an account destroys the person's data keys, which
// makes every reading sealed under them unreadable at once, whatever their
// number; the rows are then removed in bounded chunks by a durable queue
// that survives restarts.
//
// # Who owns what
//
// A device's readings are sealed under the keys of the person who added it
// (store.Device.KeyOwner), or under the household's keys for devices added
// before anyone had an account, or marked shared. Deleting an account
// erases the person's own devices and shreds their keys. The last member
// to leave takes the household with them: its shared devices and keys go
// too, and the household is removed.
//
// # What unlinking keeps
//
// Unlinking replaces raw history with hourly cells, one per device type,
// stream, numeric or true/false field and UTC hour: the number of readings
// and their sum (so their mean). A cell names no device, household or
// person. Cells built from fewer than MinCellCount readings, or from fewer
// than MinCellHouseholds distinct households, are dropped (suppressed),
// and so are text fields, nested values and anything not a number or
// true/false. Nothing else of the unlinked readings is kept. A person's
// unlinking sums one household's history, so its cells are dropped: on
// a hub of fewer than MinCellHouseholds households Unlink refuses and says
// to delete instead, and Unlink skips (with a reason) devices whose
// history only their owner's own key opens.
package erasure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// MinCellCount is the smallest number of readings an aggregate cell must
// summarise to be kept: fewer would say too much about single events (a
// door opened twice at 3 a.m.).
const MinCellCount = 10

// MinCellHouseholds is the fewest distinct households a kept cell must
// summarise. Readings alone are no guard: on a hub of one household,
// "wearable heart_rate 12:00 mean 76.7" is one person's pulse however
// many readings it sums. A cell of fewer households is dropped, and a hub
// of fewer households cannot keep anything anonymously: Unlink says so
// and points to deletion instead.
const MinCellHouseholds = 5

// chunk bounds one purge transaction, so ingest commits never wait long.
const chunk = 5000

// ErrRefused is the kind of a request that cannot be carried out as
// asked; the detail (ErrRefused.Errorf) says why and what to do instead.
// Nothing was changed.
var ErrRefused = &problem.Kind{Status: http.StatusConflict, Type: "refused", Text: "refused"}

// Store is what erasure needs from storage.
type Store interface {
	Accounts(ctx context.Context, householdID string) ([]store.Account, error)
	Households(ctx context.Context) ([]store.Household, error)
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
	Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error)
	DeleteReadings(ctx context.Context, q store.ReadingQuery, limit int) (int64, error)
	DeleteAccount(ctx context.Context, id string) error
	DeleteHousehold(ctx context.Context, id string) error
	Erase(ctx context.Context, e store.Erasure) error
	Purges(ctx context.Context) ([]store.Purge, error)
	PurgeReadings(ctx context.Context, p store.Purge, limit int) (int64, error)
	FinishPurge(ctx context.Context, p store.Purge) error
}

// Vault shreds key owners and opens readings for aggregation.
type Vault interface {
	Shred(ctx context.Context, ownerID string) error
	OpenReadings(ownerID, deviceID string, rs []store.Reading) error
}

// Config wires a Service.
type Config struct {
	Store  Store
	Vault  Vault
	Log    auditlog.Recorder // optional: records every erasure
	Logger *slog.Logger
	// Erased is told which devices were erased, so their connections end
	// and caches forget them.
	Erased func(deviceIDs []string)
	// ReadingsDeleted, if set, is told which devices lost readings to a
	// range deletion or an unlinking, so copies held elsewhere (an app's
	// last value) go too.
	ReadingsDeleted func(deviceIDs []string)
	// Shredded, if set, is told each key owner whose keys were destroyed,
	// so copies held elsewhere (another hub node's vault) go too.
	Shredded func(ownerID string)
	// AccountDeleted is told after an account was removed.
	AccountDeleted func(ctx context.Context)
	// HouseholdDeleted is told after a household was removed (its
	// recipient endpoints went with it: forwarding should stop).
	HouseholdDeleted func(ctx context.Context, householdID string)
	// Reclaim, if set, returns freed file pages to the file system after a
	// purge pass (sqlite.DB.ReclaimSpace).
	Reclaim func(ctx context.Context, maxPages int) (int64, error)
	// Grace is how long a full purge stays queued after its last pass, to
	// catch readings that were in flight when the device was erased.
	// Default one minute.
	Grace time.Duration
	Now   func() time.Time
}

// deleteTimeout bounds an account deletion once started, whatever its
// caller's context does. Unlinking reads the whole history first, so it is
// generous; the steps after the first write take well under a second.
const deleteTimeout = 10 * time.Minute

// Service carries out erasures.
type Service struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}
	mu   sync.Mutex // one erasure at a time: plans must not interleave
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1)}
}

// Report says what an erasure did, in counts and ids only.
type Report struct {
	DevicesErased    []string `json:"devices_erased"`
	KeysShredded     []string `json:"keys_shredded"` // key owner ids
	HouseholdDeleted bool     `json:"household_deleted"`
	ShredTime        string   `json:"shred_time,omitempty"` // how long destroying the keys took
	// KeyRemnants lists the key owners whose keys are destroyed but whose
	// old copies the database could not yet overwrite in its write-ahead
	// log (a reader kept it busy); they go as the log is reused.
	KeyRemnants      []string `json:"key_copies_may_remain,omitempty"`
	ReadingsUnlinked int64    `json:"readings_unlinked"`
	CellsKept        int      `json:"aggregate_cells_kept"`
	CellsSuppressed  int      `json:"aggregate_cells_suppressed"`
	// Skipped are the devices left as they were, each with the reason.
	Skipped []Skipped `json:"skipped,omitempty"`
	At      time.Time `json:"at"`
}

// Skipped is a device an unlinking left as it was, and why.
type Skipped struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason"`
}

// DeleteOptions are the person's choices for deleting their account.
type DeleteOptions struct {
	// Unlink keeps the erased devices' history as anonymised aggregates
	// instead of losing it entirely.
	Unlink bool
}

// DeleteAccount deletes acc: erases the devices whose readings are sealed
// under the person's keys (and, for the household's last member, every
// device of the household), optionally unlinks their history first,
// shreds the keys, removes the account and its sessions, and queues the
// rows for background removal. It refuses, changing nothing, when the
// person is the only owner of a household others still belong to, or the
// hub's only administrator while other accounts exist.
//
// It can be retried after a failure: each step is idempotent.
//
// The deletion runs to its end even when ctx is cancelled (a browser that
// closed the tab): stopping between erasing the devices and shredding the
// keys would leave the account half deleted, its keys still able to open
// the readings it asked to destroy. deleteTimeout bounds it instead.
func (s *Service) DeleteAccount(ctx context.Context, acc store.Account, opt DeleteOptions) (Report, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := Report{At: s.cfg.Now().UTC(), DevicesErased: []string{}, KeysShredded: []string{}}
	members, err := s.cfg.Store.Accounts(ctx, acc.HouseholdID)
	if err != nil {
		return rep, fmt.Errorf("delete account: list members: %w", err)
	}
	last := len(members) <= 1
	if err := s.checkLeave(ctx, acc, members, last); err != nil {
		return rep, err
	}
	devs, err := s.cfg.Store.Devices(ctx, acc.HouseholdID)
	if err != nil {
		return rep, fmt.Errorf("delete account: list devices: %w", err)
	}
	var erase []store.Device
	for _, d := range devs {
		if d.KeyOwner == acc.ID || last {
			erase = append(erase, d)
		}
	}

	e := store.Erasure{Reason: "account deleted", At: rep.At}
	if opt.Unlink {
		agg, err := s.aggregate(ctx, erase, nil)
		if err != nil {
			return rep, err
		}
		e.Aggregates, rep.CellsKept, rep.CellsSuppressed, rep.ReadingsUnlinked = agg.result()
	}
	for _, d := range erase {
		e.DeleteDevices = append(e.DeleteDevices, d.ID)
	}
	// Devices first: from here on they cannot log in or be listed, and
	// their sessions end below. The readings stay until the purge, but
	// after the shred nobody can read them.
	if err := s.cfg.Store.Erase(ctx, e); err != nil {
		return rep, fmt.Errorf("delete account: %w", err)
	}
	rep.DevicesErased = append(rep.DevicesErased, e.DeleteDevices...)
	if s.cfg.Erased != nil && len(e.DeleteDevices) > 0 {
		s.cfg.Erased(e.DeleteDevices)
	}

	owners := []string{acc.ID}
	if last {
		owners = append(owners, acc.HouseholdID)
	}
	start := time.Now()
	for _, o := range owners {
		err := s.cfg.Vault.Shred(ctx, o)
		if (err == nil || errors.Is(err, store.ErrKeyRemnants)) && s.cfg.Shredded != nil {
			s.cfg.Shredded(o)
		}
		if errors.Is(err, store.ErrKeyRemnants) {
			// The keys are destroyed; only old copies in the store's log
			// could not be overwritten yet. The deletion carries on, and
			// the report and the transparency log say what was not done.
			s.log.Error("account deleted, but copies of its destroyed keys may remain in the database's write-ahead log",
				"account", acc.ID, "key_owner", o, "err", err)
			rep.KeyRemnants = append(rep.KeyRemnants, o)
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("delete account: destroy keys: %w", err)
		}
	}
	rep.ShredTime = time.Since(start).String()
	rep.KeysShredded = owners

	if err := s.cfg.Store.DeleteAccount(ctx, acc.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return rep, fmt.Errorf("delete account: %w", err)
	}
	if s.cfg.AccountDeleted != nil {
		s.cfg.AccountDeleted(ctx)
	}
	if last {
		if err := s.cfg.Store.DeleteHousehold(ctx, acc.HouseholdID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return rep, fmt.Errorf("delete account: remove household: %w", err)
		}
		rep.HouseholdDeleted = true
		if s.cfg.HouseholdDeleted != nil {
			s.cfg.HouseholdDeleted(ctx, acc.HouseholdID)
		}
	}
	s.log.Info("account deleted", "account", acc.ID, "household", acc.HouseholdID,
		"devices", len(rep.DevicesErased), "household_deleted", rep.HouseholdDeleted, "unlinked", opt.Unlink)
	detail := map[string]string{
		"devices_erased":    strconv.Itoa(len(rep.DevicesErased)),
		"keys_shredded":     strings.Join(owners, ","),
		"household_deleted": strconv.FormatBool(rep.HouseholdDeleted),
		"unlinked":          strconv.FormatBool(opt.Unlink),
	}
	if len(rep.KeyRemnants) > 0 {
		detail["key_remnants"] = strings.Join(rep.KeyRemnants, ",")
	}
	if err := s.record(ctx, acc, auditlog.ActionAccountDelete, "the person deleted their account", detail); err != nil {
		return rep, err
	}
	s.Kick()
	return rep, nil
}

// checkLeave refuses a deletion that would leave others locked out.
func (s *Service) checkLeave(ctx context.Context, acc store.Account, members []store.Account, last bool) error {
	if !last && acc.Role == store.RoleOwner {
		owners := 0
		for _, m := range members {
			if m.Role == store.RoleOwner {
				owners++
			}
		}
		if owners <= 1 {
			return ErrRefused.Errorf("you are the only owner of a household other people still belong to: make another member an owner first, so the household is not left without one")
		}
	}
	if !acc.Admin {
		return nil
	}
	hhs, err := s.cfg.Store.Households(ctx)
	if err != nil {
		return fmt.Errorf("delete account: list households: %w", err)
	}
	others, admins := 0, 0
	for _, hh := range hhs {
		accs, err := s.cfg.Store.Accounts(ctx, hh.ID)
		if err != nil {
			return fmt.Errorf("delete account: list accounts: %w", err)
		}
		for _, a := range accs {
			if a.ID == acc.ID {
				continue
			}
			others++
			if a.Admin {
				admins++
			}
		}
	}
	if others > 0 && admins == 0 {
		return ErrRefused.Errorf("you are the hub's only administrator and %d other accounts depend on the hub: they would be left without anyone who can manage it", others)
	}
	return nil
}

// UnlinkOptions select what to unlink.
type UnlinkOptions struct {
	// DeviceIDs limits the unlinking to these devices; empty means every
	// device the person controls.
	DeviceIDs []string
}

// Unlink replaces the history of the person's devices with anonymised
// aggregates: the cells are stored and, in the same transaction, the raw
// readings up to now are queued for removal. Devices stay, and so does
// what they send from now on. The person controls a device whose readings
// are sealed under their keys, and, as a household owner, its shared
// devices.
func (s *Service) Unlink(ctx context.Context, acc store.Account, opt UnlinkOptions) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := Report{At: s.cfg.Now().UTC(), DevicesErased: []string{}, KeysShredded: []string{}}
	devs, err := s.cfg.Store.Devices(ctx, acc.HouseholdID)
	if err != nil {
		return rep, fmt.Errorf("unlink: list devices: %w", err)
	}
	controls := access.Person(acc, store.Session{}).CanUnlink
	var chosen []store.Device
	if len(opt.DeviceIDs) == 0 {
		for _, d := range devs {
			if controls(d) {
				chosen = append(chosen, d)
			}
		}
	} else {
		for _, id := range opt.DeviceIDs {
			i := slices.IndexFunc(devs, func(d store.Device) bool { return d.ID == id })
			if i < 0 {
				return rep, fmt.Errorf("unlink: device %s: %w", id, store.ErrNotFound)
			}
			if !controls(devs[i]) {
				return rep, ErrRefused.Errorf("device %s belongs to another member of the household; only they (or, for a shared device, an owner) can unlink its history", id)
			}
			chosen = append(chosen, devs[i])
		}
	}
	if n, err := s.Households(ctx); err != nil {
		return rep, err
	} else if n < MinCellHouseholds {
		return rep, ErrRefused.Errorf("this hub has %d household(s), and a summary must mix at least %d households to hide yours, so nothing can be kept anonymously here; delete the history instead", n, MinCellHouseholds)
	}
	maxSeq := map[string]int64{}
	agg, err := s.aggregate(ctx, chosen, maxSeq)
	if err != nil {
		return rep, err
	}
	rep.Skipped = agg.skipped
	chosen = slices.DeleteFunc(chosen, func(d store.Device) bool {
		return slices.ContainsFunc(agg.skipped, func(sk Skipped) bool { return sk.DeviceID == d.ID })
	})
	e := store.Erasure{Reason: "unlinked into anonymised aggregates", At: rep.At}
	e.Aggregates, rep.CellsKept, rep.CellsSuppressed, rep.ReadingsUnlinked = agg.result()
	for _, d := range chosen {
		if seq := maxSeq[d.ID]; seq > 0 {
			e.Purges = append(e.Purges, store.Purge{DeviceID: d.ID, UntilSeq: seq})
		}
	}
	if err := s.cfg.Store.Erase(ctx, e); err != nil {
		return rep, fmt.Errorf("unlink: %w", err)
	}
	ids := make([]string, len(chosen))
	for i, d := range chosen {
		ids[i] = d.ID
	}
	if s.cfg.ReadingsDeleted != nil {
		s.cfg.ReadingsDeleted(ids)
	}
	s.log.Info("history unlinked", "account", acc.ID, "devices", len(chosen), "readings", rep.ReadingsUnlinked, "cells", rep.CellsKept)
	if err := s.record(ctx, acc, auditlog.ActionDataDelete, "the person unlinked their history into anonymised aggregates", map[string]string{
		"devices":               strings.Join(ids, ","),
		"readings_unlinked":     strconv.FormatInt(rep.ReadingsUnlinked, 10),
		"aggregate_cells":       strconv.Itoa(rep.CellsKept),
		"cells_suppressed":      strconv.Itoa(rep.CellsSuppressed),
		"min_readings_per_cell": strconv.Itoa(MinCellCount),
		"min_households":        strconv.Itoa(MinCellHouseholds),
		"devices_skipped":       strconv.Itoa(len(rep.Skipped)),
	}); err != nil {
		return rep, err
	}
	s.Kick()
	return rep, nil
}

func (s *Service) record(ctx context.Context, acc store.Account, action, purpose string, detail map[string]string) error {
	if s.cfg.Log == nil {
		return nil
	}
	ev := auditlog.Event{Action: action, Household: acc.HouseholdID, Subject: auditlog.Subject{Account: acc.ID},
		Purpose: purpose, Detail: detail}
	if err := s.cfg.Log.Record(ctx, ev); err != nil {
		return fmt.Errorf("record %s in the transparency log: %w", action, err)
	}
	return nil
}

// cellKey names one aggregate cell.
type cellKey struct {
	deviceType, stream, field string
	hour                      int64 // unix seconds of the UTC hour
}

type cellSum struct {
	n          int64
	sum        float64
	households map[string]struct{}
}

type aggregation struct {
	cells    map[cellKey]*cellSum
	readings int64
	// skipped are devices whose history the hub cannot read (sealed
	// under a key only their owner holds); nothing of them is summed.
	skipped []Skipped
}

// Households returns how many households the hub has: fewer than
// MinCellHouseholds means nothing can be kept anonymously.
func (s *Service) Households(ctx context.Context) (int, error) {
	hs, err := s.cfg.Store.Households(ctx)
	if err != nil {
		return 0, fmt.Errorf("count households: %w", err)
	}
	return len(hs), nil
}

// aggregate reads every reading of devs (decrypting them) and sums the
// cells. maxSeq, if not nil, receives each device's highest seq read. A
// device whose history only its owner's own key opens (user-held mode)
// is skipped with the reason, and nothing of it is summed.
func (s *Service) aggregate(ctx context.Context, devs []store.Device, maxSeq map[string]int64) (*aggregation, error) {
	agg := &aggregation{cells: map[cellKey]*cellSum{}}
	for _, d := range devs {
		dev, last, err := s.aggregateDevice(ctx, d)
		if errors.Is(err, vault.ErrUserHeld) {
			agg.skipped = append(agg.skipped, Skipped{DeviceID: d.ID,
				Reason: "its history is locked with its owner's own key, so the hub cannot sum it up; it was left as it was"})
			continue
		}
		if err != nil {
			return nil, err
		}
		agg.readings += dev.readings
		for k, c := range dev.cells {
			a := agg.cells[k]
			if a == nil {
				a = &cellSum{households: map[string]struct{}{}}
				agg.cells[k] = a
			}
			a.n += c.n
			a.sum += c.sum
			a.households[d.HouseholdID] = struct{}{}
		}
		if maxSeq != nil && last > 0 {
			maxSeq[d.ID] = last
		}
	}
	return agg, nil
}

// aggregateDevice sums one device's history, and returns the highest seq
// it read.
func (s *Service) aggregateDevice(ctx context.Context, d store.Device) (*aggregation, int64, error) {
	agg := &aggregation{cells: map[cellKey]*cellSum{}}
	var fields map[string]any
	var after int64
	for {
		rs, err := s.cfg.Store.Readings(ctx, store.ReadingQuery{DeviceID: d.ID, AfterSeq: after, Limit: 5000})
		if err != nil {
			return nil, 0, fmt.Errorf("unlink: read history of device %s: %w", d.ID, err)
		}
		if len(rs) == 0 {
			return agg, after, nil
		}
		if err := s.cfg.Vault.OpenReadings(d.KeyOwnerID(), d.ID, rs); err != nil {
			if errors.Is(err, vault.ErrUserHeld) {
				return nil, 0, err
			}
			return nil, 0, ErrRefused.Errorf("the hub cannot read the history of device %s to summarise it (%w); delete the history instead of unlinking it", d.ID, err)
		}
		for i := range rs {
			r := &rs[i]
			after = r.Seq
			clear(fields)
			if json.Unmarshal(r.Payload, &fields) != nil {
				continue // not an object: nothing to summarise
			}
			agg.readings++
			hour := r.Time.UTC().Truncate(time.Hour).Unix()
			for f, v := range fields {
				var x float64
				switch v := v.(type) {
				case float64:
					x = v
				case bool:
					if v {
						x = 1
					}
				default:
					continue
				}
				k := cellKey{d.Type, r.Stream, f, hour}
				c := agg.cells[k]
				if c == nil {
					c = &cellSum{}
					agg.cells[k] = c
				}
				c.n++
				c.sum += x
			}
		}
	}
}

// result returns the cells to keep, in a fixed order, with counts of kept
// and suppressed cells and of readings summarised.
func (a *aggregation) result() (out []store.Aggregate, kept, suppressed int, readings int64) {
	for k, c := range a.cells {
		if c.n < MinCellCount || len(c.households) < MinCellHouseholds {
			suppressed++
			continue
		}
		out = append(out, store.Aggregate{DeviceType: k.deviceType, Stream: k.stream, Field: k.field,
			Hour: time.Unix(k.hour, 0).UTC(), Count: c.n, Sum: c.sum})
	}
	slices.SortFunc(out, func(x, y store.Aggregate) int {
		return cmpAgg(x, y)
	})
	return out, len(out), suppressed, a.readings
}

func cmpAgg(x, y store.Aggregate) int {
	if c := strings.Compare(x.DeviceType, y.DeviceType); c != 0 {
		return c
	}
	if c := strings.Compare(x.Stream, y.Stream); c != 0 {
		return c
	}
	if c := strings.Compare(x.Field, y.Field); c != 0 {
		return c
	}
	return x.Hour.Compare(y.Hour)
}

// DeleteRange deletes a device's readings matching q's Stream, Since and
// Until (all of them when those are zero), in bounded chunks, and records
// the deletion in the transparency log (counts, never values). An
// interrupted deletion leaves the data consistent and can be repeated.
// Checking that the caller may manage the device is the caller's job.
func (s *Service) DeleteRange(ctx context.Context, d store.Device, q store.ReadingQuery) (int64, error) {
	q = store.ReadingQuery{DeviceID: d.ID, Stream: q.Stream, Since: q.Since, Until: q.Until}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return 0, fmt.Errorf("%w: delete readings of device %s: since is after until", ErrRefused, d.ID)
	}
	var total int64
	for {
		n, err := s.cfg.Store.DeleteReadings(ctx, q, chunk)
		total += n
		if err != nil {
			return total, fmt.Errorf("delete readings: %w", err)
		}
		if n < chunk {
			break
		}
	}
	if s.cfg.Log != nil {
		ev := auditlog.Event{Action: auditlog.ActionDataDelete, Household: d.HouseholdID,
			Subject: auditlog.Subject{Device: d.ID, Stream: q.Stream, From: q.Since, To: q.Until},
			Purpose: "deletion requested by the household", Detail: map[string]string{"readings": strconv.FormatInt(total, 10)}}
		if err := s.cfg.Log.Record(ctx, ev); err != nil {
			return total, fmt.Errorf("record the deletion in the transparency log: %w", err)
		}
	}
	if s.cfg.ReadingsDeleted != nil {
		s.cfg.ReadingsDeleted([]string{d.ID})
	}
	if total > 0 {
		s.Kick() // reclaim the space
	}
	return total, nil
}
