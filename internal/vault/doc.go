// Package vault encrypts stored readings at rest under per-person data keys,
// with envelope encryption: readings are sealed with AES-256-GCM
// under symmetric data keys, and only the data keys are wrapped with age
// (X25519) to the person's recipient and, in hub-assisted mode, to the hub's
// own key. A public-key operation happens once per data key, never per
// reading.
//
// It serves clause 2B of the IoT Good Practice paper (people's data under
// their control): a person can hold the only key to their history, and
// deleting their account destroys their keys, which makes every reading of
// theirs unreadable at once (crypto-shredding).
//
// # Key owners
//
// A key owner is an id: an account (acc_…), or a household (hh_…) whose
// devices send readings before anyone has an account. Enroll sets an
// owner's mode and the person's age recipient, which they bring ("age1…",
// their technology of choice) or let the hub generate (the identity,
// "AGE-SECRET-KEY-1…", is returned once and never stored).
//
// # Data keys, epochs and what the hub can read
//
// Each data key ("chain") is 32 random bytes R, stored only wrapped. From R
// follows a one-way chain of epoch keys (see keys.go): from the chain key of
// epoch e one can derive every later epoch's key, never an earlier one.
// Readings are sealed under the current epoch's key; an epoch ends after a
// number of readings or a time from its first reading, whichever comes
// first, and its keys are then erased from memory.
//
// A Vault makes a new data key the first time it seals for an owner after
// start-up (or at Prepare, Rotate and a change of setting), and never seals
// under a data key made by another process. The hub therefore never needs
// to recover a sealing key from the store.
//
// Hub-assisted mode: each data key is wrapped to the hub's key (and to the
// person's recipient, if any). The hub can read all of the owner's stored
// history, so automations and the UI work; unwrapped keys are kept in
// memory. The person's identity opens the same keys.
//
// User-held mode: each data key is wrapped to the person's recipient only.
// The hub created the key, but it erases R as soon as it has derived the
// first chain key, and it erases each epoch's keys when the epoch ends. So,
// precisely: the hub can read at most the readings of the current epoch of
// the key in use, up to Epoch.Readings readings (default 10,000) sealed
// within Epoch.Duration (default 1 minute) of the epoch's first reading,
// while that epoch key is in its memory. (The time bound is enforced by a
// timer, which a heavily loaded machine may run late by its scheduling
// delay; the count bound is exact.) It cannot read anything sealed in
// an earlier epoch, nor anything at all after a restart. Open answers
// ErrUserHeld for everything else, and the person opens it with their
// identity (OpenWithIdentity, or Unlock for many readings). The live epoch
// is still useful: automations can act on what a device sends right now.
//
// Changing the mode or the recipient (Enroll) starts a new data key and
// rewraps every key the hub can unwrap, in one store transaction: switching
// to user-held removes the hub's copies of the old keys. Keys only the
// person can unwrap are rewrapped with their identity (Rewrap). Rotate
// starts a new data key; old keys stay, so history stays readable.
//
// # Shredding
//
// Shred deletes the owner's key rows in one store statement and marks the
// owner shredded: its cost depends on the number of keys (one per
// start-up, rotation or change of setting), not on the number of readings.
// From then on Open, OpenWithIdentity and Seal fail with ErrShredded, also
// after a restart. The SQLite store overwrites the deleted rows
// (secure_delete) and truncates its WAL. Keys in backups made before the
// shred are beyond its reach, as with any crypto-shredding.
//
// # What erasing means in Go
//
// The vault overwrites every key it owns (R, chain keys, epoch keys) when
// it is done with it. Go gives no way to overwrite the AES key schedule
// inside a cipher.AEAD, or copies the runtime may have made: those become
// unreachable garbage at the same moment and are reused by the allocator
// later. An attacker who can read the hub's memory at the right time may
// thus find the key of a recently ended epoch; one who reads the database
// file cannot.
//
// # Wire format
//
// A sealed reading is a 21-byte header (version 0xC1, key id, epoch,
// counter; see format.go), then AES-256-GCM ciphertext and tag. The caller's
// additional data (AppendReadingAAD: device id, stream, time) binds the
// ciphertext to its place. With the person's identity, the wrapped keys
// (age files) and this description, anyone can decrypt an export without
// Candor.
package vault
