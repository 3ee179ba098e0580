package advisories

import (
	"slices"
	"strings"
)

// Device is what matching knows about one device: the identifiers of its
// type (from the manifest) and the firmware version it last reported.
type Device struct {
	ID          string
	HouseholdID string
	Name        string
	Type        string
	Product     Product
	Firmware    string // empty when the device never reported one
}

// Verdict is what the advisories say about one device and one flaw.
type Verdict int

// Verdicts. Only Affected and Possibly are open findings; a VEX "not
// affected" statement or a fixed version closes the matter silently.
const (
	VerdictAffected Verdict = iota + 1
	// VerdictPossibly: the device type is named as affected but its
	// version is unknown or cannot be compared.
	VerdictPossibly
)

func (v Verdict) String() string {
	if v == VerdictPossibly {
		return "possibly_affected"
	}
	return "affected"
}

// Finding is one open advisory for one device.
type Finding struct {
	Device   Device
	Advisory *Advisory
	Vuln     *Vuln
	Verdict  Verdict
	// Actions are the remediations that apply to the device's product.
	Actions []Action
}

// Index holds parsed advisories keyed by the product identifiers they
// name, so matching a device looks at the few rules that can concern it
// rather than at every advisory.
type Index struct {
	byKey map[string][]ruleRef
	n     int
}

type ruleRef struct {
	adv  *Advisory
	vuln int
	rule int
}

// NewIndex indexes advisories. Withdrawn ones are left out.
func NewIndex(advs []*Advisory) *Index {
	ix := &Index{byKey: map[string][]ruleRef{}}
	for _, a := range advs {
		ix.Add(a)
	}
	return ix
}

// Add indexes one more advisory. It does not replace an earlier one with
// the same id: build a new Index for that.
func (ix *Index) Add(a *Advisory) {
	if a.Withdrawn {
		return
	}
	ix.n++
	for vi := range a.Vulns {
		for ri, r := range a.Vulns[vi].Rules {
			for _, k := range keys(r.Product) {
				ix.byKey[k] = append(ix.byKey[k], ruleRef{a, vi, ri})
			}
		}
	}
}

// Len is the number of advisories indexed.
func (ix *Index) Len() int { return ix.n }

// keys are the lookup keys of a product: each identifier it has. A rule
// and a device meet when they share a key; matches then decides.
func keys(p Product) []string {
	var ks []string
	if p.PURL != "" {
		ks = append(ks, "purl:"+p.PURL)
	}
	if p.CPE != "" {
		ks = append(ks, "cpe:"+p.CPE)
	}
	if p.Model != "" {
		ks = append(ks, "model:"+strings.ToLower(p.Model))
	}
	return ks
}

// matches reports whether a rule's product is the device's product. The
// most precise identifier both sides have decides: PURL, then CPE, then
// model (with the maker, when the rule names one).
func matches(rule, dev Product) bool {
	switch {
	case rule.PURL != "" && dev.PURL != "":
		return rule.PURL == dev.PURL
	case rule.CPE != "" && dev.CPE != "":
		return rule.CPE == dev.CPE
	case rule.Model != "" && dev.Model != "":
		return strings.EqualFold(rule.Model, dev.Model) &&
			(rule.Maker == "" || dev.Maker == "" || strings.EqualFold(rule.Maker, dev.Maker))
	}
	return false
}

// Match returns the open findings for one device, worst first.
func (ix *Index) Match(d Device) []Finding {
	type acc struct {
		adv      *Advisory
		vuln     int
		affected bool
		possibly bool
		closed   bool // fixed or not affected for this version
		ruleIDs  []string
	}
	var found map[[2]any]*acc
	seen := map[ruleRef]bool{}
	for _, k := range keys(d.Product) {
		for _, ref := range ix.byKey[k] {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			v := &ref.adv.Vulns[ref.vuln]
			r := v.Rules[ref.rule]
			if !matches(r.Product, d.Product) {
				continue
			}
			if found == nil {
				found = map[[2]any]*acc{}
			}
			key := [2]any{ref.adv, ref.vuln}
			a := found[key]
			if a == nil {
				a = &acc{adv: ref.adv, vuln: ref.vuln}
				found[key] = a
			}
			in, ok := true, true
			if r.Versions != nil {
				if d.Firmware == "" {
					in, ok = false, false
				} else {
					in, ok = r.Versions.Contains(d.Firmware)
				}
			}
			switch {
			case r.Status == StatusAffected && in:
				a.affected = true
				a.ruleIDs = append(a.ruleIDs, r.ProductIDs...)
			case r.Status == StatusAffected && !ok:
				a.possibly = true
				a.ruleIDs = append(a.ruleIDs, r.ProductIDs...)
			case (r.Status == StatusFixed || r.Status == StatusNotAffected) && in:
				a.closed = true
			}
		}
	}
	var out []Finding
	for _, a := range found {
		if a.closed || !a.affected && !a.possibly {
			continue
		}
		v := &a.adv.Vulns[a.vuln]
		f := Finding{Device: d, Advisory: a.adv, Vuln: v, Verdict: VerdictAffected}
		if !a.affected {
			f.Verdict = VerdictPossibly
		}
		for _, act := range v.Actions {
			if len(act.ProductIDs) == 0 || overlaps(act.ProductIDs, a.ruleIDs) {
				f.Actions = append(f.Actions, act)
			}
		}
		out = append(out, f)
	}
	SortFindings(out)
	return out
}

// MatchAll returns the open findings of every device, worst first.
func (ix *Index) MatchAll(devs []Device) []Finding {
	var out []Finding
	for _, d := range devs {
		out = append(out, ix.Match(d)...)
	}
	SortFindings(out)
	return out
}

// SortFindings orders findings worst first: affected before possibly
// affected, then by severity, then by advisory and device id.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if a.Verdict != b.Verdict {
			return int(a.Verdict) - int(b.Verdict)
		}
		if ra, rb := a.Vuln.Severity.rank(), b.Vuln.Severity.rank(); ra != rb {
			return rb - ra
		}
		if a.Vuln.Severity.Score != b.Vuln.Severity.Score {
			if a.Vuln.Severity.Score > b.Vuln.Severity.Score {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Advisory.ID, b.Advisory.ID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Vuln.ID, b.Vuln.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Device.ID, b.Device.ID)
	})
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
