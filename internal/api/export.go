package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/export"
)

// exportData streams the household's data as a documented ZIP archive
// (package export: README.txt, per-stream CSV and SenML, manifests,
// consent records, the person's transparency-log entries with proofs, and
// index.json with the SHA-256 of every file). The export service checks
// and records the export before a byte is written; memory stays constant
// whatever the history size.
func (s *Server) exportData(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("an export is a person's: log in as a member of the household"))
		return
	}
	ctx := r.Context()
	ex, err := s.exports.Prepare(ctx, p.Account)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now().UTC()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="candor-export-%s.zip"`, now.Format("20060102-150405")))
	w.Header().Set("Cache-Control", "no-store")
	if err := ex.Write(ctx, w, now); err != nil {
		// The archive is incomplete and unreadable (no central directory):
		// the client sees a broken download and can retry.
		s.log.Error("export failed", "account", p.Account.ID, "err", err)
	}
}

// defaultExports builds the export service from the API's own parts, for
// an API wired without one. Nil pointers stay out of its interfaces, so
// that the service sees them as absent.
func defaultExports(cfg Config) *export.Service {
	sc := export.ServiceConfig{Store: cfg.Store, Catalog: cfg.Catalog, Opener: cfg.Vault, IdentityOpener: cfg.IdentityOpener}
	if cfg.Keys != nil {
		sc.Keys = cfg.Keys
	}
	if cfg.Consent != nil {
		sc.Consent = cfg.Consent
	}
	if cfg.Log != nil {
		sc.Log, sc.Recorder = cfg.Log, cfg.Log
	}
	return export.NewService(sc)
}
