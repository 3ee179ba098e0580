package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// Eraser deletes accounts and unlinks history (package erasure).
type Eraser interface {
	DeleteAccount(ctx context.Context, acc store.Account, opt erasure.DeleteOptions) (erasure.Report, error)
	Unlink(ctx context.Context, acc store.Account, opt erasure.UnlinkOptions) (erasure.Report, error)
	DeleteRange(ctx context.Context, d store.Device, q store.ReadingQuery) (int64, error)
}

// AggregateStore lists the anonymised cells unlinking keeps.
type AggregateStore interface {
	Aggregates(ctx context.Context, q store.AggregateQuery) ([]store.Aggregate, error)
}

// Keys manages key owners' encryption settings (package vault).
type Keys interface {
	Status(ownerID string) (vault.Status, error)
	Enroll(ctx context.Context, ownerID string, s vault.Settings) (vault.Enrollment, error)
	Rotate(ctx context.Context, ownerID string) (string, error)
	Rewrap(ctx context.Context, ownerID string, identity age.Identity) (vault.Rewrapped, error)
}

// deleteMe deletes the caller's account (see erasure.Service.DeleteAccount).
// The password is asked again: this cannot be undone.
func (s *Server) deleteMe(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator || s.cfg.Erasure == nil {
		s.fail(w, r, badRequest("account deletion is a person's: log in as the account to delete"))
		return
	}
	var in struct {
		Password string `json:"password"`
		Unlink   bool   `json:"unlink,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Password == "" {
		s.fail(w, r, identity.ErrInvalid.Errorf("password: required, to confirm that you mean it"))
		return
	}
	if err := s.id.ConfirmPassword(r.Context(), p.Account.ID, in.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.cfg.Erasure.DeleteAccount(r.Context(), p.Account, erasure.DeleteOptions{Unlink: in.Unlink})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.endSessionCookie(w, r)
	writeJSON(w, http.StatusOK, rep)
}

// unlinkMe replaces the history of the caller's devices with anonymised
// aggregates.
func (s *Server) unlinkMe(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator || s.cfg.Erasure == nil {
		s.fail(w, r, badRequest("unlinking is a person's: log in as a member of the household"))
		return
	}
	var in struct {
		Devices []string `json:"devices,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.cfg.Erasure.Unlink(r.Context(), p.Account, erasure.UnlinkOptions{DeviceIDs: in.Devices})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

type aggregateJSON struct {
	DeviceType string    `json:"device_type"`
	Stream     string    `json:"stream"`
	Field      string    `json:"field"`
	Hour       time.Time `json:"hour"`
	Count      int64     `json:"count"`
	Mean       float64   `json:"mean"`
}

// aggregates lists the anonymised cells kept by unlinking. They name no
// device or person; still, only the hub's administrators see them.
func (s *Server) aggregates(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	as, ok := s.st.(AggregateStore)
	if !ok {
		s.fail(w, r, errors.New("aggregates: store does not keep them"))
		return
	}
	q := store.AggregateQuery{DeviceType: r.URL.Query().Get("type"), Stream: r.URL.Query().Get("stream")}
	var err error
	if q.Since, err = timeParam(r, "since"); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.Until, err = timeParam(r, "until"); err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := as.Aggregates(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]aggregateJSON, 0, len(list))
	for _, a := range list {
		out = append(out, aggregateJSON{DeviceType: a.DeviceType, Stream: a.Stream, Field: a.Field, Hour: a.Hour.UTC(),
			Count: a.Count, Mean: a.Sum / float64(a.Count)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"aggregates": out, "min_count": erasure.MinCellCount})
}

func timeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest("%s: %q is not an RFC 3339 time (e.g. 2026-11-25T10:00:00Z)", name, v)
	}
	return t, nil
}

// setRole changes a household member's role (owners only).
func (s *Server) setRole(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("roles are changed by an owner of the household: log in as one"))
		return
	}
	var in struct {
		Role store.Role `json:"role"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.id.SetRole(r.Context(), p.Account, r.PathValue("id"), in.Role)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAccount(acc))
}

// --- keys ------------------------------------------------------------------

// keyOwner resolves {owner}: "me" (the caller's own keys) or "household"
// (the keys of the household's shared devices, which its owners manage).
func (s *Server) keyOwner(r *http.Request, p access.Principal, change bool) (string, error) {
	if p.Operator || s.cfg.Keys == nil {
		return "", badRequest("keys belong to people: log in as a member of the household")
	}
	switch r.PathValue("owner") {
	case "me":
		return p.Account.ID, nil
	case "household":
		if change && !p.CanManage(p.Account.HouseholdID) {
			return "", fmt.Errorf("%w: only an owner changes the household's keys", identity.ErrForbidden)
		}
		return p.Account.HouseholdID, nil
	}
	return "", fmt.Errorf("key owner %q: %w (use \"me\" or \"household\")", r.PathValue("owner"), store.ErrNotFound)
}

type keyStatusJSON struct {
	Owner      string          `json:"owner"`
	Mode       vault.Mode      `json:"mode"`
	Recipient  string          `json:"recipient,omitempty"`
	Shredded   bool            `json:"shredded"`
	HubCanRead string          `json:"hub_can_read"`
	Keys       []keyRecordJSON `json:"keys"`
	// Identity is the generated age identity, present once, in the answer
	// to the request that generated it. The hub does not keep it.
	Identity     string   `json:"identity,omitempty"`
	NotRewrapped []string `json:"not_rewrapped,omitempty"`
}

type keyRecordJSON struct {
	ID          string     `json:"id"`
	Mode        vault.Mode `json:"mode"`
	CreatedAt   time.Time  `json:"created_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	InUse       bool       `json:"in_use"`
	HubReadable bool       `json:"hub_readable"`
}

func (s *Server) keyStatus(ctx context.Context, owner string) (keyStatusJSON, error) {
	st, err := s.cfg.Keys.Status(owner)
	if errors.Is(err, vault.ErrUnknownOwner) {
		// Not enrolled yet (no reading so far): the default applies.
		if _, err := s.cfg.Keys.Enroll(ctx, owner, vault.Settings{Mode: vault.HubAssisted}); err != nil {
			return keyStatusJSON{}, err
		}
		st, err = s.cfg.Keys.Status(owner)
	}
	if err != nil {
		return keyStatusJSON{}, err
	}
	out := keyStatusJSON{Owner: owner, Mode: st.Mode, Recipient: st.Recipient, Shredded: st.Shredded,
		HubCanRead: st.HubCanRead, Keys: []keyRecordJSON{}}
	for _, k := range st.Keys {
		kj := keyRecordJSON{ID: k.KeyID, Mode: k.Mode, CreatedAt: k.CreatedAt.UTC(), InUse: k.InUse, HubReadable: k.HubReadable}
		if !k.RetiredAt.IsZero() {
			t := k.RetiredAt.UTC()
			kj.RetiredAt = &t
		}
		out.Keys = append(out.Keys, kj)
	}
	return out, nil
}

func (s *Server) getKeys(w http.ResponseWriter, r *http.Request, p access.Principal) {
	owner, err := s.keyOwner(r, p, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.keyStatus(r.Context(), owner)
	if err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// putKeys changes the mode and the person's age recipient: bring your own
// ("recipient": "age1…"), or let the hub generate a key pair
// ("generate_identity": true; the identity is in this answer only). Keys
// only the old identity opens are rewrapped when it is given ("identity").
func (s *Server) putKeys(w http.ResponseWriter, r *http.Request, p access.Principal) {
	owner, err := s.keyOwner(r, p, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Mode             vault.Mode `json:"mode"`
		Recipient        string     `json:"recipient,omitempty"`
		GenerateIdentity bool       `json:"generate_identity,omitempty"`
		Identity         string     `json:"identity,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Mode != vault.HubAssisted && in.Mode != vault.UserHeld {
		s.fail(w, r, identity.ErrInvalid.Errorf("mode: must be %q or %q", vault.HubAssisted, vault.UserHeld))
		return
	}
	if in.Recipient != "" && in.GenerateIdentity {
		s.fail(w, r, identity.ErrInvalid.Errorf("recipient: give your own recipient or ask for a generated one, not both"))
		return
	}
	if in.Mode == vault.UserHeld && in.Recipient == "" && !in.GenerateIdentity {
		s.fail(w, r, identity.ErrInvalid.Errorf("recipient: user-held mode needs your age recipient (\"age1…\") or generate_identity, or nobody could ever read the data"))
		return
	}
	var old age.Identity
	if in.Identity != "" {
		if old, err = vault.ParseIdentity(in.Identity); err != nil {
			s.fail(w, r, identity.ErrInvalid.Errorf("identity: %w", err))
			return
		}
	}
	if _, err := s.keyStatus(r.Context(), owner); err != nil { // enrolls the default first if needed
		s.fail(w, r, keyErr(err))
		return
	}
	en, err := s.cfg.Keys.Enroll(r.Context(), owner, vault.Settings{Mode: in.Mode, Recipient: in.Recipient, GenerateIdentity: in.GenerateIdentity})
	if err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	if old != nil {
		// Keys only the old identity opens follow the new setting too.
		rw, err := s.cfg.Keys.Rewrap(r.Context(), owner, old)
		if err != nil {
			s.fail(w, r, keyErr(err))
			return
		}
		en.NotRewrapped = rw.Skipped
	}
	out, err := s.keyStatus(r.Context(), owner)
	if err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	out.Identity = en.Identity
	out.NotRewrapped = en.NotRewrapped
	writeJSON(w, http.StatusOK, out)
}

// rotateKeys starts a new data key; history stays readable under the old
// ones.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request, p access.Principal) {
	owner, err := s.keyOwner(r, p, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.keyStatus(r.Context(), owner); err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	if _, err := s.cfg.Keys.Rotate(r.Context(), owner); err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	out, err := s.keyStatus(r.Context(), owner)
	if err != nil {
		s.fail(w, r, keyErr(err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// keyErr turns the vault's input errors into the API's.
func keyErr(err error) error {
	switch {
	case errors.Is(err, vault.ErrShredded):
		return fmt.Errorf("%w: these keys were destroyed", store.ErrNotFound)
	case errors.Is(err, vault.ErrWrongIdentity):
		return identity.ErrInvalid.Errorf("identity: %w", err)
	case errors.Is(err, vault.ErrUserHeld):
		return errConflictUserHeld.Errorf("%w", err)
	case errors.Is(err, vault.ErrBadRecipient):
		return identity.ErrInvalid.Errorf("recipient: %w", err)
	}
	return err
}
