package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/manifest/importer"
	"github.com/candor-iot/candor/internal/store"
)

// maxManifest bounds a manifest document's size.
const maxManifest = 1 << 20

type manifestInfoJSON struct {
	DeviceType string    `json:"device_type"`
	Version    int       `json:"version"`
	Draft      bool      `json:"draft"`
	Title      string    `json:"title"`
	Streams    []string  `json:"streams"`
	CreatedAt  time.Time `json:"created_at"`
}

func toManifestInfo(e *catalog.Entry) manifestInfoJSON {
	return manifestInfoJSON{DeviceType: e.Manifest.DeviceType, Version: e.Version, Draft: e.Draft,
		Title: e.Manifest.Title, Streams: e.Manifest.StreamNames(), CreatedAt: e.CreatedAt}
}

// listManifests lists the manifest in force for every device type.
func (s *Server) listManifests(w http.ResponseWriter, r *http.Request, p access.Principal) {
	out := []manifestInfoJSON{}
	for _, typ := range s.cfg.Catalog.Types() {
		e, err := s.cfg.Catalog.Current(typ)
		if err != nil {
			continue
		}
		out = append(out, toManifestInfo(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"manifests": out})
}

func readManifest(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/td+json" && mt != "application/ld+json") {
			return nil, badRequest("Content-Type must be application/json or application/td+json, not %q", ct)
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxManifest))
	if err != nil {
		return nil, badRequest("body: %v", err)
	}
	return b, nil
}

// putManifest stores a new manifest version. Manifests apply hub-wide, so
// only the admin (or the local operator) may change them.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	doc, err := readManifest(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.cfg.Catalog.Put(r.Context(), doc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("manifest stored", "type", e.Manifest.DeviceType, "version", e.Version, "draft", e.Draft)
	writeJSON(w, http.StatusCreated, map[string]any{"manifest": toManifestInfo(e)})
}

// validateManifest checks a document without storing it, for makers.
func (s *Server) validateManifest(w http.ResponseWriter, r *http.Request, p access.Principal) {
	doc, err := readManifest(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m, err := manifest.Parse("manifest", doc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true, "device_type": m.DeviceType, "streams": m.StreamNames(), "draft": m.Draft})
}

// getManifest serves a manifest document exactly as stored: the version
// in force, or ?version=N.
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, p access.Principal) {
	typ := r.PathValue("type")
	var e *catalog.Entry
	var err error
	if v := r.URL.Query().Get("version"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 {
			s.fail(w, r, badRequest("version: %q is not a positive integer", v))
			return
		}
		e, err = s.cfg.Catalog.Version(r.Context(), typ, n)
	} else {
		e, err = s.cfg.Catalog.Current(typ)
		if errors.Is(err, catalog.ErrNoManifest) {
			err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/td+json")
	w.Header().Set("X-Candor-Manifest-Version", strconv.Itoa(e.Version))
	_, _ = w.Write(e.Manifest.Raw)
}

func (s *Server) manifestVersions(w http.ResponseWriter, r *http.Request, p access.Principal) {
	vs, err := s.cfg.Catalog.Versions(r.Context(), r.PathValue("type"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]manifestInfoJSON, 0, len(vs))
	for _, e := range vs {
		out = append(out, toManifestInfo(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (s *Server) confirmManifest(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || n < 1 {
		s.fail(w, r, badRequest("version: %q is not a positive integer", r.PathValue("version")))
		return
	}
	e, err := s.cfg.Catalog.Confirm(r.Context(), r.PathValue("type"), n)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			var ve *manifest.ValidationError
			if !errors.As(err, &ve) {
				err = badRequest("%v", err)
			}
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"manifest": toManifestInfo(e)})
}

// deviceManifest serves the manifest in force for a device.
func (s *Server) deviceManifest(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.cfg.Catalog.Current(d.Type)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/td+json")
	w.Header().Set("X-Candor-Manifest-Version", strconv.Itoa(e.Version))
	_, _ = w.Write(e.Manifest.Raw)
}

type violationJSON struct {
	Stream string    `json:"stream"`
	Field  string    `json:"field,omitempty"`
	Reason string    `json:"reason"`
	Count  int64     `json:"count"`
	LastAt time.Time `json:"last_at"`
}

// violations lists where a device broke its manifest: stream, field and
// reason with counts, never the values it sent.
func (s *Server) violations(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Pending first: a write to the store between the two reads then
	// counts its violations twice for that instant, never not at all.
	pending := s.cfg.Ingest.PendingViolations(d.ID)
	stored, total, err := s.st.Violations(r.Context(), d.ID, violationsListed)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// As the store will hold them once the pending counts are written.
	merged := store.MergeViolations(stored, pending)
	out := make([]violationJSON, 0, len(merged))
	for _, v := range merged {
		out = append(out, violationJSON{Stream: v.Stream, Field: v.Field, Reason: v.Reason, Count: v.Count, LastAt: v.LastAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastAt.After(out[j].LastAt) })
	leftOff := total - len(stored)
	if len(out) > violationsListed {
		leftOff += len(out) - violationsListed
		out = out[:violationsListed]
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "violations": out, "left_off": leftOff})
}

// violationsListed is how many violation rows GET .../violations lists,
// newest first; "left_off" counts the rest.
const violationsListed = 50

// writeLabel answers with the two-layer plain-language label: JSON by
// default, text/plain or text/markdown when asked for with ?format=.
func writeLabel(w http.ResponseWriter, r *http.Request, e *catalog.Entry) {
	l := manifest.Explain(e.Manifest, time.Now())
	switch r.URL.Query().Get("format") {
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, l.Text())
	case "markdown":
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		_, _ = io.WriteString(w, l.Markdown())
	default:
		writeJSON(w, http.StatusOK, map[string]any{"manifest_version": e.Version, "label": l})
	}
}

func (s *Server) deviceLabel(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.cfg.Catalog.Current(d.Type)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeLabel(w, r, e)
}

// manifestLabel lets a person read a device type's label before adding
// such a device.
func (s *Server) manifestLabel(w http.ResponseWriter, r *http.Request, p access.Principal) {
	e, err := s.cfg.Catalog.Current(r.PathValue("type"))
	if err != nil {
		if errors.Is(err, catalog.ErrNoManifest) {
			err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		s.fail(w, r, err)
		return
	}
	writeLabel(w, r, e)
}

// importManifest turns a Home Assistant MQTT discovery config (a JSON
// object, or an array of them for a device's entities) or a Zigbee2MQTT
// device definition into a DRAFT manifest, stored but not enforced until
// the admin confirms it.
func (s *Server) importManifest(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	typ := r.URL.Query().Get("type")
	if !identity.ValidDeviceType(typ) {
		s.fail(w, r, badRequest("type: give the new device type as ?type=, 1-40 characters of a-z, 0-9 and -"))
		return
	}
	body, err := readManifest(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var doc []byte
	switch r.PathValue("format") {
	case "home-assistant":
		var list []json.RawMessage
		if json.Unmarshal(body, &list) == nil {
			configs := make([][]byte, len(list))
			for i, c := range list {
				configs[i] = c
			}
			doc, err = importer.FromHomeAssistant(typ, configs...)
		} else {
			doc, err = importer.FromHomeAssistant(typ, body)
		}
	case "zigbee2mqtt":
		doc, err = importer.FromZigbee2MQTT(typ, body)
	default:
		s.fail(w, r, fmt.Errorf("%w: import format %q (use home-assistant or zigbee2mqtt)", store.ErrNotFound, r.PathValue("format")))
		return
	}
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	e, err := s.cfg.Catalog.Put(r.Context(), doc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"manifest": toManifestInfo(e),
		"notice": "This is a draft with suggested categories and purposes. Read it, edit it if needed, then confirm it. Until then it is not enforced: the version in force before (if any) still applies, and without one devices of this type cannot be added."})
}
