package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// exportSource feeds a household's data to the export archive, decrypting
// readings as it pages through them (constant memory).
type exportSource struct {
	s       *Server
	p       access.Principal
	devices map[string]store.Device
	// identity, if set, opens what the hub cannot (user-held keys).
	identity age.Identity
}

func (x *exportSource) Devices(ctx context.Context) ([]export.Device, error) {
	list, err := x.s.st.Devices(ctx, x.p.Account.HouseholdID)
	if err != nil {
		return nil, err
	}
	x.devices = make(map[string]store.Device, len(list))
	out := make([]export.Device, 0, len(list))
	for _, d := range list {
		x.devices[d.ID] = d
		var versions []int
		if vs, err := x.s.cfg.Catalog.Versions(ctx, d.Type); err == nil {
			for _, v := range vs {
				if !v.Draft {
					versions = append(versions, v.Version)
				}
			}
		}
		out = append(out, export.Device{ID: d.ID, Name: d.Name, Type: d.Type, ManifestVersions: versions})
	}
	return out, nil
}

func (x *exportSource) Manifest(ctx context.Context, deviceType string, version int) ([]byte, error) {
	e, err := x.s.cfg.Catalog.Version(ctx, deviceType, version)
	if err != nil {
		return nil, err
	}
	return e.Manifest.Raw, nil
}

func (x *exportSource) Readings(ctx context.Context, deviceID, stream string, afterSeq int64, limit int) ([]store.Reading, error) {
	d, ok := x.devices[deviceID]
	if !ok {
		return nil, fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
	}
	list, err := x.s.st.Readings(ctx, store.ReadingQuery{DeviceID: deviceID, Stream: stream, AfterSeq: afterSeq, Limit: limit})
	if err != nil {
		return nil, err
	}
	err = x.s.openReadings(d, list)
	if errors.Is(err, errConflictUserHeld) && x.identity != nil && x.s.cfg.IdentityOpener != nil {
		// Readings the hub opened are plain now and are skipped.
		err = x.s.cfg.IdentityOpener.OpenReadingsWithIdentity(d.KeyOwnerID(), d.ID, list, x.identity)
		if errors.Is(err, vault.ErrWrongIdentity) {
			// No device name: this text also goes to the hub's log.
			err = &export.LockedError{Msg: "the age identity you gave does not open the key of some of this history; export with the identity that does, or without one after switching back to hub-assisted mode"}
		}
	}
	if errors.Is(err, errConflictUserHeld) {
		err = &export.LockedError{Msg: "some of this history is locked with a key only its owner holds (user-held mode); give the age identity with the export, or switch back to hub-assisted mode"}
	}
	if err != nil {
		return nil, err
	}
	return list, nil
}

func (x *exportSource) ConsentRecords(ctx context.Context) ([][]byte, error) {
	if x.s.cfg.Consent == nil {
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
		recs, err := x.s.cfg.Consent.History(ctx, consent.HistoryQuery{DeviceID: id})
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

func (x *exportSource) AuditLog(ctx context.Context) (io.ReadCloser, error) {
	if x.s.cfg.Log == nil {
		return nil, nil
	}
	pr, pw := io.Pipe()
	acc := x.p.Account
	go func() {
		_, err := x.s.cfg.Log.Export(ctx, pw, auditlog.ExportOptions{Proofs: true, Match: func(ev *auditlog.Event) bool {
			return ev.Household == acc.HouseholdID || ev.Subject.Account == acc.ID
		}})
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// recordExport notes in the transparency log that p takes a copy of the
// household's data. It is called before any data is read: an export that
// cannot be recorded is not made. Both the streamed export and export
// jobs (exportjobs.go) go through it.
func (s *Server) recordExport(ctx context.Context, p access.Principal) error {
	if s.cfg.Log == nil {
		return nil
	}
	ev := auditlog.Event{Action: auditlog.ActionReadingsExport, Household: p.Account.HouseholdID,
		Subject: auditlog.Subject{Account: p.Account.ID}, Purpose: "data export requested by the person"}
	if err := s.cfg.Log.Record(ctx, ev); err != nil {
		return fmt.Errorf("record the export in the transparency log: %w", err)
	}
	return nil
}

// exportData streams the household's data as a documented ZIP archive:
// README.txt, per-stream CSV and SenML, manifests, consent records, the
// person's transparency-log entries with proofs, and index.json with the
// SHA-256 of every file. Memory stays constant whatever the history size.
func (s *Server) exportData(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("an export is a person's: log in as a member of the household"))
		return
	}
	ctx := r.Context()
	if err := s.checkExportable(ctx, p.Account); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.recordExport(ctx, p); err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now().UTC()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="candor-export-%s.zip"`, now.Format("20060102-150405")))
	w.Header().Set("Cache-Control", "no-store")
	src := &exportSource{s: s, p: p}
	err := export.Write(ctx, w, src, export.Person{ID: p.Account.ID, Username: p.Account.Username}, now, nil)
	if err != nil {
		// The archive is incomplete and unreadable (no central directory):
		// the client sees a broken download and can retry.
		s.log.Error("export failed", "account", p.Account.ID, "err", err)
	}
}

// checkExportable refuses, before anything is written, an export the hub
// could not complete: history sealed under a key only its owner holds
// (user-held mode) cannot be put in it. Saying so up front beats a broken
// archive half way through.
func (s *Server) checkExportable(ctx context.Context, acc store.Account) error {
	if s.cfg.Keys == nil {
		return nil
	}
	devs, err := s.st.Devices(ctx, acc.HouseholdID)
	if err != nil {
		return err
	}
	if vault.AnyUserHeld(s.cfg.Keys, devs) {
		return fmt.Errorf("%w: %w", errConflictUserHeld, &export.LockedError{Msg: "some of this household's history is locked with a key only its owner holds (user-held mode), so the hub cannot put it in an export; switch back to hub-assisted mode with the age identity (PUT /api/v1/keys/me or /household, or My data, Your keys), then export again"})
	}
	return nil
}
