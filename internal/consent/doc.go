// Package consent records and enforces what people allow their devices'
// data to be used for, and where it may go.
//
// It serves clause 2B of the IoT Good Practice paper (people's data under
// their control: nothing is kept or shared that they did not agree to, and
// turning something off takes effect at once) and clause 2A (meaningful
// transparency: every decision is explained, and the person gets a receipt
// signed by the hub that proves what they decided and what they were shown).
//
// # What is decided
//
// A decision is on or off for one use of a stream, keyed by
//
//	(device id, stream, purpose term, recipient)
//
// where the purpose is a term of the stream's dpv:hasPurpose in the
// manifest ("dpv:ResearchAndDevelopment") and the recipient is either
// RecipientHub ("hub": kept and used on this hub) or the name of one of the
// stream's dpv:hasRecipient entries, together with that entry's own
// purpose. Per (device, stream) there is also a StreamRouting: keep the data
// on this hub or not, and for how long (never longer than the stream's
// candor:retention; shorter is always allowed).
//
// The person deciding is an account id. Package consent does not check who
// may decide; the caller (the API) does.
//
// # Defaults: privacy by default
//
// Where nobody has decided, the manifest in force for the device's type
// decides, as follows:
//
//   - (stream, purpose, hub): on if the manifest marks the purpose
//     essential (candor:essential true), off otherwise. Essential purposes
//     are on but still listed and explained, and can be turned off.
//   - (stream, recipient's purpose, recipient) for every external
//     recipient: off, even when the recipient's purpose is essential.
//     Nothing leaves the hub until someone says yes.
//   - routing: kept on this hub (KeepOnHub true) for the stream's
//     candor:retention.
//
// Explicit decisions are kept across manifest versions. A decision about a
// purpose or recipient that the manifest in force no longer declares is
// ignored (kept in the log, never enforced). A chosen retention longer than
// a newer manifest allows is cut to the manifest's.
//
// # Learning uses
//
// A stream its manifest marks candor:machineLearning or
// candor:automatedDecisions also has one use keyed by a reserved purpose
// (PurposeMachineLearning, PurposeAutomatedDecisions) with recipient
// RecipientHub: the machine-learning register's switch for that use
// alone. It is on by default when the manifest the device was added under
// already marked the stream, off when a later version adds the mark; it
// never keeps a stream collected on its own. Decision.Learn and
// Decision.Decide carry it to the next reading, and Decision.Control to
// the device.
//
// # Enforcement
//
// Service.Allowed answers, per (device, stream), what may happen to the
// next reading: the hub stores it iff at least one purpose with recipient
// hub is on and KeepOnHub is true; it is forwarded to every external
// recipient whose decision is on. Collect is true iff any use (any purpose
// for any recipient) is on: when it turns false the device is told to stop
// sending the stream. The answer comes from an in-memory table that every
// change replaces atomically (copy on write) before Set returns, so the very
// next message sees it.
//
// # Consent records (ISO/IEC TS 27560, DPV)
//
// Every change appends a Record to the consent log, in the same
// transaction as the new state. Records are never updated. A Record is a
// JSON document in the shape of an ISO/IEC TS 27560:2023 consent record,
// with values from the W3C Data Privacy Vocabulary (DPV, full IRIs):
//
//	27560 information (clause 6)        Record field
//	----------------------------------  -------------------------------------
//	schema version                      schema_version ("candor-consent-record/1")
//	record identifier                   record_id
//	PII principal identifier            data_subject.id (the deciding account)
//	PII controller (name, contact)      controller (the hub's operator)
//	event: type / time                  event (dpv:ConsentGiven,
//	                                      dpv:ConsentWithdrawn or
//	                                      dpv:ConsentRefused) / timestamp
//	consent type                        consent_type (dpv:ExpressedConsent)
//	legal basis / lawful basis          legal_basis (dpv:Consent)
//	purposes (with description)         purposes[] (IRI, term, essential,
//	                                      description as shown)
//	PII categories                      personal_data[] (pd:/candor: IRIs
//	                                      from dpv:hasPersonalData)
//	PII processing                      processing[] (dpv:Collect, dpv:Store,
//	                                      dpv:Use; dpv:Share for recipients)
//	PII recipients / third parties      recipient (name, dpv role, how
//	                                      identifiable, contact, terms)
//	storage location / duration         storage (location, ISO 8601 duration)
//	notice (id, version, fingerprint)   notice (device type, manifest
//	                                      version, model version, SHA-256 of
//	                                      the manifest document shown)
//	jurisdiction                        jurisdiction (optional)
//	(Candor) what the record is about   kind ("consent" or "storage"),
//	                                      device, stream
//
// The event follows DPV's consent status terms: switching a use on is
// dpv:ConsentGiven; switching it off is dpv:ConsentWithdrawn if it was on
// before (by default or by decision) and dpv:ConsentRefused if it was
// already off. A routing change is a "storage" record: keeping the stream
// on the hub is dpv:ConsentGiven to storage for the chosen duration, not
// keeping it is withdrawn or refused by the same rule.
//
// # Receipts
//
// Service.Receipt returns a record as a self-contained JSON receipt: the
// record, and a detached Ed25519 signature by the hub over the record's
// canonical form (RFC 8785 JSON Canonicalization Scheme), with the key id
// of the hub's key. VerifyReceipt checks one offline with only the hub's
// public key; so can any JCS and Ed25519 implementation. The layout of the
// receipt (whitespace, member order) is free; its content is not: any
// change to a name or value breaks the signature, duplicate member names
// and unknown members are refused.
package consent
