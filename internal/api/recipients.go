package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/signkey"
	"github.com/candor-iot/candor/internal/store"
)

// Forwarding configures and reports delivery to external recipients
// (package forward).
type Forwarding interface {
	Reload(ctx context.Context, householdID string) error
	Stats(householdID string) map[string]forward.Stats
	PublicKey() ed25519.PublicKey
}

type recipientUseJSON struct {
	DeviceID string `json:"device_id"`
	Stream   string `json:"stream"`
	Purpose  string `json:"purpose"`
}

type recipientJSON struct {
	Name         string             `json:"name"`
	Role         string             `json:"role"`
	Terms        string             `json:"terms,omitempty"`
	Contact      string             `json:"contact,omitempty"`
	Identifiable string             `json:"identifiable,omitempty"`
	Retention    string             `json:"retention,omitempty"`
	Uses         []recipientUseJSON `json:"uses"`
	URL          string             `json:"url,omitempty"`
	ConfiguredAt *time.Time         `json:"configured_at,omitempty"`
	Delivery     *forward.Stats     `json:"delivery,omitempty"`
}

func newRecipientJSON(r forward.Recipient) *recipientJSON {
	rj := &recipientJSON{Name: r.Name, Role: r.Role, Terms: r.Terms, Contact: r.Contact, Identifiable: r.Identifiable,
		Retention: r.Retention.Text, Uses: make([]recipientUseJSON, 0, len(r.Uses)), URL: r.URL, Delivery: r.Delivery}
	for _, u := range r.Uses {
		rj.Uses = append(rj.Uses, recipientUseJSON{DeviceID: u.DeviceID, Stream: u.Stream, Purpose: u.Purpose})
	}
	if r.URL != "" {
		t := r.ConfiguredAt.UTC()
		rj.ConfiguredAt = &t
	}
	return rj
}

// recipients is the registry the recipient endpoints share with the pages
// (Config.Recipients), or one over this server's store, catalog and
// forwarder.
func (s *Server) recipients() (*forward.Registry, error) {
	if s.cfg.Recipients != nil {
		return s.cfg.Recipients, nil
	}
	rs, ok := s.st.(forward.RegistryStore)
	if !ok || s.cfg.Forwarding == nil {
		return nil, fmt.Errorf("forwarding to recipients is not configured on this hub: %w", store.ErrNotFound)
	}
	return forward.NewRegistry(rs, s.cfg.Catalog, s.cfg.Forwarding, forward.RegistryOptions{}), nil
}

// listRecipients shows the household's recipients: who they are, which
// streams may go to them (each still needs the person's consent), where
// they receive and how delivery went.
func (s *Server) listRecipients(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("recipients are a household's: log in as a member"))
		return
	}
	reg, err := s.recipients()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := reg.List(r.Context(), p.Account.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]*recipientJSON, 0, len(list))
	for _, rc := range list {
		out = append(out, newRecipientJSON(rc))
	}
	writeJSON(w, http.StatusOK, map[string]any{"recipients": out})
}

// putRecipient sets where a recipient receives. Owners only; the name
// must be one a manifest of the household's devices declares.
func (s *Server) putRecipient(w http.ResponseWriter, r *http.Request, p access.Principal) {
	reg, name, err := s.ownedRecipient(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		URL string `json:"url"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := reg.Set(r.Context(), p.Account.HouseholdID, name, in.URL); err != nil {
		if errors.Is(err, forward.ErrBadURL) {
			err = identity.ErrInvalid.Errorf("%w", err)
		}
		s.fail(w, r, err)
		return
	}
	s.log.Info("recipient endpoint set", "household", p.Account.HouseholdID, "account", p.Account.ID)
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "url": in.URL})
}

func (s *Server) deleteRecipient(w http.ResponseWriter, r *http.Request, p access.Principal) {
	reg, name, err := s.ownedRecipient(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := reg.Remove(r.Context(), p.Account.HouseholdID, name); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ownedRecipient checks that the caller is an owner and that a manifest
// of the household's devices names the recipient in the path, before the
// request body is read.
func (s *Server) ownedRecipient(r *http.Request, p access.Principal) (*forward.Registry, string, error) {
	if p.Operator {
		return nil, "", badRequest("recipients are a household's: log in as an owner")
	}
	reg, err := s.recipients()
	if err != nil {
		return nil, "", err
	}
	if !p.CanManage(p.Account.HouseholdID) {
		return nil, "", fmt.Errorf("%w: only an owner decides where data goes", identity.ErrForbidden)
	}
	name := r.PathValue("name")
	if _, err := reg.Lookup(r.Context(), p.Account.HouseholdID, name); err != nil {
		return nil, "", err
	}
	return reg, name, nil
}

// forwardKey serves the public key recipients check signatures with.
func (s *Server) forwardKey(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Forwarding == nil {
		s.fail(w, r, fmt.Errorf("forwarding is not configured on this hub: %w", store.ErrNotFound))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(signkey.MarshalPublicKey(s.cfg.Forwarding.PublicKey()))
}
