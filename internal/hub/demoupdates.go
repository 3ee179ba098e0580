package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/updates/repo"
)

// The demo's update repository: made at the first start of --demo with
// the same tool makers use (internal/updates/repo), holding a newer
// thermostat firmware, a security update that fixes the demo advisory.
// The simulated thermostat runs the affected 1.3.0, so the demo shows the
// advisory, the signed fix offered automatically, the device downloading
// and checking it, and the advisory closing once 1.4.2 is reported.
const (
	demoRepoDir      = "demo-updates"
	demoFixVersion   = "1.4.2"
	demoFixAdvisory  = "CANDOR-DEMO-2026-0001"
	demoTargetPrefix = "thermostat/"
	// demoResign re-signs the demo repository's timestamp, which lives a
	// day, so a demo left running is never refused as frozen.
	demoResign = 12 * time.Hour
)

// openDemoRepo opens the demo repository, creating it the first time,
// and re-signs its metadata so none of it has expired since the last run.
func openDemoRepo(dir string) (*repo.Repo, error) {
	r, err := repo.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return createDemoRepo(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open demo update repository: %w", err)
	}
	if err := r.Publish(); err != nil {
		return nil, fmt.Errorf("re-sign demo update repository: %w", err)
	}
	return r, nil
}

func createDemoRepo(dir string) (*repo.Repo, error) {
	// A half-made repository from an interrupted first start is made again.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	r, err := repo.Init(dir)
	if err != nil {
		return nil, fmt.Errorf("create demo update repository: %w", err)
	}
	custom, err := json.Marshal(map[string]updates.Release{"candor": {DeviceType: "thermostat", Version: demoFixVersion, Security: true,
		Fixes: []string{demoFixAdvisory}, Notes: "The thermostat now checks who sends a new set point, so no one else on your network can change it."}})
	if err != nil {
		return nil, err
	}
	image := []byte("Candor demo thermostat firmware " + demoFixVersion + "\n")
	if err := r.Add(demoTargetPrefix+"t1-"+demoFixVersion+".bin", image, custom); err != nil {
		return nil, fmt.Errorf("create demo update repository: %w", err)
	}
	if err := r.Publish(); err != nil {
		return nil, fmt.Errorf("create demo update repository: %w", err)
	}
	return r, nil
}

// demoRepoPath is where the hub's own HTTP listener serves the demo
// repository: a stable path on the hub's address, not a port that changes
// at each start.
const demoRepoPath = "/demo-updates/"

// demoRepoHandler serves the demo repository's public metadata and images
// under demoRepoPath once --demo has opened it, and 404 before (and
// without --demo).
func (h *Hub) demoRepoHandler() http.Handler {
	return http.StripPrefix(strings.TrimSuffix(demoRepoPath, "/"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir := h.demoRepoFiles.Load()
		if dir == nil {
			http.NotFound(w, r)
			return
		}
		http.FileServer(http.Dir(*dir)).ServeHTTP(w, r)
	}))
}

// serveDemoRepo serves the repository's public metadata and images until
// ctx ends, re-signing the timestamp on schedule, and names it to the
// updates service as the thermostat's repository. A hub serving plain
// HTTP serves it on its own listener under /demo-updates/; a hub serving
// HTTPS (whose certificate the update client need not trust) on a
// loopback port. The manifest is left alone: the repository's root keys
// are made at the first start of each hub, so no manifest shipped with
// Candor can pin them.
func (h *Hub) serveDemoRepo(ctx context.Context) (stop func(), err error) {
	r, err := openDemoRepo(filepath.Join(h.cfg.DataDir, demoRepoDir))
	if err != nil {
		return nil, err
	}
	root, err := r.Root()
	if err != nil {
		return nil, err
	}
	metadataURL, stopServer := "", func() {}
	if h.tls == nil {
		dir := r.PublicDir()
		h.demoRepoFiles.Store(&dir)
		metadataURL = h.URL() + strings.TrimSuffix(demoRepoPath, "/")
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("demo update repository: %w", err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir(r.PublicDir())), ReadHeaderTimeout: 10 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error("demo update repository", "err", err)
			}
		}()
		metadataURL, stopServer = "http://"+ln.Addr().String(), func() { _ = srv.Close(); <-done }
	}
	ctx, cancel := context.WithCancel(ctx)
	resigned := make(chan struct{})
	go func() {
		defer close(resigned)
		t := time.NewTicker(demoResign)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.RefreshTimestamp(); err != nil {
					h.log.Error("re-sign demo update timestamp", "err", err)
				}
			}
		}
	}()
	h.demoUpdates.Store(&updates.Source{MetadataURL: metadataURL, TargetPrefix: demoTargetPrefix, TrustedRoot: root})
	return func() {
		cancel()
		<-resigned
		stopServer()
	}, nil
}
