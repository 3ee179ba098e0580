package advisories

import "time"

// Format is the kind of an advisory document.
type Format string

// Formats the package reads.
const (
	FormatOSV  Format = "osv"
	FormatCSAF Format = "csaf"
)

// MaxDocumentBytes is the largest advisory document accepted. Real OSV and
// CSAF documents are a few kilobytes; a cap keeps a hostile or broken file
// from exhausting memory during schema validation.
const MaxDocumentBytes = 5 << 20

// Advisory is one imported document, reduced to what matching and the
// pages need.
type Advisory struct {
	ID       string
	Format   Format
	Title    string
	Aliases  []string // CVE and other ids of the same flaw
	Modified time.Time
	// Withdrawn documents are kept but concern no device.
	Withdrawn bool
	// Vulns are the flaws the document describes. An OSV document is one
	// flaw; a CSAF document may list several.
	Vulns []Vuln
}

// Vuln is one flaw and the products it concerns.
type Vuln struct {
	ID string // CVE, or the document's id
	// Impact says what the flaw lets an attacker do, as the document puts
	// it (empty when it does not say).
	Impact   string
	Severity Severity
	// Rules say which products are affected, fixed or not affected.
	Rules []Rule
	// Actions are the document's remediations: what to do about it.
	Actions []Action
}

// Status is what a document says about a product's exposure to a flaw.
type Status int

// Statuses, in the order a device's verdict prefers them: a statement that
// the device is not affected wins over one that it is fixed, which wins
// over one that it is affected.
const (
	StatusNone        Status = iota // nothing said
	StatusAffected                  // the version is affected
	StatusFixed                     // the version carries the fix
	StatusNotAffected               // VEX: not affected, must not alarm
)

func (s Status) String() string {
	switch s {
	case StatusAffected:
		return "affected"
	case StatusFixed:
		return "fixed"
	case StatusNotAffected:
		return "not_affected"
	}
	return "none"
}

// Rule says, for the products it names, which versions have a status.
type Rule struct {
	Product Product
	Status  Status
	// Versions decides whether a firmware version falls under the rule.
	// A nil Versions covers every version.
	Versions VersionSet
	// ProductIDs are the CSAF product ids the rule came from (for
	// remediations that name products).
	ProductIDs []string
}

// Product identifies a device type the way advisories do. Empty fields
// are not compared; a rule needs at least one of PURL, CPE or Model to
// match anything.
type Product struct {
	Maker string
	Model string
	PURL  string // without version, qualifiers or subpath
	CPE   string // "vendor:product" of a CPE 2.3 name
}

// Action is one remediation.
type Action struct {
	Kind    string // vendor_fix, workaround, mitigation, no_fix_planned, none_available
	Details string
	URL     string
	// ProductIDs limits it to some CSAF products (empty: all).
	ProductIDs []string
}
