package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/candor-iot/candor/internal/access"
)

// Restricter puts a device on hold until a flaw is fixed. The actor comes
// from the context; the monitor's quarantine records it.
type Restricter interface {
	Restrict(ctx context.Context, deviceID, advisoryID string) error
}

// restrictDevice puts a device an advisory concerns on hold until it is
// fixed: it then only receives its control topic. An owner lifts it with
// POST /api/v1/devices/{id}/release; the hub lifts it when the device
// reports a fixed version.
func (s *Server) restrictDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.Restrict == nil {
		s.fail(w, r, errUnavailable.Errorf("this hub cannot put devices on hold"))
		return
	}
	var in struct {
		Advisory string `json:"advisory"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Advisory = strings.TrimSpace(in.Advisory); in.Advisory == "" {
		s.fail(w, r, badRequest("advisory: name the advisory the device is held for"))
		return
	}
	if err := s.cfg.Restrict.Restrict(r.Context(), d.ID, in.Advisory); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"restricted": d.ID, "advisory": in.Advisory})
}
