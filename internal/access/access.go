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
// choices (consent, exports, key settings). Another household's resources
// are reported as not found, never as forbidden, so their ids cannot be
// probed.
package access

import (
	"fmt"

	"github.com/candor-iot/candor/internal/auditlog"
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

// CanDecide reports whether p may make consent and routing choices about
// a household's devices: consent is a person's, so any member decides for
// themselves, whatever their role; the operator, no person, may not.
func (p Principal) CanDecide(householdID string) bool { return p.Member(householdID) }

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
