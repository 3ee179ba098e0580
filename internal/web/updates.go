package web

import (
	"time"

	"github.com/candor-iot/candor/internal/updates"
)

// Updates tells the device page where a device is with its firmware
// updates (the updates service).
type Updates interface {
	Status(deviceID string) (updates.State, bool)
}

// updateView is the device page's "Updates" section.
type updateView struct {
	Installed string
	Version   string // the update waiting or in progress
	Notes     string
	Security  bool
	Fixes     []string
	Status    string // in plain words
	Refusal   string // why the hub refused an update, in plain words
	Automatic bool
	// The owner's controls: shown when Controls is true.
	Controls    bool
	DeviceID    string
	CSRF        string
	CanInstall  bool // an update waits (not yet offered, put off, or failed)
	CanPostpone bool // an update waits or was offered and not yet started
	Postponed   time.Time
	Days        []int
}

// updateStatusWords says a stage in plain words.
var updateStatusWords = map[string]string{
	updates.StatusNone:               "No update from the maker yet.",
	updates.StatusUnknown:            "The device has not told the hub which firmware it runs, so the hub cannot offer updates yet.",
	updates.StatusUpToDate:           "It runs the newest firmware its maker signed.",
	updates.StatusAvailable:          "An update is ready. An owner can install it.",
	updates.StatusPostponed:          "An owner put this update off for now.",
	updates.StatusOffered:            "The hub has offered the update. The device has not started yet.",
	updates.StatusRefused:            "The hub refused an update.",
	string(updates.StageDownloading): "The device is getting the update.",
	string(updates.StageVerified):    "The device checked the update. It is the one the maker signed.",
	string(updates.StageInstalling):  "The device is installing the update.",
	string(updates.StageInstalled):   "The update is installed.",
	string(updates.StageFailed):      "The device could not install the update.",
}

func (s *Server) updateView(deviceID string) *updateView {
	if s.cfg.Updates == nil {
		return nil
	}
	st, ok := s.cfg.Updates.Status(deviceID)
	if !ok {
		return &updateView{Status: updateStatusWords[updates.StatusNone], Automatic: true}
	}
	v := &updateView{Installed: st.Installed, Status: updateStatusWords[st.Stage], Automatic: st.Automatic, Postponed: st.Postponed}
	if st.Available != nil {
		switch st.Stage {
		case updates.StatusAvailable, updates.StatusPostponed, string(updates.StageFailed):
			v.CanInstall = true
		}
		v.CanPostpone = st.Stage == updates.StatusAvailable || st.Stage == updates.StatusOffered
	}
	if st.Stage == updates.StatusRefused {
		v.Refusal = st.Plain
	}
	if a := st.Available; a != nil {
		v.Version, v.Notes, v.Security, v.Fixes = a.Version, a.Notes, a.Security, a.Fixes
	}
	return v
}

// updatesKnown tells whether the updates service follows the device even
// though its manifest names no repository (the demo's own repository).
func (s *Server) updatesKnown(deviceID string) bool {
	if s.cfg.Updates == nil {
		return false
	}
	st, ok := s.cfg.Updates.Status(deviceID)
	return ok && st.Stage != "" && st.Stage != updates.StatusNone
}
