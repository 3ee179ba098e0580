// Package assess tells people how the running hub measures up: a security
// audit of the deployment (findings with severity, evidence, why it
// matters and how to fix it, suppressible with a reason and an expiry),
// a privacy impact assessment per household generated from the live
// configuration, and a conformance report against the IoT Good Practice
// paper and ETSI EN 303 645.
//
// It serves clause 2C of the paper (a security impact assessment of each
// product and service), clause 2D (a privacy impact assessment where
// personal data is concerned) and clause 3 (reporting against an agreed
// framework). Everything is computed from facts the hub holds now; checks
// whose facts live in other parts (support periods, advisories, advisory
// feeds, update metadata, the abuse monitor's quarantine, people's second
// factors) take those parts through small optional interfaces and say
// "not available on this hub" when one is missing, never "met".
//
// The service records its own actions (suppressions, signed reports) in
// the transparency log through the Recorder it is given.
package assess
