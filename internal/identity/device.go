package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/store"
)

// NewDevice describes a device to add.
type NewDevice struct {
	HouseholdID string
	Name        string
	Type        string
	// Secret, if set, is the device's chosen secret (for devices whose maker
	// lets the owner set one). It must pass the password rules. Empty means
	// generate one, which is the recommended way.
	Secret string
	// KeyOwner is the account whose keys will seal the device's readings
	// (the person adding it); empty means the household's keys.
	KeyOwner string
	// IDPrefix starts the device's id (default "dev_"). A Zigbee device
	// behind a Zigbee2MQTT bridge gets "zb_", so that commands for it are
	// sent through its bridge.
	IDPrefix string
}

// AddDevice creates a device with a unique credential and returns the
// secret, which is shown exactly once and never stored in clear.
func (s *Service) AddDevice(ctx context.Context, nd NewDevice) (store.Device, string, error) {
	if err := checkName("name", nd.Name, 64); err != nil {
		return store.Device{}, "", err
	}
	if !ValidDeviceType(nd.Type) {
		return store.Device{}, "", invalid("type: %q must be 1-40 characters of a-z, 0-9 and -", nd.Type)
	}
	prefix := nd.IDPrefix
	if prefix == "" {
		prefix = "dev_"
	}
	id := credential.NewID(prefix)
	secret, hash, err := s.deviceSecret(ctx, id, nd.Secret)
	if err != nil {
		return store.Device{}, "", err
	}
	now := s.now().UTC()
	d := store.Device{
		ID:              id,
		HouseholdID:     nd.HouseholdID,
		Name:            nd.Name,
		Type:            nd.Type,
		SecretHash:      hash,
		CredentialSetAt: now,
		CreatedAt:       now,
		KeyOwner:        nd.KeyOwner,
	}
	if err := s.st.CreateDevice(ctx, d); err != nil {
		return store.Device{}, "", fmt.Errorf("create device: %w", err)
	}
	// A new device without an origin row counts as generated (see the
	// device_secret_origin table), so only a chosen secret costs a second
	// write; device creation is bounded by commits (issue #19).
	if nd.Secret != "" {
		if err := s.st.SetDeviceSecretOrigin(ctx, id, true, now); err != nil {
			return store.Device{}, "", fmt.Errorf("create device: %w", err)
		}
	}
	s.log.Info("device added", "device", id, "household", nd.HouseholdID, "type", nd.Type)
	if err := s.record(ctx, auditlog.Event{Action: auditlog.ActionCredentialCreate, Household: d.HouseholdID,
		Subject: auditlog.Subject{Device: id}, Detail: map[string]string{"type": nd.Type, "chosen_secret": fmt.Sprint(nd.Secret != "")}}); err != nil {
		return store.Device{}, "", err
	}
	return d, secret, nil
}

// deviceSecret returns the secret for device id and its stored hash: a
// generated secret (chosen empty) with the fast hash, since its 160 random
// bits leave nothing for a slow hash to protect, or the chosen secret,
// checked against the password rules, with argon2id.
func (s *Service) deviceSecret(ctx context.Context, id, chosen string) (secret, hash string, err error) {
	if chosen == "" {
		secret = credential.NewSecret()
		return secret, credential.HashGenerated(secret), nil
	}
	if err := credential.CheckDeviceCredential(id, chosen); err != nil {
		return "", "", ErrInvalid.Errorf("secret: %w", err)
	}
	if hash, err = s.hasher.Hash(ctx, chosen); err != nil {
		return "", "", fmt.Errorf("hash device secret: %w", err)
	}
	return chosen, hash, nil
}

// RotateDevice replaces a device's secret (generated when secret is empty)
// and cuts connections that used the old one.
func (s *Service) RotateDevice(ctx context.Context, id, secret string) (string, error) {
	d, err := s.st.Device(ctx, id)
	if err != nil {
		return "", fmt.Errorf("rotate device %s: %w", id, err)
	}
	if d.Revoked() {
		return "", ErrInvalid.Errorf("rotate device %s: the device is revoked; add it again instead", id)
	}
	chosen := secret != ""
	secret, hash, err := s.deviceSecret(ctx, id, secret)
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	if err := s.st.SetDeviceSecret(ctx, id, hash, now); err != nil {
		return "", fmt.Errorf("rotate device %s: %w", id, err)
	}
	if err := s.st.SetDeviceSecretOrigin(ctx, id, chosen, now); err != nil {
		return "", fmt.Errorf("rotate device %s: %w", id, err)
	}
	s.log.Info("device credential rotated", "device", id)
	s.notifyRevoked(id)
	if err := s.record(ctx, auditlog.Event{Action: auditlog.ActionCredentialRotate, Household: d.HouseholdID,
		Subject: auditlog.Subject{Device: id}}); err != nil {
		return "", err
	}
	return secret, nil
}

// RevokeDevice revokes a device's credential for good and disconnects it.
func (s *Service) RevokeDevice(ctx context.Context, id string) error {
	d, err := s.st.Device(ctx, id)
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", id, err)
	}
	if err := s.st.RevokeDevice(ctx, id, s.now().UTC()); err != nil {
		return fmt.Errorf("revoke device %s: %w", id, err)
	}
	s.log.Info("device revoked", "device", id)
	s.notifyRevoked(id)
	return s.record(ctx, auditlog.Event{Action: auditlog.ActionCredentialRevoke, Household: d.HouseholdID,
		Subject: auditlog.Subject{Device: id}})
}

// DevicesErased forgets what the service remembers of erased devices and
// disconnects them, like a revocation: their rows are already gone, so a
// new login fails anyway; this ends the sessions that are still open.
func (s *Service) DevicesErased(ids []string) {
	s.ForgetDevices(ids)
	for _, id := range ids {
		s.notifyRevoked(id)
	}
}

// ForgetDevices forgets what the service remembers of erased devices
// without telling the OnRevoke listeners: for devices another hub node
// erased, whose connections the hub ends itself. Telling the listeners
// would pass the erasure on to the nodes once more, and again from each
// of them, at every round.
func (s *Service) ForgetDevices(ids []string) {
	s.mu.Lock()
	for _, id := range ids {
		delete(s.verified, id)
	}
	s.mu.Unlock()
}

// AuthenticateDevice checks a device's id and secret. Any failure returns
// ErrUnauthenticated without saying whether the id exists. A secret that
// verified before is answered from memory; any other check is throttled
// (see limit.go) by o's address and the device id, and a refusal is a
// *ThrottledError.
func (s *Service) AuthenticateDevice(ctx context.Context, o Origin, id, secret string) (store.Device, error) {
	if id == "" || secret == "" || len(secret) > 1024 || len(id) > 128 {
		return store.Device{}, ErrUnauthenticated
	}
	// Reconnect storms are common (a router reboots, a hundred devices come
	// back): a secret that already passed the slow hash is remembered, in
	// memory only, as its SHA-256 bound to the stored hash it matched. It
	// costs no slow hash, so it takes nothing from the throttles either.
	sum := sha(secret)
	s.mu.Lock()
	cached, ok := s.verified[id]
	s.mu.Unlock()
	if ok && subtle.ConstantTimeCompare(cached.sum[:], sum[:]) == 1 {
		d, err := s.st.Device(ctx, id)
		if err == nil && !d.Revoked() && sha(d.SecretHash) == cached.hashSum {
			return d, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Device{}, fmt.Errorf("look up device: %w", err)
		}
	}
	// Throttled before the device is even looked up, so a flood that is
	// refused costs no storage read. Unknown and revoked ids take the same
	// buckets and the same time as live ones, so ids cannot be probed.
	att, err := s.reserve(ctx, checkDevice,
		bucketRef{s.limits.addresses, addressKey(o.Addr), ReasonAddress},
		bucketRef{s.limits.devices, id, ReasonDevice})
	if err != nil {
		return store.Device{}, err
	}
	d, err := s.st.Device(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		att.passed()
		return store.Device{}, fmt.Errorf("look up device: %w", err)
	}
	live := err == nil && !d.Revoked()
	// An unknown or revoked id is checked against a generated secret's
	// hash, as most devices have: it costs what a live device's check
	// costs, and a made-up id buys no argon2id work.
	hash := dummyGeneratedHash()
	if live {
		hash = d.SecretHash
	}
	good, err := s.hasher.Verify(ctx, secret, hash)
	if err != nil {
		att.passed()
		return store.Device{}, fmt.Errorf("verify device %s: %w", id, err)
	}
	if !good || !live {
		att.failed()
		return store.Device{}, ErrUnauthenticated
	}
	att.passed()
	// The slow hash takes long enough for a rotation or revocation to land
	// meanwhile; accept only if the credential checked is still the one
	// in force, so an in-flight login cannot outlive the change.
	now, err := s.st.Device(ctx, id)
	if err != nil {
		return store.Device{}, fmt.Errorf("look up device: %w", err)
	}
	if now.Revoked() || now.SecretHash != d.SecretHash {
		return store.Device{}, ErrUnauthenticated
	}
	s.mu.Lock()
	s.verified[id] = verifiedSecret{sum: sum, hashSum: sha(d.SecretHash)}
	s.mu.Unlock()
	return now, nil
}

// ValidDeviceType reports whether t is a well-formed device type name.
func ValidDeviceType(t string) bool {
	if len(t) == 0 || len(t) > 40 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
