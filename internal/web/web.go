// Package web is the hub's browser interface: plain HTML pages, rendered on
// the server, for the people whose data the hub keeps. First-run setup,
// login, a home page with every device of the household and a one-line
// label each, a device page in the order of Mozilla's "Privacy Not
// Included" questions, adding a device (the label is shown before the
// device is added; the credential is shown once), the person's sessions
// and password, per-stream consent switches with signed receipts, a "My
// data" page for the export, deletion, unlinking, account deletion and the
// key settings, a "Who accessed my data" page from the
// transparency log, and a glossary of every term the pages use.
//
// It serves clause 2A of the IoT Good Practice paper (meaningful, usable
// transparency: the label in plain words next to the data it describes),
// clause 2B (people see and control their own data, and only theirs),
// clause 2C (credentials shown once, sessions listed and revocable) and
// clause 4 (education: the glossary, accessible to WCAG 2.2 AA).
//
// Every page works without JavaScript: forms POST and redirect. A small
// script only adds a copy button and live updates of readings. The pages
// ask package access, as the JSON API does, who may see and do what: a
// person sees only their own household, and there an owner manages while
// a member reads. Another household's device answers 404.
//
// Templates, style sheet and script are embedded; the Content-Security-
// Policy allows nothing inline.
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is the part of storage the pages read.
type Store interface {
	Household(ctx context.Context, id string) (store.Household, error)
	Device(ctx context.Context, id string) (store.Device, error)
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
	Violations(ctx context.Context, deviceID string, limit int) ([]store.ViolationCount, int, error)
	Account(ctx context.Context, id string) (store.Account, error)
}

// Catalog supplies the data manifests in force.
type Catalog interface {
	Current(deviceType string) (*catalog.Entry, error)
	Types() []string
}

// Ingest supplies counts the ingest pipeline has not yet written to the
// store, so the pages show up-to-the-second figures.
type Ingest interface {
	PendingCounters(deviceID string) store.DeviceCounters
	PendingViolations(deviceID string) []store.ViolationCount
}

// Exports prepares people's data exports in the background
// (*export.Service does).
type Exports interface {
	// Background reports whether exports are prepared in the background.
	Background() bool
	// Start starts acc's export, or finds the one already running;
	// identity, if not nil, opens history only the person can open.
	Start(ctx context.Context, acc store.Account, identity age.Identity) (export.JobStatus, bool, error)
	// List returns the account's jobs, newest first, and the hub nodes
	// whose jobs it lacks (they did not answer); with an error, what it
	// could have.
	List(ctx context.Context, accountID string) (export.JobList, error)
	Status(accountID, jobID string) (export.JobStatus, error)
	Open(ctx context.Context, accountID, jobID string) (io.ReadCloser, export.JobStatus, error)
	Cancel(accountID, jobID string) error
}

// Presence tells whether a device is connected over MQTT.
type Presence interface {
	Connected(deviceID string) bool
}

// IdentityOpener opens readings with a person's own age identity
// (*vault.Vault does).
type IdentityOpener interface {
	OpenReadingsWithIdentity(ownerID, deviceID string, rs []store.Reading, identity age.Identity) error
}

// Config wires the pages to the rest of the hub.
type Config struct {
	// Monitor, when set, explains on each device page what the abuse
	// monitor found and lets the owner release a device it holds back.
	Monitor Monitor
	// Policies, when set, lets the admin choose the action per alarm
	// severity (/admin/monitoring).
	Policies Policies
	// Alerts, when set, lets each person choose which alarms reach them
	// by e-mail (/alerts); AlertMail says whether the hub can send any.
	Alerts    AlertPrefs
	AlertMail bool
	Identity  *identity.Service
	Store     Store
	Catalog   Catalog
	Ingest    Ingest   // optional
	Presence  Presence // optional
	// History reads the readings the device pages show; it records every
	// read in the transparency log first, and a page whose read cannot be
	// recorded shows no readings. When nil, the pages show no readings.
	// Changes made through the pages are recorded by the services that
	// make them (identity, consent, erasure, keys, recipients), with the
	// person as the actor: the pages record nothing themselves.
	History *history.Service
	// KeyOpener, when set, opens readings with a person's own age
	// key for one view of a device page (user-held mode); the key is
	// kept nowhere.
	KeyOpener IdentityOpener
	Logger    *slog.Logger
	// MQTTAddr is the broker address shown in device instructions.
	MQTTAddr string
	// MQTTTLS says MQTTAddr is MQTT over TLS; devices then verify the hub
	// against MQTTCAFile, the hub's own authority, or against the
	// system's authorities when it is empty.
	MQTTTLS    bool
	MQTTCAFile string
	// CAFingerprint is the SHA-256 fingerprint of the hub's own
	// authority, shown where devices are added so people can check the
	// ca.pem a device got ("" without one).
	CAFingerprint string
	// SecureCookies sets the Secure flag on cookies (on when the hub is
	// served over TLS; requests that arrive over TLS get it anyway).
	SecureCookies bool
	// Consent, when set, gives each device page its per-stream switches
	// (one per use: purpose × recipient), the routing form, the person's
	// consent records and their signed receipts. When nil, the page says
	// consent is not available on this hub.
	Consent *consent.Service
	// Log, when set, is read for the "Who accessed my data" page (/log):
	// the entries of the person's household, their proofs and the signed
	// checkpoint. When nil, that page says the log is not available.
	Log *auditlog.Log
	// Exports, when set, lets "My data" prepare the export in the
	// background, with a progress page and a download when it is ready
	// (the direct download stays): the export service, which records each
	// export and reads the household's data for it.
	Exports Exports
	// Erasure, when set, gives "My data" its deletion pages: readings by
	// device, stream and dates (/my-data/delete), unlinking history into
	// anonymised aggregates (/my-data/unlink) and deleting the account
	// (/my-data/leave). Keys, when set, shows and changes who holds the
	// data keys (/my-data/keys). When nil, those pages say they are not
	// available on this hub.
	Erasure Eraser
	Keys    Keys
	// Recipients, when set, gives "Where your data goes" (/recipients):
	// who the manifests of the household's devices name as recipients,
	// where each receives and how delivery went, and, for owners, setting
	// and removing where each receives. When nil, the page says this hub
	// does not send data to anyone.
	Recipients Recipients
	// Advisories, Firmware and Operator, when set, show each device's
	// firmware and open advisories, list the household's open advisories
	// first on the home page, and name the hub's operator (the footer, the
	// Learn page, and /operator where the admin edits it).
	Advisories Advisories
	Firmware   Firmware
	Operator   Operator
	// UpdateControls, when set, gives owners the update buttons on the
	// device page (install now, put off, automatic security updates).
	UpdateControls UpdateControls
	// Restrict, when set, offers owners to put a device a flaw affects
	// on hold until it is fixed.
	Restrict Restricter
	// Feeds, when set, warns on the home and admin pages about advisory
	// feeds not refreshed for a week, and lists the feeds for the admin.
	Feeds Feeds
	// Updates, when set, gives the page of a device whose manifest names
	// an update repository its "Updates" section.
	Updates Updates
	// Apps, when set, gives "Your apps" (/apps) and the apps part of each
	// device page: the household's own programs that get readings over
	// MQTT, and the switches for what each gets. When nil, the page says
	// this hub has no apps.
	Apps Apps
	// Bridge, when set, shows on the apps page what a Zigbee2MQTT bridge
	// announced and whether it is online.
	Bridge Bridge
	// Assess, when set, gives the "Hub check-up" page: the security
	// audit's findings and their suppressions.
	Assess Assessor
}

// Server serves the browser interface.
type Server struct {
	cfg     Config
	id      *identity.Service
	st      Store
	log     *slog.Logger
	pages   map[string]*pageTemplate
	assets  map[string]asset
	secrets *oneTimeSecrets
	now     func() time.Time

	handlerOnce sync.Once
	handler     http.Handler
}

// New builds the browser interface. It panics if an embedded template does
// not parse, which the package's tests rule out.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		id:      cfg.Identity,
		st:      cfg.Store,
		log:     cfg.Logger,
		secrets: newOneTimeSecrets(),
		now:     time.Now,
	}
	s.assets = loadAssets()
	s.pages = mustParsePages(s.funcs())
	return s
}

// Handler returns the pages, to be mounted at "/" next to the API. Every
// state-changing request must come from this origin (Go's
// CrossOriginProtection) and carry the form's CSRF token.
func (s *Server) Handler() http.Handler {
	s.handlerOnce.Do(func() {
		mux := http.NewServeMux()
		s.routes(mux)
		cop := http.NewCrossOriginProtection()
		cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.renderError(w, r, http.StatusForbidden, errCrossSite)
		}))
		s.handler = securityHeaders(cop.Handler(mux))
	})
	return s.handler
}

func (s *Server) routes(m *http.ServeMux) {
	m.HandleFunc("GET /static/{file}", s.static)

	m.HandleFunc("GET /setup", s.getSetup)
	m.HandleFunc("POST /setup", s.postSetup)
	m.HandleFunc("GET /login", s.getLogin)
	m.HandleFunc("POST /login", s.postLogin)
	m.HandleFunc("POST /login/code", s.postLoginCode)
	m.HandleFunc("POST /logout", s.authed(s.postLogout))
	m.HandleFunc("GET /learn", s.learn)

	m.HandleFunc("GET /{$}", s.authed(s.home))
	m.HandleFunc("GET /add", s.authed(s.getAdd))
	m.HandleFunc("POST /add", s.authed(s.postAdd))
	m.HandleFunc("GET /devices/{id}", s.authed(s.devicePage))
	m.HandleFunc("GET /devices/{id}/credential", s.authed(s.credentialPage))
	m.HandleFunc("GET /devices/{id}/rotate", s.authed(s.getRotate))
	m.HandleFunc("POST /devices/{id}/rotate", s.authed(s.postRotate))
	m.HandleFunc("GET /devices/{id}/revoke", s.authed(s.getRevoke))
	m.HandleFunc("POST /devices/{id}/revoke", s.authed(s.postRevoke))
	m.HandleFunc("POST /devices/{id}/release", s.authed(s.postRelease))
	s.deviceControlRoutes(m)

	m.HandleFunc("POST /devices/{id}/consent", s.authed(s.postConsent))
	m.HandleFunc("POST /devices/{id}/consent/routing", s.authed(s.postRouting))
	m.HandleFunc("POST /devices/{id}/consent/ask", s.authed(s.postAsk))
	m.HandleFunc("POST /devices/{id}/readings/open", s.authed(s.postOpenReadings))
	m.HandleFunc("GET /consent/receipts/{id}", s.authed(s.consentReceipt))
	m.HandleFunc("GET /my-data", s.authed(s.myData))
	m.HandleFunc("POST /my-data/export", s.authed(s.postExport))
	m.HandleFunc("GET /my-data/exports/{id}", s.authed(s.exportPage))
	m.HandleFunc("GET /my-data/exports/{id}/download", s.authed(s.exportDownload))
	m.HandleFunc("POST /my-data/exports/{id}/delete", s.authed(s.postExportDelete))
	m.HandleFunc("GET /my-data/delete", s.authed(s.getDelete))
	m.HandleFunc("POST /my-data/delete", s.authed(s.postDelete))
	m.HandleFunc("GET /my-data/unlink", s.authed(s.getUnlink))
	m.HandleFunc("POST /my-data/unlink", s.authed(s.postUnlink))
	m.HandleFunc("GET /my-data/leave", s.authed(s.getLeave))
	m.HandleFunc("POST /my-data/leave", s.authed(s.postLeave))
	m.HandleFunc("GET /my-data/keys", s.authed(s.keysPage))
	m.HandleFunc("GET /my-data/keys/new", s.authed(s.newKeyPage))
	m.HandleFunc("POST /my-data/keys/{owner}/rotate", s.authed(s.postRotateKey))
	m.HandleFunc("POST /my-data/keys/{owner}/user-held", s.authed(s.postUserHeld))
	m.HandleFunc("POST /my-data/keys/{owner}/hub-assisted", s.authed(s.postHubAssisted))
	m.HandleFunc("GET /machine-learning", s.authed(s.learningPage))
	m.HandleFunc("POST /machine-learning/switch", s.authed(s.postLearning))
	m.HandleFunc("POST /machine-learning/ask", s.authed(s.postLearningAsk))
	m.HandleFunc("GET /recipients", s.authed(s.recipientsPage))
	m.HandleFunc("POST /recipients/set", s.authed(s.postRecipientSet))
	m.HandleFunc("POST /recipients/remove", s.authed(s.postRecipientRemove))
	m.HandleFunc("GET /apps", s.authed(s.appsPage))
	m.HandleFunc("POST /apps/add", s.authed(s.postAppAdd))
	m.HandleFunc("POST /apps/switch", s.authed(s.postAppSwitch))
	m.HandleFunc("POST /apps/rotate", s.authed(s.postAppRotate))
	m.HandleFunc("POST /apps/revoke", s.authed(s.postAppRevoke))
	m.HandleFunc("POST /apps/zigbee", s.authed(s.postZigbeeAdd))
	m.HandleFunc("GET /log", s.authed(s.logPage))
	m.HandleFunc("GET /log/entries/{index}/verify", s.authed(s.verifyPage))

	m.HandleFunc("GET /household", s.authed(s.householdPage))
	m.HandleFunc("POST /household/members", s.authed(s.postMember))
	m.HandleFunc("POST /household/members/{id}/role", s.authed(s.postRole))
	m.HandleFunc("POST /household/members/{username}/second-factor/reset", s.authed(s.postResetSecondFactor))
	m.HandleFunc("GET /admin", s.authed(s.adminPage))
	m.HandleFunc("POST /admin/households", s.authed(s.postHousehold))
	m.HandleFunc("GET /admin/monitoring", s.authed(s.monitoringPage))
	m.HandleFunc("POST /admin/monitoring", s.authed(s.postMonitoring))
	m.HandleFunc("GET /alerts", s.authed(s.alertsPage))
	m.HandleFunc("POST /alerts", s.authed(s.postAlerts))
	s.feedRoutes(m)
	m.HandleFunc("GET /operator", s.authed(s.operatorPage))
	m.HandleFunc("POST /operator", s.authed(s.postOperator))

	m.HandleFunc("GET /audit", s.authed(s.auditPage))
	m.HandleFunc("POST /audit/run", s.authed(s.postAuditRun))
	m.HandleFunc("POST /audit/findings/{id}/suppress", s.authed(s.postAuditSuppress))
	m.HandleFunc("POST /audit/findings/{id}/unsuppress", s.authed(s.postAuditUnsuppress))
	m.HandleFunc("GET /privacy-assessment", s.authed(s.piaPage))
	m.HandleFunc("GET /conformance", s.authed(s.conformancePage))
	m.HandleFunc("GET /security", s.authed(s.security))
	m.HandleFunc("POST /security/password", s.authed(s.postPassword))
	m.HandleFunc("POST /security/second-factor", s.authed(s.postSecondFactor))
	m.HandleFunc("POST /security/second-factor/confirm", s.authed(s.postSecondFactorConfirm))
	m.HandleFunc("POST /security/second-factor/disable", s.authed(s.postSecondFactorDisable))
	m.HandleFunc("POST /security/sessions/{id}/revoke", s.authed(s.postRevokeSession))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusNotFound, nil)
	})
}

// contentSecurityPolicy allows scripts, styles and everything else from
// this origin only, and nothing inline.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		h.ServeHTTP(w, r)
	})
}

// asset is one embedded static file with its content hash, which the
// pages put in the URL so a changed file is fetched anew.
type asset struct {
	body        []byte
	contentType string
	hash        string
}

func loadAssets() map[string]asset {
	out := map[string]asset{}
	types := map[string]string{
		".css": "text/css; charset=utf-8",
		".js":  "text/javascript; charset=utf-8",
		".svg": "image/svg+xml",
	}
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path.Base(p)] = asset{body: b, contentType: types[path.Ext(p)], hash: hex.EncodeToString(sum[:6])}
		return nil
	})
	return out
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[r.PathValue("file")]
	if !ok || a.contentType == "" {
		http.NotFound(w, r)
		return
	}
	etag := `"` + a.hash + `"`
	w.Header().Set("ETag", etag)
	if r.URL.Query().Get("v") == a.hash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	_, _ = w.Write(a.body)
}

// assetURL is the URL of a static file, with its content hash.
func (s *Server) assetURL(name string) string {
	a, ok := s.assets[name]
	if !ok {
		return "/static/" + name
	}
	return "/static/" + name + "?v=" + a.hash
}
