package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/onboarding"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

type countersJSON struct {
	ACLDenied    int64 `json:"acl_denied"`
	Refused      int64 `json:"refused"`
	AuthFailures int64 `json:"auth_failures"`
}

type mqttJSON struct {
	Username    string `json:"username"`
	ClientID    string `json:"client_id"`
	TopicPrefix string `json:"topic_prefix"`
	Control     string `json:"control_topics"`
}

type deviceJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	HouseholdID string `json:"household_id"`
	// KeyOwner is whose keys seal the readings: an account id, or the
	// household id for a shared device.
	KeyOwner        string       `json:"key_owner"`
	CreatedAt       time.Time    `json:"created_at"`
	CredentialSetAt time.Time    `json:"credential_set_at"`
	Revoked         bool         `json:"revoked"`
	RevokedAt       *time.Time   `json:"revoked_at,omitempty"`
	Connected       bool         `json:"connected"`
	Counters        countersJSON `json:"counters"`
	MQTT            mqttJSON     `json:"mqtt"`
}

func (s *Server) toDevice(d store.Device) deviceJSON {
	c := d.Counters
	if s.cfg.Ingest != nil {
		c = c.Add(s.cfg.Ingest.PendingCounters(d.ID))
	}
	out := deviceJSON{
		KeyOwner: d.KeyOwnerID(),
		ID:       d.ID, Name: d.Name, Type: d.Type, HouseholdID: d.HouseholdID,
		CreatedAt: d.CreatedAt, CredentialSetAt: d.CredentialSetAt, Revoked: d.Revoked(),
		Counters: countersJSON{ACLDenied: c.ACLDenied, Refused: c.Refused, AuthFailures: c.AuthFailures},
		MQTT: mqttJSON{
			Username:    d.ID,
			ClientID:    d.ID,
			TopicPrefix: "candor/" + d.ID + "/",
			Control:     "candor/" + d.ID + "/control/+",
		},
	}
	if d.Revoked() {
		t := d.RevokedAt
		out.RevokedAt = &t
	}
	if s.cfg.Presence != nil && !d.Revoked() {
		out.Connected = s.cfg.Presence.Connected(d.ID)
	}
	return out
}

// device loads a device the caller may see; others' devices are reported
// as not found so ids cannot be probed.
func (s *Server) device(r *http.Request, p access.Principal) (store.Device, error) {
	d, err := s.st.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		return store.Device{}, err
	}
	if err := p.SeeDevice(d); err != nil {
		return store.Device{}, err
	}
	return d, nil
}

// managedDevice loads a device the caller may change (an owner of its
// household, or the operator).
func (s *Server) managedDevice(r *http.Request, p access.Principal) (store.Device, error) {
	d, err := s.device(r, p)
	if err != nil {
		return store.Device{}, err
	}
	if !p.CanManage(d.HouseholdID) {
		return store.Device{}, identity.ErrForbidden
	}
	return d, nil
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, p access.Principal) {
	var list []store.Device
	var err error
	if p.Operator && r.URL.Query().Get("household") == "" {
		list, err = s.st.AllDevices(r.Context())
	} else {
		var hh string
		if hh, err = s.householdParam(r, p, r.URL.Query().Get("household")); err == nil {
			list, err = s.st.Devices(r.Context(), hh)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]deviceJSON, 0, len(list))
	for _, d := range list {
		out = append(out, s.toDevice(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (s *Server) addDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	var in struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Household string `json:"household,omitempty"`
		Secret    string `json:"secret,omitempty"`
		// Shared devices' readings are sealed under the household's keys
		// instead of the keys of the person adding them.
		Shared bool `json:"shared,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	hh, err := s.householdParam(r, p, in.Household)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hh == "" {
		// The operator adds a device before anyone set the hub up: the
		// household is created now and the first account will own it.
		hh, err = s.id.EnsureHousehold(r.Context(), "Home")
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if !p.CanManage(hh) {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	// Nothing may be added whose data the hub could not describe and
	// enforce: the type must have a manifest in force.
	if _, err := s.cfg.Catalog.Current(in.Type); err != nil && identity.ValidDeviceType(in.Type) {
		s.fail(w, r, identity.ErrInvalid.Errorf("type: device type %q has no data manifest; types with one: %s (add a manifest first with POST /api/v1/manifests)",
			in.Type, strings.Join(s.cfg.Catalog.Types(), ", ")))
		return
	}
	// A person's device is sealed under their own keys, so deleting their
	// account shreds its history; the operator's and shared devices are
	// the household's.
	d, secret, err := s.id.AddDevice(r.Context(), identity.NewDevice{HouseholdID: hh, Name: in.Name, Type: in.Type, Secret: in.Secret,
		KeyOwner: p.KeyOwnerFor(hh, in.Shared)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.withSecret(d, secret))
}

// withSecret is the one response that ever contains a device secret.
func (s *Server) withSecret(d store.Device, secret string) map[string]any {
	stream, payload := "test", []byte(`{"value": 1}`)
	if e, err := s.cfg.Catalog.Current(d.Type); err == nil && len(e.Manifest.Streams) > 0 {
		st := e.Manifest.Streams[0]
		stream, payload = st.Name, st.SamplePayload()
	}
	return map[string]any{
		"device":        s.toDevice(d),
		"secret":        secret,
		"secret_notice": "This secret is shown once and stored only as a hash. Put it in the device now.",
		"mosquitto_pub": onboarding.MosquittoPub(s.cfg.MQTTAddr, s.cfg.MQTTTLS, s.cfg.MQTTCAFile, d.ID, secret, stream, payload),
	}
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": s.toDevice(d)})
}

func (s *Server) rotateDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Secret string `json:"secret,omitempty"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	secret, err := s.id.RotateDevice(r.Context(), d.ID, in.Secret)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err = s.st.Device(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withSecret(d, secret))
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.id.RevokeDevice(r.Context(), d.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err = s.st.Device(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": s.toDevice(d)})
}

type readingJSON struct {
	Seq             int64           `json:"seq"`
	Stream          string          `json:"stream"`
	Time            time.Time       `json:"time"`
	Payload         json.RawMessage `json:"payload"`
	ManifestVersion int             `json:"manifest_version"`
}

func (s *Server) readings(w http.ResponseWriter, r *http.Request, p access.Principal) {
	s.serveReadings(w, r, p, nil)
}

// openReadingsWithIdentity is readings for history under a key only the
// person holds (user-held mode): they send their age identity, which the
// hub uses for this request only and does not keep.
func (s *Server) openReadingsWithIdentity(w http.ResponseWriter, r *http.Request, p access.Principal) {
	var in struct {
		Identity string `json:"identity"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := vault.ParseIdentity(in.Identity)
	if err != nil {
		s.fail(w, r, identity.ErrInvalid.Errorf("identity: %w", err))
		return
	}
	s.serveReadings(w, r, p, id)
}

func (s *Server) serveReadings(w http.ResponseWriter, r *http.Request, p access.Principal, id age.Identity) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if id != nil && s.cfg.IdentityOpener == nil {
		s.fail(w, r, badRequest("this hub cannot open readings with an identity"))
		return
	}
	if s.cfg.History == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "history-unavailable", "this hub does not serve readings")
		return
	}
	q, err := readingQuery(r, d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Every read of personal data is logged (by history) before the data
	// is returned; if it cannot be logged it is not returned.
	list, err := s.cfg.History.Read(r.Context(), d, q, "viewing history")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if id != nil {
		err = s.cfg.IdentityOpener.OpenReadingsWithIdentity(d.KeyOwnerID(), d.ID, list, id)
		if errors.Is(err, vault.ErrWrongIdentity) {
			err = identity.ErrInvalid.Errorf("identity: %w", err)
		}
	} else {
		err = s.openReadings(d, list)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]readingJSON, 0, len(list))
	var last int64
	for _, rd := range list {
		out = append(out, readingJSON{Seq: rd.Seq, Stream: rd.Stream, Time: rd.Time, Payload: rd.Payload, ManifestVersion: rd.ManifestVersion})
		last = rd.Seq
	}
	resp := map[string]any{"device_id": d.ID, "readings": out}
	if last > 0 {
		resp["next_after"] = last
	}
	writeJSON(w, http.StatusOK, resp)
}

func readingQuery(r *http.Request, deviceID string) (store.ReadingQuery, error) {
	v := r.URL.Query()
	q := store.ReadingQuery{DeviceID: deviceID, Stream: v.Get("stream")}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			// Storage keeps nanoseconds since 1970 in 64 bits; outside
			// these years a time cannot be compared.
			if err == nil && (t.Year() < 1700 || t.Year() > 2200) {
				return q, badRequest("%s: %q is outside the years 1700-2200", f.name, s)
			}
			if err != nil {
				return q, badRequest("%s: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", f.name, s)
			}
			*f.dst = t
		}
	}
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return q, badRequest("after: %q is not a non-negative integer", s)
		}
		q.AfterSeq = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return q, badRequest("limit: %q must be an integer from 1 to 10000", s)
		}
		q.Limit = n
	}
	return q, nil
}

// ingest accepts one reading over HTTP from a device authenticating with
// its own credential (HTTP Basic: device id and secret). It answers only
// after the reading is durably stored.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id == "" || secret == "" || id == secret {
		w.Header().Set("WWW-Authenticate", `Basic realm="candor devices"`)
		writeProblem(w, r, http.StatusUnauthorized, "unauthenticated", "send the device id and secret with HTTP Basic authentication")
		return
	}
	d, err := s.id.AuthenticateDevice(r.Context(), identity.Origin{Addr: r.RemoteAddr}, id, secret)
	if err != nil {
		if errors.Is(err, identity.ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Basic realm="candor devices"`)
		}
		s.fail(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "readings are JSON objects sent as application/json")
		return
	}
	body, err := readLimited(r, s.cfg.MaxPayloadBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stream := r.PathValue("stream")
	t, err := s.cfg.Ingest.Enqueue(r.Context(), d.ID, stream, body)
	if err == nil {
		err = t.Wait(r.Context())
	}
	if errors.Is(err, ingest.ErrStorage) {
		// The pipeline logs storage failures, rate-limited; a line per
		// request here would fill a full disk faster.
		w.Header().Set("Retry-After", "30")
		writeProblem(w, r, http.StatusServiceUnavailable, "storage-failing",
			"the hub could not store the reading, so it was not kept: send it again later")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !t.Stored() {
		// Accepted but not kept: the person switched this stream off.
		writeJSON(w, http.StatusOK, map[string]any{"stored": false, "reason": "consent", "device_id": d.ID, "stream": stream})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"stored": true, "device_id": d.ID, "stream": stream})
}

// readLimited reads at most limit+1 bytes: enough for the policy path to
// see that a reading is too large (and count it) without buffering more.
func readLimited(r *http.Request, limit int) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, badRequest("body: %v", err)
	}
	return body, nil
}

// errUserHeld explains honestly why history cannot be shown.
var errUserHeld = errors.New("this history is encrypted to its owner's own age key (user-held mode): the hub cannot read it, by design; read it with POST /api/v1/devices/{id}/readings/open and your age identity (used for that request only), or let the hub read it again: switch back to hub-assisted mode with PUT /api/v1/keys/me (or /household for a shared device) and send the identity along")

// openReadings decrypts sealed payloads in place. Readings stored before
// encryption existed are plain and pass through.
func (s *Server) openReadings(d store.Device, list []store.Reading) error {
	if s.cfg.Vault == nil {
		return nil
	}
	err := s.cfg.Vault.OpenReadings(d.KeyOwnerID(), d.ID, list)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, vault.ErrUserHeld):
		return errConflictUserHeld.Errorf("%w", errUserHeld)
	case errors.Is(err, vault.ErrShredded):
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	return err
}

// deleteReadings deletes a device's history, optionally only one stream
// (?stream=) and a time range (?since= inclusive, ?until= exclusive). It
// works in bounded chunks, so an interrupted deletion leaves the data
// consistent and can simply be repeated. Household owners decide.
func (s *Server) deleteReadings(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q, err := readingQuery(r, d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Checked before anything is deleted: a range that ends before it
	// starts is a mistake in the request, not an empty range to delete.
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid-input",
			fmt.Sprintf("since (%s) is after until (%s): give since earlier than until; nothing was deleted",
				q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano)))
		return
	}
	if s.cfg.Erasure == nil {
		s.fail(w, r, errors.New("deletion is not configured on this hub"))
		return
	}
	total, err := s.cfg.Erasure.DeleteRange(r.Context(), d, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "deleted": total})
}
