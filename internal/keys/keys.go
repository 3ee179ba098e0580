// Package keys is the service through which people change who holds the
// data keys their readings are sealed under (package vault): choosing a
// mode, bringing or being given an age key, rotating, rewrapping. The API
// and the pages both call it, and it records every change in the
// transparency log itself: which mode, whether the person brought or was
// given a key, how many keys were rewrapped; never a key.
//
// The vault is also enrolled by the hub itself (an owner's first reading
// enrols them in hub-assisted mode); that is no person's choice and does
// not go through this service.
package keys

import (
	"context"
	"fmt"
	"strconv"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// Vault is the part of the vault the service changes (*vault.Vault).
type Vault interface {
	Status(ownerID string) (vault.Status, error)
	Enroll(ctx context.Context, ownerID string, s vault.Settings) (vault.Enrollment, error)
	Rotate(ctx context.Context, ownerID string) (string, error)
	Rewrap(ctx context.Context, ownerID string, identity age.Identity) (vault.Rewrapped, error)
}

// Accounts resolves a key owner that is a person to their household.
type Accounts interface {
	Account(ctx context.Context, id string) (store.Account, error)
}

// Options configure a Service.
type Options struct {
	Vault    Vault
	Accounts Accounts
	// Log, when set, records every change.
	Log auditlog.Recorder
	// OnChange, when set, is told the key owner after each change made
	// (Enroll, Rotate, Rewrap). A hub node passes the change on to the
	// other nodes with it.
	OnChange func(ownerID string)
}

// Service changes key owners' settings. A key owner is an account (the
// keys of the devices a person added) or a household (its shared
// devices).
type Service struct {
	v       Vault
	accs    Accounts
	log     auditlog.Recorder
	changed func(ownerID string)
}

// New returns a Service.
func New(opts Options) *Service {
	return &Service{v: opts.Vault, accs: opts.Accounts, log: opts.Log, changed: opts.OnChange}
}

// Status returns an owner's setting and keys.
func (s *Service) Status(ownerID string) (vault.Status, error) { return s.v.Status(ownerID) }

// Enroll sets how an owner's keys are held (see vault.Vault.Enroll).
func (s *Service) Enroll(ctx context.Context, ownerID string, set vault.Settings) (vault.Enrollment, error) {
	en, err := s.v.Enroll(ctx, ownerID, set)
	if err != nil {
		return en, err
	}
	return en, s.record(ctx, ownerID, auditlog.ActionKeyChange, map[string]string{
		"mode": string(set.Mode), "own_recipient": strconv.FormatBool(set.Recipient != ""), "generated": strconv.FormatBool(set.GenerateIdentity)})
}

// Rotate starts a new data key for an owner (see vault.Vault.Rotate).
func (s *Service) Rotate(ctx context.Context, ownerID string) (string, error) {
	id, err := s.v.Rotate(ctx, ownerID)
	if err != nil {
		return id, err
	}
	return id, s.record(ctx, ownerID, auditlog.ActionKeyRotate, map[string]string{"key": id})
}

// Rewrap brings an owner's keys up to the current setting (see
// vault.Vault.Rewrap). The identity is used for this call only.
func (s *Service) Rewrap(ctx context.Context, ownerID string, identity age.Identity) (vault.Rewrapped, error) {
	rw, err := s.v.Rewrap(ctx, ownerID, identity)
	if err != nil {
		return rw, err
	}
	return rw, s.record(ctx, ownerID, auditlog.ActionKeyChange, map[string]string{"rewrapped": strconv.Itoa(rw.Keys)})
}

// record logs a change made. The change is already made when recording
// fails: the caller reports the failure, so the person knows the log
// missed it.
//
// It first tells OnChange: the change is made whether or not the record
// succeeds.
func (s *Service) record(ctx context.Context, ownerID, action string, detail map[string]string) error {
	if s.changed != nil {
		s.changed(ownerID)
	}
	if s.log == nil {
		return nil
	}
	ev := auditlog.Event{Action: action, Household: ownerID, Detail: detail, Purpose: "key settings changed"}
	if s.accs != nil {
		if acc, err := s.accs.Account(ctx, ownerID); err == nil {
			ev.Household, ev.Subject.Account = acc.HouseholdID, acc.ID
		}
	}
	if err := s.log.Record(ctx, ev); err != nil {
		return fmt.Errorf("record the key change of %s in the transparency log: %w", ownerID, err)
	}
	return nil
}
