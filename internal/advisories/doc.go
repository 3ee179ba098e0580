// Package advisories imports vulnerability advisories and tells which
// devices they concern.
//
// It reads two formats: OSV (the Open Source Vulnerability format, schema
// 1.x, ossf.github.io/osv-schema) and CSAF 2.0 (OASIS Common Security
// Advisory Framework, docs.oasis-open.org/csaf/csaf/v2.0). Every document
// is checked against its JSON Schema before anything of it is kept: CSAF
// against the official OASIS schema that github.com/gocsaf/csaf/v3 embeds,
// OSV against osv.schema.json, written for Candor from the OSV 1.x
// specification because no Go module ships the official one. A refused
// document stores nothing and its error names the JSON path.
//
// Matching compares a device type's identifiers (its manifest's maker,
// model, PURL and CPE) and the firmware version the device reported with
// OSV affected ranges (SEMVER and ECOSYSTEM: introduced, fixed,
// last_affected, limit) and with CSAF product trees and product status.
// A CSAF known_not_affected status (a VEX "not affected" statement) never
// raises an alarm.
//
// This serves clause 3 of the IoT Good Practice paper ("prompt action to
// address vulnerabilities") and clause 2C (devices that stay safe over
// long lifetimes).
package advisories
