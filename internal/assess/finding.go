package assess

import (
	"fmt"
	"time"
)

// Severity ranks a finding. The zero value is not a severity.
type Severity string

// Severities, from worst to mildest.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
	Info     Severity = "info"
)

// Severities lists every severity, worst first.
var Severities = []Severity{Critical, High, Medium, Low, Info}

// Rank orders severities: Critical is 4, Info 0, anything else -1.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	case Info:
		return 0
	}
	return -1
}

// ParseSeverity accepts one of the severity names.
func ParseSeverity(s string) (Severity, error) {
	if v := Severity(s); v.Rank() >= 0 {
		return v, nil
	}
	return "", fmt.Errorf("severity %q: want critical, high, medium, low or info", s)
}

// Finding is one problem the audit found. What it says is about ids,
// addresses, files and counts, never data values or secrets.
type Finding struct {
	ID        string   `json:"id"`    // stable across runs: the check and its subject
	Check     string   `json:"check"` // the check that found it
	Severity  Severity `json:"severity"`
	Household string   `json:"household,omitempty"` // "" for the hub as a whole
	Subject   string   `json:"subject"`
	Title     string   `json:"title"`
	// Evidence is what was seen, with the numbers and names.
	Evidence string `json:"evidence"`
	// Why says in plain words why it matters.
	Why string `json:"why"`
	// Fix says how to fix it; FixURL is a page of this hub that does it,
	// when the hub can.
	Fix        string       `json:"fix"`
	FixURL     string       `json:"fix_url,omitempty"`
	FirstSeen  time.Time    `json:"first_seen"`
	LastSeen   time.Time    `json:"last_seen"`
	ClosedAt   *time.Time   `json:"closed_at,omitempty"`
	Suppressed *Suppression `json:"suppressed,omitempty"`
}

// Open reports whether the finding is open and not suppressed.
func (f *Finding) Open() bool { return f.ClosedAt == nil && f.Suppressed == nil }

// Suppression hides a finding until it expires.
type Suppression struct {
	Reason    string    `json:"reason"`
	By        string    `json:"by,omitempty"` // account id; "" for the operator
	CreatedAt time.Time `json:"created_at"`
	Until     time.Time `json:"until"`
}

// CheckStatus says whether a check could run on this hub.
type CheckStatus struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	Available bool   `json:"available"`
	// Note says why a check is not available, or what it looked at.
	Note string `json:"note,omitempty"`
}

// Report is the state of the audit as one principal may see it.
type Report struct {
	RanAt    time.Time     `json:"ran_at"`
	Findings []Finding     `json:"findings"`
	Checks   []CheckStatus `json:"checks"`
}

// OpenAtOrAbove counts the open, unsuppressed findings at or above min.
func (r *Report) OpenAtOrAbove(min Severity) int {
	n := 0
	for i := range r.Findings {
		if r.Findings[i].Open() && r.Findings[i].Severity.Rank() >= min.Rank() {
			n++
		}
	}
	return n
}
