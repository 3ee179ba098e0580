package updates

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/candor-iot/candor/internal/store"
)

// StageStore keeps each device's update stage, so a restart of the hub
// neither forgets an update in progress nor offers it a second time.
type StageStore interface {
	PutUpdateStage(ctx context.Context, s store.UpdateStage) error
	UpdateStages(ctx context.Context) ([]store.UpdateStage, error)
}

// restorable are the stages a check after a restart keeps for the same
// image: the ones still waiting for the owner or the device. Anything
// else (installed, up to date, refused) is decided afresh.
var restorable = map[string]bool{
	StatusAvailable: true, StatusPostponed: true, StatusOffered: true, string(StageDownloading): true,
	string(StageVerified): true, string(StageInstalling): true, string(StageFailed): true,
}

// inProgress are the stages in which the device holds (or is about to
// fetch) an offer: after a restart the offer is made again, since it is
// kept in memory only (State.offer).
var inProgress = map[string]bool{
	StatusOffered: true, string(StageDownloading): true, string(StageVerified): true, string(StageInstalling): true,
}

// loadStages restores the stages kept in the store. The image itself is
// found again on the next check of the device's repository, by its hash.
func (s *Service) loadStages(ctx context.Context) error {
	if s.cfg.Stages == nil {
		return nil
	}
	rows, err := s.cfg.Stages.UpdateStages(ctx)
	if err != nil {
		return fmt.Errorf("load update stages: %w", err)
	}
	for _, r := range rows {
		st, ok := s.states[r.DeviceID]
		if !ok {
			st = &State{Device: r.DeviceID, Automatic: true}
			s.states[r.DeviceID] = st
		}
		st.Stage, st.Reason, st.Plain, st.FailCode, st.Updated = r.Stage, Reason(r.Reason), r.Plain, r.FailCode, r.UpdatedAt
		st.savedVersion, st.savedSHA = r.Version, r.SHA256
	}
	return nil
}

// saveStage writes a device's stage to the store. A store error is
// logged, not returned: the device's update goes on, and the stage is
// written again at its next change.
func (s *Service) saveStage(ctx context.Context, deviceID string) {
	if s.cfg.Stages == nil {
		return
	}
	s.mu.Lock()
	st, ok := s.states[deviceID]
	if !ok {
		s.mu.Unlock()
		return
	}
	row := store.UpdateStage{DeviceID: deviceID, Stage: st.Stage, Reason: string(st.Reason), Plain: st.Plain,
		FailCode: st.FailCode, UpdatedAt: st.Updated.UTC(), Version: st.savedVersion, SHA256: st.savedSHA}
	if st.target != nil {
		row.Version, row.SHA256 = st.target.Release.Version, st.target.SHA256
	}
	s.mu.Unlock()
	if row.Stage == "" {
		return
	}
	if err := s.cfg.Stages.PutUpdateStage(ctx, row); err != nil {
		s.log.ErrorContext(ctx, "keep update stage", "device", deviceID, "stage", row.Stage, "err", err)
	}
}

// reannounce publishes an offer restored after a restart again, without a
// new log entry: the offer was recorded when it was first made.
func (s *Service) reannounce(ctx context.Context, d Device, t *Target, cat *Catalog) error {
	msg, err := json.Marshal(offerMessage{Version: t.Release.Version, Path: t.Path, URL: s.FileURL(d.ID, t.SHA256),
		Length: t.Length, SHA256: t.SHA256, Security: t.Release.Security, Fixes: t.Release.Fixes, Targets: cat.TargetsMetadata})
	if err != nil {
		return err
	}
	s.mu.Lock()
	if st, ok := s.states[d.ID]; ok {
		st.offer = msg
	}
	s.mu.Unlock()
	s.cfg.Announce.OfferChanged(d.ID)
	s.log.InfoContext(ctx, "update offered again after a restart", "device", d.ID, "version", t.Release.Version)
	return nil
}

// FixInstalling reports whether an update that fixes advisoryID is on its
// way to the device (offered, or the device reports it is downloading,
// checking or installing it), so a finding can say so rather than "ready".
func (s *Service) FixInstalling(ctx context.Context, deviceID, advisoryID string) bool {
	if _, ok := s.FixReady(ctx, deviceID, advisoryID); !ok {
		return false
	}
	st, _ := s.Status(deviceID)
	return inProgress[st.Stage]
}
