// Package api is the hub's HTTP interface: a versioned JSON API under
// /api/v1 (devices, readings, accounts, sessions, setup), device ingest
// over HTTP for things that cannot speak MQTT, health and metrics
// endpoints, and the OpenAPI 3.1 document that describes it all.
//
// It serves clause 2B of the IoT Good Practice paper (people reach and
// control their data through documented interfaces) and clause 2C (every
// caller is authenticated, sees only its own household, and errors say
// what was wrong without leaking what was stored). Errors are RFC 9457
// problem+json documents.
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
)

//go:embed openapi.json
var openAPIDoc []byte

// Store is the read side of storage the API serves directly.
type Store interface {
	Households(ctx context.Context) ([]store.Household, error)
	Household(ctx context.Context, id string) (store.Household, error)
	Account(ctx context.Context, id string) (store.Account, error)
	Accounts(ctx context.Context, householdID string) ([]store.Account, error)
	Device(ctx context.Context, id string) (store.Device, error)
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
	AllDevices(ctx context.Context) ([]store.Device, error)
	Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error)
	Violations(ctx context.Context, deviceID string, limit int) ([]store.ViolationCount, int, error)
	Ping(ctx context.Context) error
}

// Ingester is the policy path HTTP readings go through.
type Ingester interface {
	Enqueue(ctx context.Context, deviceID, stream string, payload []byte) (ingest.Ticket, error)
	PendingCounters(deviceID string) store.DeviceCounters
	PendingViolations(deviceID string) []store.ViolationCount
}

// Opener decrypts a sealed reading.
type Opener interface {
	OpenReadings(ownerID, deviceID string, rs []store.Reading) error
}

// IdentityOpener decrypts sealed readings with the person's own age
// identity (user-held mode).
type IdentityOpener interface {
	OpenReadingsWithIdentity(ownerID, deviceID string, rs []store.Reading, identity age.Identity) error
}

// Presence tells whether a device is connected over MQTT.
type Presence interface {
	Connected(deviceID string) bool
}

// Config wires the API to the rest of the hub.
type Config struct {
	Identity *identity.Service
	Catalog  *catalog.Catalog
	Log      *auditlog.Log
	Consent  *consent.Service
	// Vault opens sealed readings under their device's key owner.
	Vault Opener
	// IdentityOpener opens user-held history with the identity a person
	// sends for one request (optional).
	IdentityOpener IdentityOpener
	Store          Store
	Ingest         Ingester
	Presence       Presence // optional
	Gatherer       prometheus.Gatherer
	Logger         *slog.Logger
	// MQTTAddr is the broker address shown in device instructions.
	MQTTAddr string
	// MQTTTLS says MQTTAddr is MQTT over TLS; devices then verify the hub
	// against MQTTCAFile, the hub's own authority, or against the
	// system's authorities when it is empty.
	MQTTTLS    bool
	MQTTCAFile string
	// SecureCookies sets the Secure flag on session cookies (on when the
	// hub is served over TLS).
	SecureCookies   bool
	MaxPayloadBytes int
	// Export makes people's data exports (GET /api/v1/export, and
	// POST /api/v1/exports and the rest of exportjobs.go when it prepares
	// them in the background; otherwise those endpoints answer 503).
	// Optional: when nil, one without background jobs is built from
	// Store, Catalog, Vault, IdentityOpener, Keys, Consent and Log.
	Export *export.Service
	// Erasure deletes accounts and unlinks history (optional).
	Erasure Eraser
	// Keys manages people's encryption settings (optional).
	Keys Keys
	// History reads readings back to people and records each read in
	// the transparency log. Without it the readings endpoints answer 503.
	History *history.Service
	// Forwarding delivers to external recipients (optional).
	Forwarding Forwarding
	// Recipients is the registry of where households forward to, shared
	// with the pages (optional: built from Store and Forwarding if nil).
	Recipients *forward.Registry
	// Advisories, Firmware and Operator serve the device-lifecycle
	// endpoints (lifecycle.go); each is optional, and its endpoints
	// answer 503 without it.
	Advisories Advisories
	// Restrict puts a device a flaw affects on hold until it is fixed
	// (optional).
	Restrict Restricter
	// Feeds are the HTTPS sources of advisories (optional).
	Feeds    AdvisoryFeeds
	Firmware Firmware
	Operator Operator
	// Updates is the firmware update service; without it its routes
	// answer 503.
	Updates Updates
	// Monitor explains alarms and releases held devices (optional).
	Monitor Monitor
	// Alerts keeps which alarms reach each person (optional).
	Alerts AlertPrefs
	// Policies lets the admin read and change the action per alarm
	// severity (optional).
	Policies Policies
	// Apps are the household's local programs that receive readings
	// over MQTT (optional; the /api/v1/apps endpoints answer 503 without).
	Apps Apps
	// Bridge adds Zigbee devices behind a Zigbee2MQTT bridge (optional).
	Bridge Bridge
	// Assess is the security audit and the signed reports (optional:
	// without it their endpoints answer 404).
	Assess Assessor
}

// Server serves the HTTP API.
type Server struct {
	cfg     Config
	id      *identity.Service
	st      Store
	log     *slog.Logger
	mux     *http.ServeMux
	exports *export.Service
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = 64 << 10
	}
	s := &Server{cfg: cfg, id: cfg.Identity, st: cfg.Store, log: cfg.Logger, mux: http.NewServeMux(), exports: cfg.Export}
	if s.exports == nil {
		s.exports = defaultExports(cfg)
	}
	s.routes()
	return s
}

// routes registers every endpoint. Keep openapi.json in step: a test
// checks that each route here is documented there.
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /livez", s.livez)
	m.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Gatherer != nil {
		m.HandleFunc("GET /metrics", s.authed(s.metrics(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))))
	}
	m.HandleFunc("GET /openapi.json", s.openapi)

	m.HandleFunc("GET /api/v1/setup", s.getSetup)
	m.HandleFunc("POST /api/v1/setup", s.postSetup)
	m.HandleFunc("POST /api/v1/login", s.login)
	m.HandleFunc("POST /api/v1/logout", s.authed(s.logout))
	m.HandleFunc("POST /api/v1/tokens", s.createToken)
	m.HandleFunc("GET /api/v1/me", s.authed(s.me))
	m.HandleFunc("POST /api/v1/me/password", s.authed(s.changePassword))
	m.HandleFunc("GET /api/v1/me/second-factor", s.authed(s.getSecondFactor))
	m.HandleFunc("POST /api/v1/me/second-factor", s.authed(s.beginSecondFactor))
	m.HandleFunc("POST /api/v1/me/second-factor/confirm", s.authed(s.confirmSecondFactor))
	m.HandleFunc("POST /api/v1/me/second-factor/disable", s.authed(s.disableSecondFactor))
	m.HandleFunc("GET /api/v1/accounts/by-username/{username}/second-factor", s.authed(s.accountSecondFactor))
	m.HandleFunc("POST /api/v1/accounts/by-username/{username}/second-factor/reset", s.authed(s.resetSecondFactor))
	m.HandleFunc("GET /api/v1/sessions", s.authed(s.listSessions))
	m.HandleFunc("DELETE /api/v1/sessions/{id}", s.authed(s.revokeSession))

	m.HandleFunc("GET /api/v1/households", s.authed(s.listHouseholds))
	m.HandleFunc("POST /api/v1/households", s.authed(s.createHousehold))
	m.HandleFunc("GET /api/v1/accounts", s.authed(s.listAccounts))
	m.HandleFunc("POST /api/v1/accounts", s.authed(s.createAccount))

	m.HandleFunc("GET /api/v1/devices", s.authed(s.listDevices))
	m.HandleFunc("POST /api/v1/devices", s.authed(s.addDevice))
	m.HandleFunc("GET /api/v1/devices/{id}", s.authed(s.getDevice))
	m.HandleFunc("POST /api/v1/devices/{id}/rotate", s.authed(s.rotateDevice))
	m.HandleFunc("POST /api/v1/devices/{id}/revoke", s.authed(s.revokeDevice))
	m.HandleFunc("GET /api/v1/devices/{id}/readings", s.authed(s.readings))
	m.HandleFunc("GET /api/v1/updates", s.authed(s.withUpdates(s.householdUpdates)))
	m.HandleFunc("GET /api/v1/devices/{id}/updates", s.authed(s.withUpdates(s.deviceUpdates)))
	m.HandleFunc("POST /api/v1/devices/{id}/updates/check", s.authed(s.withUpdates(s.checkUpdate)))
	m.HandleFunc("POST /api/v1/devices/{id}/updates/install", s.authed(s.withUpdates(s.installUpdate)))
	m.HandleFunc("POST /api/v1/devices/{id}/updates/postpone", s.authed(s.withUpdates(s.postponeUpdate)))
	m.HandleFunc("PUT /api/v1/devices/{id}/updates/automatic", s.authed(s.withUpdates(s.setAutomaticUpdates)))
	m.HandleFunc("POST /api/v1/devices/{id}/readings/open", s.authed(s.openReadingsWithIdentity))

	m.HandleFunc("GET /api/v1/devices/{id}/violations", s.authed(s.violations))
	m.HandleFunc("GET /api/v1/devices/{id}/monitor", s.authed(s.deviceMonitor))
	m.HandleFunc("POST /api/v1/devices/{id}/release", s.authed(s.releaseDevice))
	m.HandleFunc("GET /api/v1/monitor/actions", s.authed(s.getMonitorActions))
	m.HandleFunc("PUT /api/v1/monitor/actions", s.authed(s.putMonitorActions))
	m.HandleFunc("GET /api/v1/me/alerts", s.authed(s.getMyAlerts))
	m.HandleFunc("PUT /api/v1/me/alerts", s.authed(s.putMyAlerts))
	m.HandleFunc("GET /api/v1/devices/{id}/manifest", s.authed(s.deviceManifest))
	m.HandleFunc("GET /api/v1/devices/{id}/label", s.authed(s.deviceLabel))
	m.HandleFunc("GET /api/v1/manifests/{type}/label", s.authed(s.manifestLabel))

	m.HandleFunc("GET /api/v1/manifests", s.authed(s.listManifests))
	m.HandleFunc("POST /api/v1/manifests", s.authed(s.putManifest))
	m.HandleFunc("POST /api/v1/manifests/validate", s.authed(s.validateManifest))
	m.HandleFunc("POST /api/v1/manifests/import/{format}", s.authed(s.importManifest))
	m.HandleFunc("GET /api/v1/manifests/{type}", s.authed(s.getManifest))
	m.HandleFunc("GET /api/v1/manifests/{type}/versions", s.authed(s.manifestVersions))
	m.HandleFunc("POST /api/v1/manifests/{type}/versions/{version}/confirm", s.authed(s.confirmManifest))

	m.HandleFunc("GET /api/v1/devices/{id}/consent", s.authed(s.consentState))
	m.HandleFunc("PUT /api/v1/devices/{id}/consent/{stream}", s.authed(s.setConsent))
	m.HandleFunc("PUT /api/v1/devices/{id}/consent/{stream}/routing", s.authed(s.setRouting))
	m.HandleFunc("POST /api/v1/devices/{id}/consent/requests", s.authed(s.askConsent))
	m.HandleFunc("GET /api/v1/consent/requests", s.authed(s.consentRequests))
	m.HandleFunc("GET /api/v1/consent/records", s.authed(s.consentRecords))
	m.HandleFunc("GET /api/v1/consent/records/{id}/receipt", s.authed(s.consentReceipt))
	m.HandleFunc("GET /api/v1/consent/key", s.consentKey)
	m.HandleFunc("GET /api/v1/learning", s.authed(s.learningRegister))
	m.HandleFunc("PUT /api/v1/devices/{id}/learning/{stream}", s.authed(s.setLearning))

	m.HandleFunc("GET /api/v1/export", s.authed(s.exportData))
	m.HandleFunc("GET /api/v1/exports", s.authed(s.listExportJobs))
	m.HandleFunc("POST /api/v1/exports", s.authed(s.startExportJob))
	m.HandleFunc("GET /api/v1/exports/{id}", s.authed(s.exportJobStatus))
	m.HandleFunc("GET /api/v1/exports/{id}/download", s.authed(s.downloadExportJob))
	m.HandleFunc("DELETE /api/v1/exports/{id}", s.authed(s.cancelExportJob))
	m.HandleFunc("DELETE /api/v1/devices/{id}/readings", s.authed(s.deleteReadings))
	m.HandleFunc("DELETE /api/v1/me", s.authed(s.deleteMe))
	m.HandleFunc("POST /api/v1/me/unlink", s.authed(s.unlinkMe))
	m.HandleFunc("GET /api/v1/aggregates", s.authed(s.aggregates))
	m.HandleFunc("PATCH /api/v1/accounts/{id}", s.authed(s.setRole))
	m.HandleFunc("GET /api/v1/keys/{owner}", s.authed(s.getKeys))
	m.HandleFunc("PUT /api/v1/keys/{owner}", s.authed(s.putKeys))
	m.HandleFunc("POST /api/v1/keys/{owner}/rotate", s.authed(s.rotateKeys))
	m.HandleFunc("GET /api/v1/recipients", s.authed(s.listRecipients))
	m.HandleFunc("PUT /api/v1/recipients/{name}", s.authed(s.putRecipient))
	m.HandleFunc("DELETE /api/v1/recipients/{name}", s.authed(s.deleteRecipient))
	m.HandleFunc("GET /api/v1/forward/key", s.forwardKey)
	m.HandleFunc("GET /api/v1/apps", s.authed(s.listApps))
	m.HandleFunc("POST /api/v1/apps", s.authed(s.addApp))
	m.HandleFunc("GET /api/v1/apps/{id}", s.authed(s.getApp))
	m.HandleFunc("POST /api/v1/apps/{id}/rotate", s.authed(s.rotateApp))
	m.HandleFunc("POST /api/v1/apps/{id}/revoke", s.authed(s.revokeApp))
	m.HandleFunc("PUT /api/v1/apps/{id}/receives/{device}/{stream}", s.authed(s.setAppGrant))
	m.HandleFunc("PUT /api/v1/apps/{id}/commands/{device}/{name}", s.authed(s.setAppCommand))
	m.HandleFunc("PUT /api/v1/apps/{id}/retain/{device}/{stream}", s.authed(s.setAppRetain))
	m.HandleFunc("GET /api/v1/apps/{id}/readings", s.appReadings)
	m.HandleFunc("GET /api/v1/bridges/zigbee2mqtt/devices", s.authed(s.listZigbeeDevices))
	m.HandleFunc("POST /api/v1/bridges/zigbee2mqtt/devices", s.authed(s.addZigbeeDevice))

	m.HandleFunc("GET /api/v1/log/checkpoint", s.logCheckpoint)
	m.HandleFunc("GET /api/v1/log/key", s.logKey)
	m.HandleFunc("GET /api/v1/log/proof/inclusion", s.authed(s.logInclusion))
	m.HandleFunc("GET /api/v1/log/proof/consistency", s.authed(s.logConsistency))
	m.HandleFunc("GET /api/v1/log/entries", s.authed(s.logEntries))
	m.HandleFunc("GET /api/v1/log/export", s.authed(s.logExport))

	m.HandleFunc("GET /api/v1/audit", s.authed(s.getAudit))
	m.HandleFunc("POST /api/v1/audit/run", s.authed(s.runAudit))
	m.HandleFunc("PUT /api/v1/audit/findings/{id}/suppression", s.authed(s.suppressFinding))
	m.HandleFunc("DELETE /api/v1/audit/findings/{id}/suppression", s.authed(s.unsuppressFinding))
	m.HandleFunc("GET /api/v1/pia", s.authed(s.getPIA))
	m.HandleFunc("GET /api/v1/pia/versions", s.authed(s.getPIAVersions))
	m.HandleFunc("GET /api/v1/assessments/key", s.reportKey)
	m.HandleFunc("GET /api/v1/conformance", s.authed(s.getConformance))

	m.HandleFunc("POST /api/v1/ingest/{stream}", s.ingest)
	s.lifecycleRoutes(m)
	s.feedRoutes(m)

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such endpoint; see /openapi.json")
	})
}

// Handler returns the API for network listeners. State-changing requests
// that a browser marks as coming from another origin are refused (CSRF
// protection); programs that send no such headers are unaffected.
func (s *Server) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusForbidden, "cross-origin", "cross-origin requests that change state are refused")
	}))
	return securityHeaders(cop.Handler(s.mux))
}

// LocalHandler returns the API for the hub's local control socket. Whoever
// can open that socket (file permissions: the user running the hub) acts
// as the hub operator, like the local API of tailscaled.
func (s *Server) LocalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := access.Operator()
		ctx := auditlog.WithActor(withPrincipal(r.Context(), p), p.Actor())
		s.mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) livez(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		s.log.Warn("not ready: store unavailable", "err", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "not-ready", "storage is not available")
		return
	}
	// A store that answers reads may still refuse every write (a full
	// disk): readiness is whether readings are being committed. The
	// pipeline logs those failures itself, so they are not logged here
	// on every probe.
	if h, ok := s.cfg.Ingest.(interface{ Health() error }); ok {
		if err := h.Health(); err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "not-ready",
				"storage is failing to commit readings (a full disk?); see the hub's log")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// metrics serves the Prometheus metrics to the hub's administrators and
// the operator only: the counts describe every household's activity
// (how many readings, refusals and connections, and when), which is not
// for anyone who can reach the port.
func (s *Server) metrics(h http.Handler) func(http.ResponseWriter, *http.Request, access.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p access.Principal) {
		if !p.Admin() {
			s.fail(w, r, identity.ErrForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
