package hub

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/retention"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/postgres"
	"github.com/candor-iot/candor/internal/store/sqlite"
)

// hubStore is what the hub needs of a storage engine: the store.Store
// every engine implements (Close included), the household's apps, and
// giving space freed by retention and purges back after each purge pass.
type hubStore interface {
	store.Store
	store.AppStore
	ReclaimSpace(ctx context.Context, maxPages int) (int64, error)
}

var (
	_ hubStore = (*sqlite.DB)(nil)
	_ hubStore = (*postgres.DB)(nil)
	// The retention sweep skips the devices with nothing to delete.
	_ retention.Oldest = (*sqlite.DB)(nil)
	_ retention.Oldest = (*postgres.DB)(nil)
)

// openEngine opens the engine cfg.Store chooses: the embedded SQLite file
// in the data directory when it is empty, a PostgreSQL database for a
// postgres:// URL (config validation has refused anything else). The
// caller closes it.
func openEngine(ctx context.Context, cfg config.Config, log *slog.Logger) (hubStore, error) {
	if cfg.Store == "" {
		path := filepath.Join(cfg.DataDir, DBName)
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		log.Info("store opened", "engine", "sqlite", "path", path)
		return db, nil
	}
	db, err := postgres.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	log.Info("store opened", "engine", "postgres", "database", redactURL(cfg.Store))
	return db, nil
}

// redactURL is the store URL without its password, for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
