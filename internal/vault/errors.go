package vault

import "errors"

// Sentinel errors callers test with errors.Is. Their texts are written to
// be shown to people as they are: they say what happened and what can be
// done, never what a reading contained.
var (
	// ErrUserHeld means the reading is sealed under a key that only the
	// person's own age identity can unwrap (user-held mode): the hub
	// cannot read it, by design. The person can open it with their
	// identity (OpenWithIdentity, Unlock).
	ErrUserHeld = errors.New("vault: sealed under the owner's own key (user-held mode): the hub cannot read it; only the owner's age identity can")
	// ErrLocked means the key is meant to be readable by the hub
	// (hub-assisted mode) but the hub cannot unwrap it: the vault runs
	// without a hub key, or with another hub key than the one it was
	// wrapped to (the hub key file was lost or replaced). The person's
	// identity still opens it if they had a recipient when it was made.
	ErrLocked = errors.New("vault: the hub's copy of this key cannot be unwrapped with the hub key it has (hub key missing or replaced)")
	// ErrShredded means the owner's keys were destroyed (account deletion):
	// nobody can read the owner's readings any more, and nothing new is
	// sealed for them.
	ErrShredded = errors.New("vault: the owner's keys were destroyed (crypto-shredded): the data can no longer be read by anyone")
	// ErrUnknownOwner means no encryption setting exists for the owner
	// (it was never enrolled).
	ErrUnknownOwner = errors.New("vault: unknown key owner (not enrolled)")
	// ErrUnknownKey means the reading names a key the owner does not
	// have: it was sealed for another owner, or its header was altered.
	ErrUnknownKey = errors.New("vault: the reading was not sealed under any key of this owner")
	// ErrAuth means authentication failed: the ciphertext or its
	// additional data (device, stream, time) was altered, or belongs to
	// another reading.
	ErrAuth = errors.New("vault: authentication failed: ciphertext or its binding (device, stream, time) was altered")
	// ErrMalformed means the bytes are not a sealed reading.
	ErrMalformed = errors.New("vault: not a sealed reading")
	// ErrWrongIdentity means the supplied age identity does not unwrap the
	// key the reading was sealed under.
	ErrWrongIdentity = errors.New("vault: this age identity does not open the key the reading was sealed under")
	// ErrBadRecipient means a recipient given to Enroll is not one the
	// vault can wrap keys to.
	ErrBadRecipient = errors.New("vault: bad recipient")
	// ErrClosed means the vault was closed.
	ErrClosed = errors.New("vault: closed")
)
