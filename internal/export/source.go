package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// householdSource feeds a person's household data to the archive,
// decrypting readings as it pages through them (constant memory).
type householdSource struct {
	cfg     *ServiceConfig
	acc     store.Account
	devices map[string]store.Device
	// identity, if set, opens what the hub cannot (user-held keys).
	identity age.Identity
}

func (s *Service) source(acc store.Account, identity age.Identity) Source {
	return &householdSource{cfg: &s.cfg, acc: acc, identity: identity}
}

func (x *householdSource) Devices(ctx context.Context) ([]Device, error) {
	list, err := x.cfg.Store.Devices(ctx, x.acc.HouseholdID)
	if err != nil {
		return nil, err
	}
	x.devices = make(map[string]store.Device, len(list))
	out := make([]Device, 0, len(list))
	for _, d := range list {
		x.devices[d.ID] = d
		var versions []int
		if vs, err := x.cfg.Catalog.Versions(ctx, d.Type); err == nil {
			for _, v := range vs {
				if !v.Draft {
					versions = append(versions, v.Version)
				}
			}
		}
		out = append(out, Device{ID: d.ID, Name: d.Name, Type: d.Type, ManifestVersions: versions})
	}
	return out, nil
}

func (x *householdSource) Manifest(ctx context.Context, deviceType string, version int) ([]byte, error) {
	e, err := x.cfg.Catalog.Version(ctx, deviceType, version)
	if err != nil {
		return nil, err
	}
	return e.Manifest.Raw, nil
}

func (x *householdSource) Readings(ctx context.Context, deviceID, stream string, afterSeq int64, limit int) ([]store.Reading, error) {
	d, ok := x.devices[deviceID]
	if !ok {
		return nil, fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
	}
	list, err := x.cfg.Store.Readings(ctx, store.ReadingQuery{DeviceID: deviceID, Stream: stream, AfterSeq: afterSeq, Limit: limit})
	if err != nil {
		return nil, err
	}
	if x.cfg.Opener == nil {
		return list, nil
	}
	err = x.cfg.Opener.OpenReadings(d.KeyOwnerID(), d.ID, list)
	if errors.Is(err, vault.ErrUserHeld) && x.identity != nil && x.cfg.IdentityOpener != nil {
		// Readings the hub opened are plain now and are skipped.
		err = x.cfg.IdentityOpener.OpenReadingsWithIdentity(d.KeyOwnerID(), d.ID, list, x.identity)
		if errors.Is(err, vault.ErrWrongIdentity) {
			// No device name: this text also goes to the hub's log.
			err = &LockedError{Msg: "the age identity you gave does not open the key of some of this history; export with the identity that does, or without one after switching back to hub-assisted mode"}
		}
	}
	if errors.Is(err, vault.ErrUserHeld) {
		err = &LockedError{Msg: "some of this history is locked with a key only its owner holds (user-held mode); give the age identity with the export, or switch back to hub-assisted mode"}
	}
	if err != nil {
		return nil, err
	}
	return list, nil
}

// StreamCounts counts in the store, reading no reading, if the store can
// (errors.ErrUnsupported if not).
func (x *householdSource) StreamCounts(ctx context.Context, deviceID string, until time.Time) (map[string]int64, error) {
	if _, ok := x.devices[deviceID]; !ok {
		return nil, fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
	}
	sc, ok := x.cfg.Store.(StreamCounter)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.StreamCounts(ctx, deviceID, until)
}

func (x *householdSource) ConsentRecords(ctx context.Context) ([][]byte, error) {
	if x.cfg.Consent == nil {
		return nil, nil
	}
	// Devices in id order, so the same data gives the same archive.
	ids := make([]string, 0, len(x.devices))
	for id := range x.devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out [][]byte
	for _, id := range ids {
		recs, err := x.cfg.Consent.History(ctx, consent.HistoryQuery{DeviceID: id})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			b, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// AuditLog streams the entries the person may see (access decides: their
// household's, and those about or by them), with their inclusion proofs.
func (x *householdSource) AuditLog(ctx context.Context) (io.ReadCloser, error) {
	if x.cfg.Log == nil {
		return nil, nil
	}
	pr, pw := io.Pipe()
	p := access.Person(x.acc, store.Session{})
	go func() {
		_, err := x.cfg.Log.Export(ctx, pw, auditlog.ExportOptions{Proofs: true, Match: p.CanSeeEvent})
		pw.CloseWithError(err)
	}()
	return pr, nil
}
