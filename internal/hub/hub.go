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
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/candor-iot/candor/internal/api"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/broker"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/retention"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/tlscert"
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
	st        *sqlite.DB
	cat       *catalog.Catalog
	alog      *auditlog.Log
	consent   *consent.Service
	vault     *vault.Vault
	owners    *owners
	id        *identity.Service
	in        *ingest.Pipeline
	br        *broker.Broker
	api       *api.Server
	web       *web.Server
	retention *retention.Job
	exports   *export.Jobs
	erasure   *erasure.Service
	forward   *forward.Forwarder
	http      server
	local     server
	httpLn    net.Listener
	sockLn    net.Listener
	tls       *tls.Config

	sweeps, purges, demoJob job

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
	h := &Hub{cfg: cfg, log: log, reg: prometheus.NewRegistry(), parts: parts{log: log.With("component", "hub")}}
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	err := h.parts.start(ctx, []part{
		{name: "TLS certificate", start: h.loadTLS},
		{name: "store", start: h.openStore, stop: h.closeStore},
		{name: "transparency log", start: h.openAuditLog, stop: h.closeAuditLog},
		{name: "manifests", start: h.openCatalog},
		{name: "vault", start: h.openVault, stop: h.closeVault},
		{name: "consent", start: h.openConsent},
		{name: "forwarding", start: h.openForward, stop: h.stopForward},
		{name: "identity", start: h.openIdentity},
		{name: "ingest", start: h.openIngest, stop: h.stopIngest},
		{name: "exports", start: h.openExports, stop: h.closeExports},
		{name: "erasure", start: h.openErasure},
		{name: "retention sweeps", start: h.startSweeps, stop: h.sweeps.wait},
		{name: "erasure purges", start: h.startPurges, stop: h.purges.wait},
		{name: "broker", start: h.openBroker, stop: h.closeBroker},
		{name: "API and pages", start: h.openFrontEnds},
		{name: "control socket", start: h.serveControl, stop: h.local.stop},
		{name: "HTTP", start: h.serveHTTP, stop: h.http.stop},
		{name: "MQTT", start: h.startMQTT},
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

func (h *Hub) loadTLS(context.Context) (err error) {
	h.tls, err = tlsConfig(h.cfg)
	return err
}

func (h *Hub) openStore(ctx context.Context) (err error) {
	if h.st, err = sqlite.Open(ctx, filepath.Join(h.cfg.DataDir, DBName)); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	return nil
}

func (h *Hub) closeStore(context.Context) error { return h.st.Close() }

func (h *Hub) openAuditLog(ctx context.Context) (err error) {
	auditDir := filepath.Join(h.cfg.DataDir, "audit")
	key, err := auditlog.LoadOrCreateKey(auditDir, "")
	if err != nil {
		return fmt.Errorf("transparency log key: %w", err)
	}
	if h.alog, err = auditlog.Open(ctx, auditDir, key, auditlog.Options{Logger: h.log.With("component", "auditlog")}); err != nil {
		// A log that fails verification means someone rewrote history: the
		// hub refuses to carry on as if nothing happened.
		return fmt.Errorf("refusing to start: transparency log in %s: %w", auditDir, err)
	}
	if rec := h.alog.Recovery(); rec.Repaired() {
		h.log.Warn("transparency log: torn tail repaired after a crash", "detail", rec.String())
	}
	return nil
}

func (h *Hub) closeAuditLog(context.Context) error { return h.alog.Close() }

func (h *Hub) openCatalog(ctx context.Context) (err error) {
	if h.cat, err = catalog.Open(ctx, h.st); err != nil {
		return fmt.Errorf("load manifests: %w", err)
	}
	h.cat.SetAuditor(h.alog)
	return nil
}

func (h *Hub) openVault(ctx context.Context) error {
	hubKey, err := vault.LoadOrCreateHubIdentity(filepath.Join(h.cfg.DataDir, "vault.key"))
	if err != nil {
		return fmt.Errorf("vault hub key: %w", err)
	}
	if h.vault, err = vault.New(ctx, h.st, vault.Options{Hub: hubKey}); err != nil {
		return fmt.Errorf("open vault: %w", err)
	}
	h.owners = &owners{st: h.st, v: h.vault}
	return nil
}

func (h *Hub) closeVault(context.Context) error { return h.vault.Close() }

func (h *Hub) openConsent(ctx context.Context) error {
	key, err := signkey.LoadOrCreate(filepath.Join(h.cfg.DataDir, "consent"), receiptKeyName)
	if err != nil {
		return fmt.Errorf("consent receipt key: %w", err)
	}
	if h.consent, err = consent.New(ctx, consent.Options{Store: h.st, Manifests: h.cat, Key: key,
		Logger: h.log.With("component", "consent")}); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	return nil
}

func (h *Hub) openForward(context.Context) error {
	key, err := signkey.LoadOrCreate(filepath.Join(h.cfg.DataDir, "forward"), forwardKeyName)
	if err != nil {
		return fmt.Errorf("forwarding key: %w", err)
	}
	h.forward = forward.New(forward.Options{Store: h.st, Consent: h.consent, Key: key, Log: h.alog,
		Logger: h.log.With("component", "forward")})
	return nil
}

// stopForward runs after ingest has flushed, so readings accepted before
// shutdown were handed over; what is still queued for a recipient is
// dropped and counted, as the forwarder does with any full queue.
func (h *Hub) stopForward(context.Context) error {
	h.forward.Close()
	return nil
}

func (h *Hub) openIdentity(context.Context) error {
	h.id = identity.New(h.st, h.log.With("component", "identity"))
	h.id.SetAuditor(h.alog)
	return nil
}

func (h *Hub) openIngest(context.Context) error {
	h.in = ingest.New(h.st, ingest.Options{
		Manifests:       h.cat,
		Consent:         h.consent,
		Sealer:          h.vault,
		KeyOwners:       h.owners,
		Forwarder:       h.forward,
		StripUndeclared: h.cfg.UndeclaredFields == "strip",
		MaxPayloadBytes: h.cfg.MaxPayloadBytes,
		BatchMaxRows:    h.cfg.BatchMaxRows,
		BatchMaxWait:    h.cfg.BatchMaxWait,
		Logger:          h.log.With("component", "ingest"),
		Registerer:      h.reg,
	})
	return nil
}

// stopIngest commits what was accepted; the broker and the HTTP servers
// have stopped by then, so nothing new arrives.
func (h *Hub) stopIngest(context.Context) error {
	h.in.Close()
	return nil
}

// openExports prepares data exports in the background. Their files are
// encrypted to keys held in memory only; leftovers of an earlier run,
// which no one can read any more, are deleted here.
func (h *Hub) openExports(context.Context) (err error) {
	if h.exports, err = export.NewJobs(filepath.Join(h.cfg.DataDir, "exports"),
		export.JobsOptions{Logger: h.log.With("component", "export")}); err != nil {
		return fmt.Errorf("export jobs: %w", err)
	}
	return nil
}

// closeExports stops running exports, which read the store, before it
// closes.
func (h *Hub) closeExports(context.Context) error { return h.exports.Close() }

func (h *Hub) openErasure(context.Context) error {
	h.erasure = erasure.New(erasure.Config{
		Store:  h.st,
		Vault:  h.vault,
		Log:    h.alog,
		Logger: h.log.With("component", "erasure"),
		Erased: func(ids []string) {
			h.owners.forget(ids)
			h.id.DevicesErased(ids)
		},
		Reclaim:        h.st.ReclaimSpace,
		AccountDeleted: h.id.AccountDeleted,
		HouseholdDeleted: func(ctx context.Context, hh string) {
			if err := h.forward.Reload(ctx, hh); err != nil {
				h.log.Error("stop forwarding for a deleted household", "household", hh, "err", err)
			}
		},
	})
	return nil
}

// openBroker binds the MQTT listeners; startMQTT begins serving them.
func (h *Hub) openBroker(context.Context) (err error) {
	bcfg := broker.Config{
		TCPAddr:        h.cfg.MQTTAddr,
		WSAddr:         h.cfg.WSAddr,
		Logger:         h.log.With("component", "broker"),
		Registerer:     h.reg,
		MaxPacketBytes: uint32(h.cfg.MaxPayloadBytes) + 1024,
	}
	if h.tls != nil {
		bcfg.TLSAddr = h.cfg.MQTTTLSAddr
		bcfg.TLSConfig = h.tls
	} else if h.cfg.MQTTTLSAddr != "" {
		return errors.New("mqtt-tls-addr is set but no certificate: give --tls-cert and --tls-key, or --tls-self-signed")
	}
	if h.br, err = broker.New(bcfg, h.id, h.in); err != nil {
		return addrHint(err, "--mqtt-addr")
	}
	h.id.OnRevoke(h.br.Disconnect)
	// Tell the device, on its retained control topic, whether anyone still
	// wants a stream, so a device that can stops generating it.
	h.consent.OnChange(func(deviceID, stream string, collect bool) {
		h.publishControl(deviceID, stream, collect)
	})
	return nil
}

func (h *Hub) closeBroker(context.Context) error { return h.br.Close() }

// openFrontEnds builds the HTTP API and the pages. Who each household's
// data may go to and where is one registry they share.
func (h *Hub) openFrontEnds(context.Context) error {
	recipients := forward.NewRegistry(h.st, h.cat, h.forward)
	recipients.SetAuditor(h.alog)
	h.api = newAPI(h, recipients)
	h.web = newWeb(h, recipients)
	return nil
}

func newAPI(h *Hub, recipients *forward.Registry) *api.Server {
	return api.New(api.Config{
		Identity:        h.id,
		Catalog:         h.cat,
		Log:             h.alog,
		Consent:         h.consent,
		Vault:           h.vault,
		Store:           h.st,
		Ingest:          h.in,
		Presence:        h.br,
		Gatherer:        h.reg,
		Logger:          h.log.With("component", "api"),
		MQTTAddr:        h.br.Addr("tcp"),
		SecureCookies:   h.tls != nil,
		Exports:         h.exports,
		MaxPayloadBytes: h.cfg.MaxPayloadBytes,
		Erasure:         h.erasure,
		Keys:            auditedKeys{Vault: h.vault, st: h.st, log: h.alog},
		Forwarding:      h.forward,
		Recipients:      recipients,
		IdentityOpener:  h.vault,
	})
}

func newWeb(h *Hub, recipients *forward.Registry) *web.Server {
	return web.New(web.Config{
		Identity:                h.id,
		Store:                   plainStore{DB: h.st, v: h.vault},
		Catalog:                 h.cat,
		Ingest:                  h.in,
		Presence:                h.br,
		Audit:                   h.alog,
		Consent:                 h.consent,
		Log:                     h.alog,
		Logger:                  h.log.With("component", "web"),
		MQTTAddr:                h.br.Addr("tcp"),
		SecureCookies:           h.tls != nil,
		Exports:                 h.exports,
		StartExport:             h.api.StartExport,
		StartExportWithIdentity: h.api.StartExportWithIdentity,
		Erasure:                 h.erasure,
		Keys:                    auditedKeys{Vault: h.vault, st: h.st, log: h.alog},
		Recipients:              recipients,
	})
}

// serveControl serves the API, as the operator, on the local control
// socket.
func (h *Hub) serveControl(context.Context) (err error) {
	if h.sockLn, err = listenSocket(filepath.Join(h.cfg.DataDir, SocketName)); err != nil {
		return err
	}
	h.local.serve(h.log, &http.Server{Handler: h.api.LocalHandler(), ReadHeaderTimeout: 10 * time.Second}, h.sockLn)
	return nil
}

// serveHTTP serves the API and the pages on the network.
func (h *Hub) serveHTTP(context.Context) (err error) {
	if h.httpLn, err = net.Listen("tcp", h.cfg.HTTPAddr); err != nil {
		return addrHint(fmt.Errorf("listen for HTTP on %s: %w", h.cfg.HTTPAddr, err), "--http-addr")
	}
	if h.tls != nil {
		h.httpLn = tls.NewListener(h.httpLn, h.tls)
	}
	h.http.serve(h.log, &http.Server{
		Handler:           h.rootHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
	}, h.httpLn)
	return nil
}

// startMQTT lets devices connect and sets every device's retained control
// messages (the broker keeps retained messages in memory only). The
// broker part stops it.
func (h *Hub) startMQTT(ctx context.Context) error {
	if err := h.br.Start(); err != nil {
		return err
	}
	return h.publishAllControls(ctx)
}

func (h *Hub) startSweeps(context.Context) error {
	h.retention = &retention.Job{Store: h.st, Catalog: h.cat, Consent: h.consent, Log: h.alog,
		Logger: h.log.With("component", "retention")}
	h.sweeps.run(func(ctx context.Context) { h.retention.Run(ctx, h.cfg.RetentionInterval) })
	return nil
}

func (h *Hub) startPurges(context.Context) error {
	h.purges.run(func(ctx context.Context) { h.erasure.Run(ctx, h.cfg.RetentionInterval) })
	return nil
}

func (h *Hub) loadSetupToken(ctx context.Context) (err error) {
	h.setupToken, err = h.id.SetupToken(ctx)
	return err
}

// rootHandler serves the API on its own paths and the web pages on the
// rest. The control socket stays API-only.
func (h *Hub) rootHandler() http.Handler {
	apiH := h.api.Handler()
	mux := http.NewServeMux()
	for _, p := range []string{"/api/", "/livez", "/readyz", "/metrics", "/openapi.json"} {
		mux.Handle(p, apiH)
	}
	mux.Handle("/", h.web.Handler())
	return mux
}

// server is an HTTP server that runs on its listener until its part stops.
type server struct {
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

func (s *server) serve(log *slog.Logger, srv *http.Server, ln net.Listener) {
	s.srv, s.done = srv, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// stop closes the listener, waits for requests in progress (until ctx
// ends) and for Serve to return.
func (s *server) stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// addrHint tells the user what to do when a port is taken, which is the
// commonest start-up failure (another broker already on 1883).
func addrHint(err error, flag string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (another program, perhaps another MQTT broker or hub, uses that port: stop it or choose another address with %s)", err, flag)
	}
	return err
}

func tlsConfig(cfg config.Config) (*tls.Config, error) {
	switch {
	case cfg.TLSCert != "":
		return tlscert.Load(cfg.TLSCert, cfg.TLSKey)
	case cfg.TLSSelfSigned:
		cert, key, err := tlscert.SelfSigned(filepath.Join(cfg.DataDir, "tls"))
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		return tlscert.Load(cert, key)
	}
	return nil, nil
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
	if a := h.MQTTAddr(); a != "" {
		fmt.Fprintf(out, "  MQTT:        %s\n", a)
	}
	if a := h.br.Addr("tls"); a != "" {
		fmt.Fprintf(out, "  MQTT (TLS):  %s\n", a)
	}
	if a := h.br.Addr("ws"); a != "" {
		fmt.Fprintf(out, "  MQTT (WS):   %s\n", a)
	}
	fmt.Fprintf(out, "  Data:        %s\n", h.cfg.DataDir)
	if h.setupToken != "" {
		fmt.Fprintf(out, "\nThis hub has no account yet. Open %s/ and create the first one with this one-time setup token:\n\n    %s\n\n", h.URL(), h.setupToken)
		fmt.Fprintf(out, "or with the API:\n")
		fmt.Fprintf(out, "  curl -X POST %s/api/v1/setup -H 'Content-Type: application/json' \\\n", h.URL())
		fmt.Fprintf(out, "    -d '{\"setup_token\":\"%s\",\"username\":\"you\",\"password\":\"<a long passphrase>\"}'\n", h.setupToken)
		fmt.Fprintf(out, "The token works once and dies when the hub restarts. There is no default password.\n")
	}
	if h.cfg.Demo {
		fmt.Fprintf(out, "\nDemo: simulated devices are publishing. Try:\n    go run ./cmd/candor device list --data %s\n    go run ./cmd/candor readings <device-id> --data %s\n", h.cfg.DataDir, h.cfg.DataDir)
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

func (h *Hub) publishControl(deviceID, stream string, collect bool) {
	payload := fmt.Appendf(nil, `{"collect":%t}`, collect)
	if err := h.br.Publish(broker.ControlTopic(deviceID, stream), payload, true); err != nil {
		h.log.Error("publish control message", "device", deviceID, "stream", stream, "err", err)
	}
}

// publishAllControls sets every device's retained control messages.
func (h *Hub) publishAllControls(ctx context.Context) error {
	devs, err := h.st.AllDevices(ctx)
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		st, err := h.consent.State(ctx, d.ID)
		if err != nil {
			continue // a device whose type lost its manifest: nothing to say
		}
		for _, s := range st.Streams {
			h.publishControl(d.ID, s.Stream, s.Decision.Collect)
		}
	}
	return nil
}
