package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// Forwarding configures and reports delivery to external recipients
// (package forward).
type Forwarding interface {
	Reload(ctx context.Context, householdID string) error
	Stats(householdID string) map[string]forward.Stats
	PublicKey() ed25519.PublicKey
}

// RecipientStore keeps where each household forwards to.
type RecipientStore interface {
	PutRecipientEndpoint(ctx context.Context, e store.RecipientEndpoint) error
	DeleteRecipientEndpoint(ctx context.Context, householdID, recipient string) error
	RecipientEndpoints(ctx context.Context, householdID string) ([]store.RecipientEndpoint, error)
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

func (s *Server) recipientParts() (RecipientStore, Forwarding, error) {
	rs, ok := s.st.(RecipientStore)
	if !ok || s.cfg.Forwarding == nil {
		return nil, nil, fmt.Errorf("forwarding to recipients is not configured on this hub: %w", store.ErrNotFound)
	}
	return rs, s.cfg.Forwarding, nil
}

// householdRecipients lists the recipients the manifests of the
// household's devices name, with the streams that may go to each.
func (s *Server) householdRecipients(ctx context.Context, hh string) ([]*recipientJSON, error) {
	devs, err := s.st.Devices(ctx, hh)
	if err != nil {
		return nil, err
	}
	byName := map[string]*recipientJSON{}
	var order []*recipientJSON
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		e, err := s.cfg.Catalog.Current(d.Type)
		if err != nil {
			continue
		}
		for _, st := range e.Manifest.Streams {
			for _, rc := range st.Recipients {
				rj := byName[rc.Name]
				if rj == nil {
					rj = &recipientJSON{Name: rc.Name, Role: rc.Role, Terms: rc.Terms, Contact: rc.Contact,
						Identifiable: rc.Identifiable, Retention: rc.Retention.Text, Uses: []recipientUseJSON{}}
					byName[rc.Name] = rj
					order = append(order, rj)
				}
				rj.Uses = append(rj.Uses, recipientUseJSON{DeviceID: d.ID, Stream: st.Name, Purpose: rc.Purpose})
			}
		}
	}
	return order, nil
}

// listRecipients shows the household's recipients: who they are, which
// streams may go to them (each still needs the person's consent), where
// they receive and how delivery went.
func (s *Server) listRecipients(w http.ResponseWriter, r *http.Request, p principal) {
	if p.operator {
		s.fail(w, r, badRequest("recipients are a household's: log in as a member"))
		return
	}
	rs, fw, err := s.recipientParts()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.householdRecipients(r.Context(), p.acc.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	eps, err := rs.RecipientEndpoints(r.Context(), p.acc.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stats := fw.Stats(p.acc.HouseholdID)
	for _, rj := range list {
		for _, e := range eps {
			if e.Recipient == rj.Name {
				rj.URL = e.URL
				t := e.CreatedAt.UTC()
				rj.ConfiguredAt = &t
			}
		}
		if st, ok := stats[rj.Name]; ok {
			rj.Delivery = &st
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"recipients": list})
}

// putRecipient sets where a recipient receives. Owners only; the name
// must be one a manifest of the household's devices declares.
func (s *Server) putRecipient(w http.ResponseWriter, r *http.Request, p principal) {
	rs, fw, name, err := s.ownedRecipient(r, p)
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
	if err := forward.CheckURL(in.URL); err != nil {
		s.fail(w, r, fmt.Errorf("%w: %w", identity.ErrInvalid, err))
		return
	}
	if err := rs.PutRecipientEndpoint(r.Context(), store.RecipientEndpoint{HouseholdID: p.acc.HouseholdID, Recipient: name,
		URL: in.URL, CreatedAt: time.Now().UTC()}); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := fw.Reload(r.Context(), p.acc.HouseholdID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("recipient endpoint set", "household", p.acc.HouseholdID, "account", p.acc.ID)
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "url": in.URL})
}

func (s *Server) deleteRecipient(w http.ResponseWriter, r *http.Request, p principal) {
	rs, fw, name, err := s.ownedRecipient(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := rs.DeleteRecipientEndpoint(r.Context(), p.acc.HouseholdID, name); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := fw.Reload(r.Context(), p.acc.HouseholdID); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ownedRecipient(r *http.Request, p principal) (RecipientStore, Forwarding, string, error) {
	if p.operator {
		return nil, nil, "", badRequest("recipients are a household's: log in as an owner")
	}
	rs, fw, err := s.recipientParts()
	if err != nil {
		return nil, nil, "", err
	}
	if p.acc.Role != store.RoleOwner {
		return nil, nil, "", fmt.Errorf("%w: only an owner decides where data goes", identity.ErrForbidden)
	}
	name := r.PathValue("name")
	list, err := s.householdRecipients(r.Context(), p.acc.HouseholdID)
	if err != nil {
		return nil, nil, "", err
	}
	for _, rj := range list {
		if rj.Name == name {
			return rs, fw, name, nil
		}
	}
	return nil, nil, "", fmt.Errorf("recipient %q: no manifest of your household's devices names it: %w", name, store.ErrNotFound)
}

// forwardKey serves the public key recipients check signatures with.
func (s *Server) forwardKey(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Forwarding == nil {
		s.fail(w, r, fmt.Errorf("forwarding is not configured on this hub: %w", store.ErrNotFound))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(consent.MarshalPublicKey(s.cfg.Forwarding.PublicKey()))
}
