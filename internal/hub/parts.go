package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/api"
	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/broker"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/keys"
	"github.com/candor-iot/candor/internal/retention"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/vault"
	"github.com/candor-iot/candor/internal/web"
)

// The parts of a running hub, in the order Start lists them: each is built
// (and, where it holds something, stopped) by its own small function.

func (h *Hub) loadTLS(context.Context) (err error) {
	h.tls, h.ca, err = tlsSetup(h.cfg, h.log)
	return err
}

func (h *Hub) openStore(ctx context.Context) (err error) {
	if h.st, err = openEngine(ctx, h.cfg, h.log); err != nil {
		return err
	}
	// An engine with metrics of its own (SQLite's background merge)
	// registers them with the hub's registry.
	if m, ok := h.st.(interface {
		RegisterMetrics(prometheus.Registerer) error
	}); ok {
		if err := m.RegisterMetrics(h.reg); err != nil {
			_ = h.st.Close()
			return fmt.Errorf("store metrics: %w", err)
		}
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
	h.rec = h.alog // a node records through the deployment's log instead (connectCluster)
	return nil
}

func (h *Hub) closeAuditLog(context.Context) error { return h.alog.Close() }

func (h *Hub) openCatalog(ctx context.Context) (err error) {
	if h.cat, err = catalog.Open(ctx, h.st, catalog.Options{Log: h.rec}); err != nil {
		return fmt.Errorf("load manifests: %w", err)
	}
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
	// People's second-factor secrets are wrapped to the same key as
	// hub-assisted data keys.
	h.box = vault.NewHubBox(hubKey)
	return nil
}

func (h *Hub) closeVault(context.Context) error { return h.vault.Close() }

func (h *Hub) openConsent(ctx context.Context) error {
	key, err := signkey.LoadOrCreate(filepath.Join(h.cfg.DataDir, "consent"), receiptKeyName)
	if err != nil {
		return fmt.Errorf("consent receipt key: %w", err)
	}
	if h.consent, err = consent.New(ctx, consent.Options{Store: h.st, Manifests: h.cat, Key: key, Log: h.rec,
		Operator: h.consentOperator, Logger: h.log.With("component", "consent")}); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	return nil
}

func (h *Hub) openForward(context.Context) error {
	key, err := signkey.LoadOrCreate(filepath.Join(h.cfg.DataDir, "forward"), forwardKeyName)
	if err != nil {
		return fmt.Errorf("forwarding key: %w", err)
	}
	h.forward = forward.New(forward.Options{Store: h.st, Consent: h.consent, Key: key, Log: h.rec,
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
	h.id = identity.New(h.st, identity.Options{Logger: h.log.With("component", "identity"), Log: h.rec, Registerer: h.reg, Box: h.box,
		AdminSecondFactor: h.cfg.RequireSecondFactorForAdmin})
	return nil
}

// openApps loads the household's apps and what each may receive; ingest
// hands it readings, the broker lets apps log in.
func (h *Hub) openApps(ctx context.Context) (err error) {
	if h.apps, err = apps.New(ctx, apps.Options{Store: h.st, Manifests: h.cat, Log: h.rec,
		Logger: h.log.With("component", "apps")}); err != nil {
		return fmt.Errorf("apps: %w", err)
	}
	return nil
}

func (h *Hub) openIngest(context.Context) error {
	h.in = ingest.New(h.st, ingest.Options{
		Manifests:       h.cat,
		Consent:         h.consent,
		Sealer:          h.vault,
		KeyOwners:       h.owners,
		Forwarder:       h.forward,
		Monitor:         h.mon,
		Apps:            h.apps,
		StripUndeclared: h.cfg.UndeclaredFields == "strip",
		MaxPayloadBytes: h.cfg.MaxPayloadBytes,
		BatchMaxRows:    h.cfg.BatchMaxRows,
		BatchMaxWait:    h.cfg.BatchMaxWait,
		BatchBusyWait:   h.cfg.BatchBusyWait,
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
	// The export service, shared by the API and the pages; it records
	// each export itself.
	sc := export.ServiceConfig{Store: h.st, Catalog: h.cat, Opener: h.vault,
		IdentityOpener: h.vault, Keys: h.vault, Consent: h.consent, Log: h.alog, Recorder: h.rec, Jobs: h.exports}
	if h.node != nil {
		sc.Elsewhere = h.exportJobsElsewhere
	}
	h.export = export.NewService(sc)
	return nil
}

// closeExports stops running exports, which read the store, before it
// closes.
func (h *Hub) closeExports(context.Context) error { return h.exports.Close() }

func (h *Hub) openErasure(context.Context) error {
	h.erasure = erasure.New(erasure.Config{
		Store:  h.st,
		Vault:  h.vault,
		Log:    h.rec,
		Logger: h.log.With("component", "erasure"),
		Erased: func(ids []string) {
			h.owners.forget(ids)
			h.mon.Forget(ids)
			h.id.DevicesErased(ids)
			h.apps.Forget(context.Background(), ids)
		},
		// Erased devices reach the other nodes through identity's
		// OnRevoke (joinCluster); the rest is noted here.
		ReadingsDeleted: func(ids []string) {
			h.apps.Forget(context.Background(), ids)
			for _, id := range ids {
				h.note(cluster.KindReadingsDeleted, id)
			}
		},
		Shredded:       h.noteFor(cluster.KindKeys),
		Reclaim:        h.st.ReclaimSpace,
		AccountDeleted: h.id.AccountDeleted,
		HouseholdDeleted: func(ctx context.Context, hh string) {
			h.note(cluster.KindRecipients, hh)
			if err := h.forward.Reload(ctx, hh); err != nil {
				h.log.Error("stop forwarding for a deleted household", "household", hh, "err", err)
			}
		},
	})
	return nil
}

// openBroker binds the MQTT listeners; startMQTT begins serving them.
func (h *Hub) openBroker(context.Context) (err error) {
	mqttAddr, err := h.mqttListenAddr()
	if err != nil {
		return err
	}
	bcfg := broker.Config{
		TCPAddr:        mqttAddr,
		WSAddr:         h.cfg.WSAddr,
		Logger:         h.log.With("component", "broker"),
		Registerer:     h.reg,
		MaxPacketBytes: uint32(h.cfg.MaxPayloadBytes) + 1024,
		// Not below the others' limit: the bridge's readings keep that.
		BridgeMaxPacketBytes: uint32(max(h.cfg.BridgeMaxPacketBytes, h.cfg.MaxPayloadBytes+1024)),

		ConnectTimeout:    h.cfg.MQTTConnectTimeout,
		PendingPerAddress: h.cfg.MQTTPendingPerAddress,
		State:             stateReports{h},
		System:            map[string]broker.SystemHandler{updates.ProgressSuffix: h.updateProgress},
		Monitor:           h.brokerMonitor(),
		Apps:              h.apps,
		AppLogin:          h.appLogin(),
		Bridge:            h.zb,
		Controls:          h.controls,
	}
	if bcfg.AckWithin, err = config.AckWindow(h.cfg.Ack); err != nil {
		return fmt.Errorf("--ack: %w", err)
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
	h.apps.OnRevoke(h.br.Disconnect)
	h.apps.SetPublisher(h.appsPublisher())
	// Commands for Zigbee devices go through their bridge; the rest to
	// the devices' own control topics.
	h.zb.SetBroker(h.br, h.br)
	h.apps.SetCommandSender(h.zb)
	// Tell the device, on its control topic, whether anyone still wants a
	// stream, so a device that can stops generating it.
	h.consent.OnChange(h.controls.changed)
	h.startSessions()
	return nil
}

func (h *Hub) closeBroker(context.Context) error { return h.br.Close() }

// openFrontEnds builds the HTTP API and the pages. Who each household's
// data may go to and where is one registry they share.
func (h *Hub) openFrontEnds(context.Context) error {
	fe := frontEnd{
		recipients: forward.NewRegistry(h.st, h.cat, h.forward, forward.RegistryOptions{Log: h.rec,
			OnChange: h.noteFor(cluster.KindRecipients)}),
		keys: keys.New(keys.Options{Vault: h.vault, Accounts: h.st, Log: h.rec,
			OnChange: h.noteFor(cluster.KindKeys)}),
		history: history.New(history.Options{Store: h.st, Vault: h.vault, Log: h.rec}),
	}
	fe.mqttAddr, fe.mqttTLS = h.deviceMQTT()
	h.api = newAPI(h, fe)
	h.web = newWeb(h, fe)
	return nil
}

// frontEnd is what the API and the pages share: one service each for
// recipients, key settings and reads of readings, so both front ends
// act, and record, the same way; and the broker address devices use.
type frontEnd struct {
	recipients *forward.Registry
	keys       *keys.Service
	history    *history.Service
	mqttAddr   string
	mqttTLS    bool
}

func newAPI(h *Hub, fe frontEnd) *api.Server {
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
		MQTTAddr:        fe.mqttAddr,
		MQTTTLS:         fe.mqttTLS,
		MQTTCAFile:      h.caFile(),
		SecureCookies:   h.tls != nil,
		Export:          h.export,
		MaxPayloadBytes: h.cfg.MaxPayloadBytes,
		Erasure:         h.erasure,
		Keys:            fe.keys,
		Forwarding:      h.forward,
		Recipients:      fe.recipients,
		IdentityOpener:  h.vault,
		History:         fe.history,
		Advisories:      h.advisories,
		Feeds:           h.advisories,
		Restrict:        h.advisories,
		Firmware:        h.firmware,
		Operator:        h.operator,
		Updates:         h.upd,
		Monitor:         h.mon,
		Alerts:          h.st,
		Policies:        h.mon,
		Apps:            h.apps,
		Bridge:          h.zb,
		Assess:          h.assess,
	})
}

func newWeb(h *Hub, fe frontEnd) *web.Server {
	return web.New(web.Config{
		Monitor:       h.mon,
		Policies:      h.mon,
		Alerts:        h.st,
		AlertMail:     h.cfg.AlertSMTPAddr != "",
		Identity:      h.id,
		Store:         h.st,
		Catalog:       h.cat,
		Ingest:        h.in,
		Presence:      h.br,
		History:       fe.history,
		KeyOpener:     h.vault,
		Consent:       h.consent,
		Log:           h.alog,
		Logger:        h.log.With("component", "web"),
		MQTTAddr:      fe.mqttAddr,
		MQTTTLS:       fe.mqttTLS,
		MQTTCAFile:    h.caFile(),
		CAFingerprint: h.CAFingerprint(),
		SecureCookies: h.tls != nil,
		Exports:       h.export,
		Erasure:       h.erasure,
		Keys:          fe.keys,
		Recipients:    fe.recipients,
		Advisories:    h.advisories,
		Feeds:         h.advisories,
		Firmware:      h.firmware,
		Operator:      h.operator,
		Updates:       h.upd,
		Apps:          h.apps,
		Bridge:        h.zb,
		Assess:        h.assess,
		// The owner's update buttons and the hold until fixed.
		UpdateControls: h.upd,
		Restrict:       h.advisories,
	})
}

// serveControl serves the API, as the operator, on the local control
// socket.
func (h *Hub) serveControl(context.Context) (err error) {
	if h.sockLn, err = listenSocket(filepath.Join(h.cfg.DataDir, SocketName)); err != nil {
		return err
	}
	h.local.serve(h.log, &http.Server{Handler: h.confirming(h.api.LocalHandler()), ReadHeaderTimeout: 10 * time.Second}, h.sockLn)
	return nil
}

// serveHTTP serves the API and the pages on the network.
func (h *Hub) serveHTTP(context.Context) (err error) {
	if h.httpLn, err = h.listenHTTP(); err != nil {
		return err
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

// startMQTT lets devices connect. Devices' control messages, holds
// included, are sent when each subscribes (see controls), not here. The
// broker part stops it.
func (h *Hub) startMQTT(ctx context.Context) error {
	if err := h.br.Start(); err != nil {
		return err
	}
	// Home Assistant apps' discovery messages are retained in broker
	// memory only, so they are announced again at every start.
	if err := h.apps.AnnounceAll(ctx); err != nil {
		return fmt.Errorf("announce apps' Home Assistant discovery: %w", err)
	}
	return nil
}

func (h *Hub) startSweeps(context.Context) error {
	h.retention = &retention.Job{Store: h.st, Catalog: h.cat, Consent: h.consent, Log: h.rec,
		Logger: h.log.With("component", "retention")}
	h.sweeps.run(h.onLeader(func(ctx context.Context) { h.retention.Run(ctx, h.cfg.RetentionInterval) }))
	return nil
}

func (h *Hub) startPurges(context.Context) error {
	h.purges.run(h.onLeader(func(ctx context.Context) { h.erasure.Run(ctx, h.cfg.RetentionInterval) }))
	return nil
}

func (h *Hub) loadSetupToken(ctx context.Context) (err error) {
	h.setupToken, err = h.id.SetupToken(ctx)
	return err
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
