package consent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
)

// RecipientHub is the recipient of every use on this hub: "store on this
// hub". It is reserved: a manifest recipient of that name cannot be
// addressed.
const RecipientHub = "hub"

// SchemaVersion names the Record format.
const SchemaVersion = "candor-consent-record/1"

// Record kinds.
const (
	KindConsent = "consent" // a use (purpose × recipient) switched on or off
	KindStorage = "storage" // a stream's routing: kept on the hub, how long
)

// DPV terms used in records, as full IRIs.
const (
	dpv = manifest.DPVNamespace

	// Consent status terms (the record's event).
	StatusGiven     = dpv + "ConsentGiven"
	StatusWithdrawn = dpv + "ConsentWithdrawn"
	StatusRefused   = dpv + "ConsentRefused"

	// ExpressedConsent: the person actively chose, by a switch in the
	// hub's interface.
	ConsentExpressed = dpv + "ExpressedConsent"
	LegalBasis       = dpv + "Consent"
	RoleController   = dpv + "DataController"

	ProcessCollect = dpv + "Collect"
	ProcessStore   = dpv + "Store"
	ProcessUse     = dpv + "Use"
	ProcessShare   = dpv + "Share"
)

// Storage locations in a record.
const (
	StoredOnHub       = "hub"       // kept on this hub
	StoredByRecipient = "recipient" // kept by the external recipient
	StoredNowhere     = "none"      // not kept on this hub
)

// Record is one consent record: the document the hub signs in a receipt.
// See the package documentation for how it maps to ISO/IEC TS 27560.
type Record struct {
	SchemaVersion string          `json:"schema_version"`
	RecordID      string          `json:"record_id"`
	Timestamp     time.Time       `json:"timestamp"`
	Kind          string          `json:"kind"`
	Event         string          `json:"event"`
	ConsentType   string          `json:"consent_type"`
	LegalBasis    string          `json:"legal_basis"`
	DataSubject   Subject         `json:"data_subject"`
	Controller    Party           `json:"controller"`
	Device        RecordDevice    `json:"device"`
	Stream        RecordStream    `json:"stream"`
	Purposes      []RecordPurpose `json:"purposes"`
	Recipient     RecordRecipient `json:"recipient"`
	PersonalData  []string        `json:"personal_data"`
	Processing    []string        `json:"processing"`
	Storage       RecordStorage   `json:"storage"`
	Notice        Notice          `json:"notice"`
	Jurisdiction  string          `json:"jurisdiction,omitempty"`

	// Seq is the record's place in the consent log. It is not part of the
	// signed document (receipts verify without it).
	Seq int64 `json:"-"`
}

// On reports whether the record switched its use (or storage) on.
func (r Record) On() bool { return r.Event == StatusGiven }

// Subject is the person who decided (the PII principal).
type Subject struct {
	ID string `json:"id"` // account id
}

// Party names an organisation and how to reach it.
type Party struct {
	Name    string `json:"name"`
	Contact string `json:"contact,omitempty"`
}

// RecordDevice names the device the data comes from.
type RecordDevice struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// RecordStream names the stream and its title as shown.
type RecordStream struct {
	Name  string `json:"name"`
	Title string `json:"title"`
}

// RecordPurpose is a purpose as the manifest declared it.
type RecordPurpose struct {
	IRI         string `json:"iri"`
	Term        string `json:"term"`
	Essential   bool   `json:"essential"`
	Description string `json:"description"`
}

// RecordRecipient is who gets the data: the hub's operator (recipient
// "hub", role dpv:DataController) or an external recipient.
type RecordRecipient struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	Identifiable string `json:"identifiable,omitempty"`
	Contact      string `json:"contact,omitempty"`
	Terms        string `json:"terms,omitempty"`
}

// RecordStorage is where the data is kept and for how long.
type RecordStorage struct {
	Location    string `json:"location"`
	Duration    string `json:"duration,omitempty"`     // ISO 8601
	MaxDuration string `json:"max_duration,omitempty"` // the manifest's limit
}

// Notice identifies the manifest the person was shown.
type Notice struct {
	ID           string `json:"id"` // "<device type>@<version>"
	DeviceType   string `json:"device_type"`
	Version      int    `json:"version"`
	ModelVersion string `json:"model_version,omitempty"`
	Title        string `json:"title"`
	SHA256       string `json:"sha256"` // of the manifest document as stored
}

// IRI expands a manifest term (dpv:, pd:, candor:) into its full IRI;
// anything else is returned unchanged.
func IRI(term string) string {
	for prefix, ns := range map[string]string{"dpv:": manifest.DPVNamespace, "pd:": manifest.PDNamespace, "candor:": manifest.CandorNS} {
		if rest, ok := strings.CutPrefix(term, prefix); ok {
			return ns + rest
		}
	}
	return term
}

// compactTerm turns a full IRI back into the manifest's prefixed form, so
// callers may name a purpose either way.
func compactTerm(s string) string {
	for prefix, ns := range map[string]string{"dpv:": manifest.DPVNamespace, "pd:": manifest.PDNamespace, "candor:": manifest.CandorNS} {
		if rest, ok := strings.CutPrefix(s, ns); ok {
			return prefix + rest
		}
	}
	return s
}

func iris(terms []string) []string {
	out := make([]string, len(terms))
	for i, t := range terms {
		out[i] = IRI(t)
	}
	return out
}

func noticeOf(e *catalog.Entry) Notice {
	m := e.Manifest
	sum := sha256.Sum256(m.Raw)
	return Notice{
		ID:           fmt.Sprintf("%s@%d", m.DeviceType, e.Version),
		DeviceType:   m.DeviceType,
		Version:      e.Version,
		ModelVersion: m.ModelVersion,
		Title:        m.Title,
		SHA256:       hex.EncodeToString(sum[:]),
	}
}

func recordPurpose(p manifest.Purpose) RecordPurpose {
	return RecordPurpose{IRI: IRI(p.ID), Term: p.ID, Essential: p.Essential, Description: purposeText(p)}
}

// status is the DPV consent status of switching a use to on, given whether
// it was on before.
func status(on, wasOn bool) string {
	switch {
	case on:
		return StatusGiven
	case wasOn:
		return StatusWithdrawn
	default:
		return StatusRefused
	}
}

// encodeRecord returns the record's canonical (RFC 8785) bytes: what is
// stored and signed.
func encodeRecord(r *Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return canonicalJSON(b)
}

// decodeRecord parses a record document strictly: unknown members are an
// error, so a record can never carry more than this build understands.
func decodeRecord(doc []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, err
	}
	if r.SchemaVersion != SchemaVersion {
		return Record{}, fmt.Errorf("schema version %q is not %q", r.SchemaVersion, SchemaVersion)
	}
	if r.RecordID == "" {
		return Record{}, fmt.Errorf("record without a record_id")
	}
	return r, nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newRecordID returns "cr_" and 128 random bits.
func newRecordID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return "cr_" + idEncoding.EncodeToString(b[:])
}
