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
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/keys"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/retention"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/tlscert"
	"github.com/candor-iot/candor/internal/vault"
	"github.com/candor-iot/candor/internal/web"
)

// SocketName is the local control socket inside the data directory.
const SocketName = "candor.sock"

// DBName is the SQLite database inside the data directory.
const DBName = "candor.db"

// Hub is a running hub.
type Hub struct {
	cfg       config.Config
	log       *slog.Logger
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
	http      *http.Server
	local     *http.Server
	httpLn    net.Listener
	sockLn    net.Listener
	tls       *tls.Config
	ca        *tlscert.CA // the hub's own authority, with --tls-self-signed
	moved     []string    // demo listeners moved off a taken default port

	setupToken string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Start opens everything and begins serving. The banner (addresses and the
// one-time setup token, which is a secret and so never goes to the log) is
// written to out.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) (_ *Hub, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	h := &Hub{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			_ = h.Close(context.Background())
		}
	}()

	if h.tls, h.ca, err = tlsSetup(cfg, log); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(cfg.DataDir, DBName)
	if h.st, err = sqlite.Open(ctx, dbPath); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	auditDir := filepath.Join(cfg.DataDir, "audit")
	key, err := auditlog.LoadOrCreateKey(auditDir, "")
	if err != nil {
		return nil, fmt.Errorf("transparency log key: %w", err)
	}
	if h.alog, err = auditlog.Open(ctx, auditDir, key, auditlog.Options{Logger: log.With("component", "auditlog")}); err != nil {
		// A log that fails verification means someone rewrote history: the
		// hub refuses to carry on as if nothing happened.
		return nil, fmt.Errorf("refusing to start: transparency log in %s: %w", auditDir, err)
	}
	if rec := h.alog.Recovery(); rec.Repaired() {
		log.Warn("transparency log: torn tail repaired after a crash", "detail", rec.String())
	}
	if h.cat, err = catalog.Open(ctx, h.st, catalog.Options{Log: h.alog}); err != nil {
		return nil, fmt.Errorf("load manifests: %w", err)
	}
	hubKey, err := vault.LoadOrCreateHubIdentity(filepath.Join(cfg.DataDir, "vault.key"))
	if err != nil {
		return nil, fmt.Errorf("vault hub key: %w", err)
	}
	if h.vault, err = vault.New(ctx, h.st, vault.Options{Hub: hubKey}); err != nil {
		return nil, fmt.Errorf("open vault: %w", err)
	}
	h.owners = &owners{st: h.st, v: h.vault}
	ckey, err := consent.LoadOrCreateKey(filepath.Join(cfg.DataDir, "consent"))
	if err != nil {
		return nil, fmt.Errorf("consent receipt key: %w", err)
	}
	if h.consent, err = consent.New(ctx, consent.Options{Store: h.st, Manifests: h.cat, Key: ckey, Log: h.alog,
		Logger: log.With("component", "consent")}); err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	fkey, err := consent.LoadOrCreateKey(filepath.Join(cfg.DataDir, "forward"))
	if err != nil {
		return nil, fmt.Errorf("forwarding key: %w", err)
	}
	h.forward = forward.New(forward.Options{Store: h.st, Consent: h.consent, Key: fkey, Log: h.alog,
		Logger: log.With("component", "forward")})
	h.id = identity.New(h.st, identity.Options{Logger: log.With("component", "identity"), Log: h.alog})
	h.in = ingest.New(h.st, ingest.Options{
		Manifests:       h.cat,
		Consent:         h.consent,
		Sealer:          h.vault,
		Owner:           h.owners.of,
		Forwarder:       h.forward,
		StripUndeclared: cfg.UndeclaredFields == "strip",
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		BatchMaxRows:    cfg.BatchMaxRows,
		BatchMaxWait:    cfg.BatchMaxWait,
		Logger:          log.With("component", "ingest"),
		Registerer:      reg,
	})

	mqttAddr, err := h.mqttListenAddr()
	if err != nil {
		return nil, err
	}
	bcfg := broker.Config{
		TCPAddr:        mqttAddr,
		WSAddr:         cfg.WSAddr,
		Logger:         log.With("component", "broker"),
		Registerer:     reg,
		MaxPacketBytes: uint32(cfg.MaxPayloadBytes) + 1024,
	}
	if h.tls != nil {
		bcfg.TLSAddr = cfg.MQTTTLSAddr
		bcfg.TLSConfig = h.tls
	} else if cfg.MQTTTLSAddr != "" {
		return nil, errors.New("mqtt-tls-addr is set but no certificate: give --tls-cert and --tls-key, or --tls-self-signed")
	}
	if h.br, err = broker.New(bcfg, h.id, h.in); err != nil {
		return nil, addrHint(err, "--mqtt-addr")
	}
	h.id.OnRevoke(h.br.Disconnect)
	deviceMQTT, deviceTLS := h.deviceMQTT()
	// Tell the device, on its retained control topic, whether anyone still
	// wants a stream, so a device that can stops generating it.
	h.consent.OnChange(func(deviceID, stream string, collect bool) {
		h.publishControl(deviceID, stream, collect)
	})

	h.erasure = erasure.New(erasure.Config{
		Store:  h.st,
		Vault:  h.vault,
		Log:    h.alog,
		Logger: log.With("component", "erasure"),
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

	// Data exports prepared in the background. Their files are encrypted
	// to keys held in memory only; leftovers of an earlier run, which no
	// one can read any more, are deleted here.
	if h.exports, err = export.NewJobs(filepath.Join(cfg.DataDir, "exports"),
		export.JobsOptions{Logger: log.With("component", "export")}); err != nil {
		return nil, fmt.Errorf("export jobs: %w", err)
	}
	// The export service, shared by the API and the pages; it records
	// each export itself.
	exports := export.NewService(export.ServiceConfig{Store: h.st, Catalog: h.cat, Opener: h.vault,
		IdentityOpener: h.vault, Keys: h.vault, Consent: h.consent, Log: h.alog, Recorder: h.alog, Jobs: h.exports})

	// Who each household's data may go to and where, for the API and the
	// pages alike; changes are recorded in the transparency log.
	recipients := forward.NewRegistry(h.st, func(deviceType string) (*manifest.Manifest, error) {
		e, err := h.cat.Current(deviceType)
		if err != nil {
			return nil, err
		}
		return e.Manifest, nil
	}, h.forward, forward.RegistryOptions{Log: h.alog})

	h.api = api.New(api.Config{
		Identity:        h.id,
		Catalog:         h.cat,
		Log:             h.alog,
		Consent:         h.consent,
		Vault:           h.vault,
		Store:           h.st,
		Ingest:          h.in,
		Presence:        h.br,
		Gatherer:        reg,
		Logger:          log.With("component", "api"),
		MQTTAddr:        deviceMQTT,
		MQTTTLS:         deviceTLS,
		MQTTCAFile:      h.caFile(),
		SecureCookies:   h.tls != nil,
		Export:          exports,
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		Erasure:         h.erasure,
		Keys:            keys.New(keys.Options{Vault: h.vault, Accounts: h.st, Log: h.alog}),
		Forwarding:      h.forward,
		Recipients:      recipients,
		IdentityOpener:  h.vault,
		History:         history.New(history.Options{Store: h.st, Vault: h.vault, Log: h.alog}),
	})

	h.web = web.New(web.Config{
		Identity:      h.id,
		Store:         h.st,
		Catalog:       h.cat,
		Ingest:        h.in,
		Presence:      h.br,
		History:       history.New(history.Options{Store: h.st, Vault: h.vault, Log: h.alog}),
		KeyOpener:     h.vault,
		Consent:       h.consent,
		Log:           h.alog,
		Logger:        log.With("component", "web"),
		MQTTAddr:      deviceMQTT,
		MQTTTLS:       deviceTLS,
		MQTTCAFile:    h.caFile(),
		CAFingerprint: h.CAFingerprint(),
		SecureCookies: h.tls != nil,
		Exports:       exports,
		Erasure:       h.erasure,
		Keys:          keys.New(keys.Options{Vault: h.vault, Accounts: h.st, Log: h.alog}),
		Recipients:    recipients,
	})

	if h.httpLn, err = h.listenHTTP(); err != nil {
		return nil, err
	}
	if h.tls != nil {
		h.httpLn = tls.NewListener(h.httpLn, h.tls)
	}
	if h.sockLn, err = listenSocket(filepath.Join(cfg.DataDir, SocketName)); err != nil {
		return nil, err
	}
	h.http = &http.Server{
		Handler:           h.rootHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	h.local = &http.Server{Handler: h.api.LocalHandler(), ReadHeaderTimeout: 10 * time.Second}

	if err := h.br.Start(); err != nil {
		return nil, err
	}
	if err := h.publishAllControls(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.serve(h.http, h.httpLn)
	h.serve(h.local, h.sockLn)
	h.retention = &retention.Job{Store: h.st, Catalog: h.cat, Consent: h.consent, Log: h.alog,
		Logger: log.With("component", "retention")}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.retention.Run(runCtx, cfg.RetentionInterval)
	}()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.erasure.Run(runCtx, cfg.RetentionInterval)
	}()

	if h.setupToken, err = h.id.SetupToken(ctx); err != nil {
		return nil, err
	}
	if cfg.Demo {
		if err := h.startDemo(auditlog.WithActor(ctx, auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"}), runCtx); err != nil {
			return nil, fmt.Errorf("start demo: %w", err)
		}
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
	for _, p := range []string{"/api/", "/livez", "/readyz", "/metrics", "/openapi.json"} {
		mux.Handle(p, apiH)
	}
	mux.Handle("/", h.web.Handler())
	return h.withTLSRoutes(mux)
}

func (h *Hub) serve(srv *http.Server, ln net.Listener) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
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
	}
	fmt.Fprintln(out)
}

// Close shuts down in dependency order: stop taking new work, commit what
// was accepted, then close storage. Safe to call more than once.
func (h *Hub) Close(ctx context.Context) error {
	h.closeOnce.Do(func() {
		var errs []error
		if h.cancel != nil {
			h.cancel()
		}
		if h.http != nil {
			errs = append(errs, h.http.Shutdown(ctx))
		} else if h.httpLn != nil {
			errs = append(errs, h.httpLn.Close())
		}
		if h.local != nil {
			errs = append(errs, h.local.Shutdown(ctx))
		} else if h.sockLn != nil {
			errs = append(errs, h.sockLn.Close())
		}
		if h.br != nil {
			errs = append(errs, h.br.Close())
		}
		h.wg.Wait()
		// Running exports read the store: stop them before it closes.
		if h.exports != nil {
			errs = append(errs, h.exports.Close())
		}
		if h.in != nil {
			h.in.Close()
		}
		if h.forward != nil {
			h.forward.Close()
		}
		if h.st != nil {
			errs = append(errs, h.st.Close())
		}
		if h.alog != nil {
			errs = append(errs, h.alog.Close())
		}
		if h.vault != nil {
			errs = append(errs, h.vault.Close())
		}
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

func (h *Hub) publishControl(deviceID, stream string, collect bool) {
	payload := fmt.Appendf(nil, `{"collect":%t}`, collect)
	if err := h.br.Publish(broker.ControlTopic(deviceID, stream), payload, true); err != nil {
		h.log.Error("publish control message", "device", deviceID, "stream", stream, "err", err)
	}
}

// publishAllControls sets every device's retained control messages at
// start-up (the broker keeps retained messages in memory only).
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
