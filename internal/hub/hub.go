// Package hub assembles a running Candor hub from its parts: the embedded
// store, the identity service, the ingest policy path, the MQTT broker, the
// HTTP API on the network and on a local control socket, and, on request,
// the demo household of simulated devices.
//
// It is the "one binary, nothing else to install" promise of the product
// (clause 4 of the IoT Good Practice paper: good practice within reach of
// households, not only of operators with a platform team).
package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/api"
	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/broker"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/firmware"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/operator"
	"github.com/candor-iot/candor/internal/retention"
	"github.com/candor-iot/candor/internal/tlscert"
	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/vault"
	"github.com/candor-iot/candor/internal/web"
)

// SocketName is the local control socket inside the data directory.
const SocketName = "candor.sock"

// DBName is the SQLite database inside the data directory.
const DBName = "candor.db"

// Signing keys in the data directory (package signkey): the consent
// receipt key in consent/ and the forwarding key in forward/. The
// forwarding key has the receipt key's file name because both used to be
// made by the consent package; a new name would orphan existing keys.
const (
	receiptKeyName = "consent-signing-key"
	forwardKeyName = "consent-signing-key"
)

// Hub is a running hub.
type Hub struct {
	cfg       config.Config
	log       *slog.Logger
	reg       *prometheus.Registry
	st        hubStore
	cat       *catalog.Catalog
	alog      *auditlog.Log
	consent   *consent.Service
	vault     *vault.Vault
	box       *vault.HubBox // seals second-factor secrets
	owners    *owners
	id        *identity.Service
	in        *ingest.Pipeline
	br        *broker.Broker
	controls  *controls // devices' control messages, from the hub's state
	api       *api.Server
	web       *web.Server
	retention *retention.Job
	exports   *export.Jobs
	erasure   *erasure.Service
	forward   *forward.Forwarder
	upd       *updates.Service
	apps      *apps.Service
	zb        *bridge.Service // the Zigbee2MQTT bridge
	demoApp   *demoApp        // the demo Home Assistant app's credential, for the banner
	http      server
	local     server
	httpLn    net.Listener
	sockLn    net.Listener
	tls       *tls.Config
	ca        *tlscert.CA // the hub's own authority, with --tls-self-signed
	moved     []string    // demo listeners moved off a taken default port
	export    *export.Service
	mon       *monitor.Monitor
	assess    *assess.Service
	// rec is where the services record: the log itself, or on a node
	// the deployment's log through mirror.
	rec    auditlog.Recorder
	mirror *cluster.LogMirror
	node   *cluster.Node // nil for a single hub (no --nats)
	// leader says whether this node runs the background jobs; nil for a
	// single hub, which always does.
	leader    *cluster.Leader
	leaderJob job
	jobStarts atomic.Int64 // background jobs started here, for tests
	nodeReady atomic.Bool  // the services exist: changes from other nodes apply
	// nodeBroker is the broker for NATS callbacks, set once it exists.
	nodeBroker nodeBroker

	operator   *operator.Service
	firmware   *firmware.Service
	advisories *advisories.Service

	// Background jobs, each stopped by its part: retention sweeps,
	// erasure purges, the demo, the monitor, update checks, the
	// security audit's schedule and advisory feed refreshes.
	sweeps, purges, demoJob, monJob, updJob, audits, feedJob job
	// demoUpdates is the demo's own update repository (--demo only);
	// updKick asks the update checks to look at one device now.
	demoUpdates atomic.Pointer[updates.Source]
	// demoRepoFiles is the demo repository's public directory, served
	// under /demo-updates/ on the hub's own listener (--demo, plain HTTP).
	demoRepoFiles atomic.Pointer[string]
	updKick       chan string

	setupToken string
	parts      parts
	closeOnce  sync.Once
	closeErr   error
}

// Start opens everything and begins serving. The banner (addresses and the
// one-time setup token, which is a secret and so never goes to the log) is
// written to out.
//
// The hub is a list of parts, started in order and stopped in reverse by
// Close, or as soon as a later part fails to start. So the list read
// backwards is the shutdown order, and it matters: the demo devices, the
// HTTP server, the control socket and the broker stop taking new work;
// the background jobs (retention sweeps, erasure purges) are waited for;
// running exports stop before the store they read; ingest commits what was
// accepted and hands it to forwarding, which stops next; then the vault,
// the transparency log and the store close.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) (*Hub, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	if cfg.MemoryLimitMiB > 0 {
		// Process-wide: a hub is the process's main work (see
		// config.Config.MemoryLimitMiB).
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	}
	h := &Hub{cfg: cfg, log: log, reg: prometheus.NewRegistry(), parts: parts{log: log.With("component", "hub")}}
	h.controls = newControls(h)
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	err := h.parts.start(ctx, []part{
		{name: "TLS certificate", start: h.loadTLS},
		{name: "store", start: h.openStore, stop: h.closeStore},
		{name: "transparency log", start: h.openAuditLog, stop: h.closeAuditLog},
		{name: "NATS", start: h.connectCluster, stop: h.leaveCluster},
		{name: "job leader election", start: h.startLeader, stop: h.leaderJob.wait},
		{name: "manifests", start: h.openCatalog},
		{name: "operator", start: h.openOperator},
		{name: "shared keys", start: h.checkSharedKeys},
		{name: "vault", start: h.openVault, stop: h.closeVault},
		{name: "consent", start: h.openConsent},
		{name: "forwarding", start: h.openForward, stop: h.stopForward},
		{name: "identity", start: h.openIdentity},
		{name: "abuse monitor", start: h.openMonitor, stop: h.monJob.wait},
		{name: "apps", start: h.openApps},
		{name: "ingest", start: h.openIngest, stop: h.stopIngest},
		{name: "zigbee2mqtt bridge", start: h.openBridge},
		{name: "exports", start: h.openExports, stop: h.closeExports},
		{name: "erasure", start: h.openErasure},
		{name: "retention sweeps", start: h.startSweeps, stop: h.sweeps.wait},
		{name: "erasure purges", start: h.startPurges, stop: h.purges.wait},
		{name: "firmware and advisories", start: h.openDeviceLife},
		{name: "hub nodes", start: h.joinCluster, stop: h.leaveNodes},
		{name: "broker", start: h.openBroker, stop: h.closeBroker},
		{name: "updates", start: h.openUpdates},
		{name: "assessments", start: h.openAssess},
		{name: "API and pages", start: h.openFrontEnds},
		{name: "control socket", start: h.serveControl, stop: h.local.stop},
		{name: "HTTP", start: h.serveHTTP, stop: h.http.stop},
		{name: "export jobs across nodes", start: h.serveExportJobs},
		{name: "security audit", start: h.startAudits, stop: h.audits.wait},
		{name: "MQTT", start: h.startMQTT},
		{name: "update checks", start: h.startUpdateChecks, stop: h.updJob.wait},
		{name: "advisory feeds", start: h.startFeedRefresh, stop: h.feedJob.wait},
		{name: "setup token", start: h.loadSetupToken},
		{name: "demo", start: h.startDemo, stop: h.demoJob.wait},
	})
	if err != nil {
		return nil, err
	}
	h.banner(out)
	log.Info("hub started", "http", h.HTTPAddr(), "mqtt", h.MQTTAddr(), "data", cfg.DataDir, "demo", cfg.Demo)
	return h, nil
}

// rootHandler serves the API on its own paths and the web pages on the
// rest. The control socket stays API-only.
func (h *Hub) rootHandler() http.Handler {
	apiH := h.api.Handler()
	mux := http.NewServeMux()
	for _, p := range []string{"/api/", "/livez", "/readyz", "/metrics", "/openapi.json", "/.well-known/security.txt"} {
		mux.Handle(p, apiH)
	}
	mux.Handle("/", h.web.Handler())
	mux.Handle(updates.FilePattern, h.upd.FileHandler(h.deviceAuth()))
	mux.Handle("GET "+demoRepoPath, h.demoRepoHandler())
	return h.confirming(h.exportJobRoutes(h.withTLSRoutes(mux)))
}

// addrHint tells the user what to do when a port is taken, which is the
// commonest start-up failure (another broker already on 1883).
func addrHint(err error, flag string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (another program, perhaps another MQTT broker or hub, uses that port: stop it or choose another address with %s)", err, flag)
	}
	return err
}

// listenSocket opens the control socket, readable only by the user running
// the hub: whoever can open it acts as the operator.
func listenSocket(path string) (net.Listener, error) {
	if c, err := net.Dial("unix", path); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("another hub is already running on data directory %s", filepath.Dir(path))
	}
	_ = os.Remove(path) // stale socket of a hub that did not shut down cleanly
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("restrict control socket %s: %w", path, err)
	}
	return ln, nil
}

// HTTPAddr is the bound HTTP address.
func (h *Hub) HTTPAddr() string { return h.httpLn.Addr().String() }

// MQTTAddr is the bound plain MQTT address ("" when disabled).
func (h *Hub) MQTTAddr() string { return h.br.Addr("tcp") }

// Broker returns the hub's MQTT broker.
func (h *Hub) Broker() *broker.Broker { return h.br }

// SetupToken is the live one-time setup token, or "" once set up.
func (h *Hub) SetupToken() string { return h.setupToken }

// URL is the base URL of the HTTP API and UI.
func (h *Hub) URL() string {
	scheme := "http"
	if h.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + h.HTTPAddr()
}

func (h *Hub) banner(out io.Writer) {
	if out == nil {
		return
	}
	fmt.Fprintf(out, "\nCandor hub is running.\n")
	fmt.Fprintf(out, "  Web UI:      %s/\n", h.URL())
	fmt.Fprintf(out, "  HTTP API:    %s/api/v1   (OpenAPI: %s/openapi.json)\n", h.URL(), h.URL())
	fmt.Fprintf(out, "  MQTT:        %s\n", orOff(h.MQTTAddr()))
	fmt.Fprintf(out, "  MQTT (TLS):  %s\n", orOff(h.br.Addr("tls")))
	fmt.Fprintf(out, "  MQTT (WS):   %s\n", orOff(h.br.Addr("ws")))
	fmt.Fprintf(out, "  Data:        %s\n", h.cfg.DataDir)
	h.caBanner(out)
	if h.setupToken != "" {
		fmt.Fprintf(out, "\nThis hub has no account yet. Open %s/ and create the first one with this one-time setup token:\n\n    %s\n\n", h.URL(), h.setupToken)
		fmt.Fprintf(out, "or with the API:\n")
		fmt.Fprintf(out, "  curl -X POST %s/api/v1/setup -H 'Content-Type: application/json' \\\n", h.URL())
		fmt.Fprintf(out, "    -d '{\"setup_token\":\"%s\",\"username\":\"you\",\"password\":\"<a long passphrase>\"}'\n", h.setupToken)
		fmt.Fprintf(out, "The token works once and dies when the hub restarts. There is no default password.\n")
	}
	if h.cfg.Demo {
		fmt.Fprintf(out, "\nDemo: simulated devices are publishing. Try:\n    go run ./cmd/candor device list --data %s\n    go run ./cmd/candor readings <device-id> --data %s\n", h.cfg.DataDir, h.cfg.DataDir)
		h.demoBanner(out)
		h.demoAppBanner(out)
	}
	fmt.Fprintln(out)
}

// Close stops the parts in the reverse of the order Start started them
// (see Start): stop taking new work, commit what was accepted, then close
// storage. Safe to call more than once.
func (h *Hub) Close(ctx context.Context) error {
	h.closeOnce.Do(func() { h.closeErr = h.parts.stop(ctx) })
	return h.closeErr
}
