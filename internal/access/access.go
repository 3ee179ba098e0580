// Package access decides who may see and do what on the hub. Every front
// end (the JSON API, the pages, the local control socket) resolves a
// request to a Principal and asks it; none decides by itself, so a rule
// changed here changes for all of them at once.
//
// The rules: a person sees their own household, whatever their role; an
// owner of a household manages it (devices, members, where data goes, the
// household's keys); the account created with the setup token is the
// hub's admin; the operator (whoever holds the local control socket) sees
// and manages every household but is no person, so it makes no person's
// choices (consent, exports, key settings). Consent choices go with the
// keys (CanDecide): a person decides for the devices sealed under their
// own keys, the owners for the household's shared devices; other members
// see the choices and may ask. Another household's resources
// are reported as not found, never as forbidden, so their ids cannot be
// probed.
package access

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Principal is who a request acts for: a person with a session (or API
// token), or the operator.
type Principal struct {
	Account store.Account
	Session store.Session
	// Operator marks the local control socket: no account, no session.
	Operator bool
}

// Person returns the principal of a person authenticated with ses.
func Person(acc store.Account, ses store.Session) Principal {
	return Principal{Account: acc, Session: ses}
}

// Operator returns the principal of the local control socket.
func Operator() Principal { return Principal{Operator: true} }

// Admin reports whether p administers the hub: the operator, or the
// account created with the setup token.
func (p Principal) Admin() bool { return p.Operator || p.Account.Admin }

// Owner reports whether p is a person who owns their own household.
func (p Principal) Owner() bool { return !p.Operator && p.Account.Role == store.RoleOwner }

// Actor is who the transparency log records as acting for p.
func (p Principal) Actor() auditlog.Actor {
	if p.Operator {
		return auditlog.Actor{Kind: auditlog.ActorOperator}
	}
	return auditlog.Actor{Kind: auditlog.ActorPerson, ID: p.Account.ID}
}

// Member reports whether p is a person of the household: the one whose
// choices (consent, keys, exports) are about that household's data.
func (p Principal) Member(householdID string) bool {
	return !p.Operator && householdID != "" && p.Account.HouseholdID == householdID
}

// CanSee reports whether p may read a household's devices, members and
// data: any member of it, and the operator.
func (p Principal) CanSee(householdID string) bool {
	return p.Operator || p.Member(householdID)
}

// CanManage reports whether p may change a household's devices, members
// and recipients: an owner of it, and the operator.
func (p Principal) CanManage(householdID string) bool {
	return p.Operator || (p.Member(householdID) && p.Account.Role == store.RoleOwner)
}

// ErrNotYourChoice is the kind of a consent or routing change asked by
// someone who may see a device but does not decide for it. Its detail
// says who decides.
var ErrNotYourChoice = &problem.Kind{Status: http.StatusForbidden, Type: "not-your-choice", Text: "not your choice"}

// CanDecide reports whether p makes the consent and routing choices of a
// device. The choices go with the keys: a person decides for the devices
// whose readings are sealed under their own keys (d.KeyOwner); the
// owners of the household decide for its shared devices (sealed under the
// household's keys). Everyone else in the household sees the choices but
// changes none; the operator, no person, decides for nobody.
func (p Principal) CanDecide(d store.Device) bool {
	if !p.Member(d.HouseholdID) {
		return false
	}
	if d.KeyOwner != "" {
		return d.KeyOwner == p.Account.ID
	}
	return p.Account.Role == store.RoleOwner
}

// Decide returns nil when p makes the consent choices of d. Otherwise it
// returns a *NotFoundError when p may not even see d, and an error of
// kind ErrNotYourChoice saying who decides.
func (p Principal) Decide(d store.Device) error {
	if err := p.SeeDevice(d); err != nil {
		return err
	}
	switch {
	case p.CanDecide(d):
		return nil
	case p.Operator:
		return ErrNotYourChoice.Errorf("consent is a person's choice and the operator is no person: log in as the person who decides for device %s", d.ID)
	case d.KeyOwner != "":
		return ErrNotYourChoice.Errorf("only the person whose keys seal the readings of device %s (account %s) changes its choices; you can see them and ask that person to change one", d.ID, d.KeyOwner)
	default:
		return ErrNotYourChoice.Errorf("only an owner of the household changes the choices of shared device %s; you can see them and ask an owner to change one", d.ID)
	}
}

// Deciders says who makes the consent choices of d: the account whose
// keys seal its readings, or, when person is empty, the household's
// owners.
func Deciders(d store.Device) (person string, owners bool) {
	return d.KeyOwner, d.KeyOwner == ""
}

// CanSeeEvent reports whether p may read a transparency-log entry, or
// have its inclusion proof (which carries the entry): the operator reads
// the whole log; a person reads the entries about their household or
// their account, and the ones they made; the hub's admin also reads the
// hub-level ones, which name no household, device or account and were
// made by no person. Being the
// admin is no licence to watch other households: their entries stay
// theirs.
func (p Principal) CanSeeEvent(ev *auditlog.Event) bool {
	if p.Operator {
		return true
	}
	id := p.Account.ID
	switch {
	case p.Member(ev.Household),
		id != "" && ev.Subject.Account == id,
		id != "" && ev.Actor.Kind == auditlog.ActorPerson && ev.Actor.ID == id:
		return true
	}
	return p.Account.Admin && hubLevel(ev)
}

// hubLevel reports whether an entry is about the hub itself: it names no
// household, device or account, and no person made it (a person's own
// entries are theirs, see CanSeeEvent).
func hubLevel(ev *auditlog.Event) bool {
	return ev.Household == "" && ev.Subject.Device == "" && ev.Subject.Account == "" &&
		ev.Actor.Kind != auditlog.ActorPerson
}

// CanUnlink reports whether p may delete or unlink the history of a
// device: a member whose keys seal it, or an owner for the household's
// shared devices (sealed under the household's keys).
func (p Principal) CanUnlink(d store.Device) bool {
	if !p.Member(d.HouseholdID) {
		return false
	}
	return d.KeyOwner == p.Account.ID || (d.KeyOwner == "" && p.Account.Role == store.RoleOwner)
}

// KeyOwnerFor returns whose keys seal the readings of a device p adds to
// a household: the person's own, so deleting their account shreds its
// history; the household's ("") for shared devices and for devices the
// operator or another household's admin adds.
func (p Principal) KeyOwnerFor(householdID string, shared bool) string {
	if shared || !p.Member(householdID) {
		return ""
	}
	return p.Account.ID
}

// NotFoundError is the answer about a resource a principal may not see:
// it wraps store.ErrNotFound, so every transport answers it exactly as it
// answers an id that does not exist (404), and ids cannot be probed.
type NotFoundError struct {
	Kind string // e.g. "device"
	ID   string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Kind, e.ID, store.ErrNotFound)
}

// Unwrap makes errors.Is(err, store.ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return store.ErrNotFound }

// SeeDevice returns nil when p may see d, and a *NotFoundError otherwise.
func (p Principal) SeeDevice(d store.Device) error {
	return p.See("device", d.ID, d.HouseholdID)
}

// See returns nil when p may see the resource of a household, and a
// *NotFoundError naming it otherwise.
func (p Principal) See(kind, id, householdID string) error {
	if p.CanSee(householdID) {
		return nil
	}
	return &NotFoundError{Kind: kind, ID: id}
}

// CanSeeFinding reports whether p may see an audit finding about a
// household ("" for the hub as a whole): a member sees their household's,
// the admin and the operator see every finding, including the hub's.
func (p Principal) CanSeeFinding(householdID string) bool {
	if householdID == "" {
		return p.Admin()
	}
	return p.Admin() || p.CanSee(householdID)
}

// CanSuppressFinding reports whether p may suppress an audit finding: an
// owner of its household, or the admin and the operator for any.
func (p Principal) CanSuppressFinding(householdID string) bool {
	if householdID == "" {
		return p.Admin()
	}
	return p.Admin() || p.CanManage(householdID)
}

// ErrOwnSecondFactor is the kind of an admin's request to remove their
// own second factor without it: that would let whoever holds the admin's
// password alone turn the factor off.
var ErrOwnSecondFactor = &problem.Kind{Status: http.StatusForbidden, Type: "own-second-factor",
	Text: "not your own second factor"}

// ResetSecondFactor returns nil when p may remove acc's second factor for
// a person who lost both their app and their recovery codes: the operator
// for anyone; the admin for the people of the admin's own household, but
// not for themselves (that takes the control socket, so a stolen admin
// password alone cannot remove the admin's factor). Anyone else gets a
// *NotFoundError, so accounts cannot be probed.
func (p Principal) ResetSecondFactor(acc store.Account) error {
	switch {
	case p.Operator:
		return nil
	case !p.Account.Admin || !p.Member(acc.HouseholdID):
		return &NotFoundError{Kind: "account", ID: acc.Username}
	case acc.ID == p.Account.ID:
		return ErrOwnSecondFactor.Errorf("you cannot remove your own second factor here: turn it off on the Security page with your password, or ask whoever runs the hub to use 'candor account second-factor reset %s' on it", acc.Username)
	}
	return nil
}

// SeeSecondFactor returns nil when p may see whether acc has a second
// factor: the person themselves, and whoever may reset it.
func (p Principal) SeeSecondFactor(acc store.Account) error {
	if !p.Operator && p.Account.ID == acc.ID {
		return nil
	}
	if err := p.ResetSecondFactor(acc); err != nil && !errors.Is(err, ErrOwnSecondFactor) {
		return err
	}
	return nil
}

// MustEnrolFirst reports whether p may do nothing but enrol a second
// factor (and log out): the hub requires one for the admin
// (required), p is the admin logged in as a person, and has none yet.
func (p Principal) MustEnrolFirst(required, hasFactor bool) bool {
	return required && !p.Operator && p.Account.Admin && !hasFactor
}
