package advisories

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// VersionSet decides whether a firmware version belongs to a set of
// versions. ok is false when the version cannot be compared (for example
// "beta" against SEMVER ranges): the caller then knows nothing.
type VersionSet interface {
	Contains(version string) (in, ok bool)
}

// RangeKind is how a range orders versions.
type RangeKind string

// Range kinds of OSV (GIT ranges name commits, which firmware reports do
// not carry, so they are kept but never match).
const (
	RangeSemver    RangeKind = "SEMVER"
	RangeEcosystem RangeKind = "ECOSYSTEM"
	RangeGit       RangeKind = "GIT"
)

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced, Fixed, LastAffected, Limit string
}

func (e Event) version() string {
	return cmp.Or(e.Introduced, e.Fixed, e.LastAffected, e.Limit)
}

// Range is one OSV affected range.
type Range struct {
	Kind   RangeKind
	Events []Event
}

// Ranges is an OSV affected entry's versions: its ranges and its list of
// exact versions. A version is in the set if it is listed or in any range.
type Ranges struct {
	Ranges   []Range
	Versions []string
}

// Contains implements VersionSet.
func (rs Ranges) Contains(v string) (in, ok bool) {
	for _, x := range rs.Versions {
		if x == v {
			return true, true
		}
	}
	known := len(rs.Versions) > 0
	for _, r := range rs.Ranges {
		in, ok := r.contains(v)
		if in {
			return true, true
		}
		known = known || ok
	}
	return false, known
}

// contains evaluates one range the way the OSV specification's
// "Evaluation" section does: walk the events in version order; an
// introduced at or below v turns it on, a fixed or limit at or below v or
// a last_affected below v turns it off.
func (r Range) contains(v string) (in, ok bool) {
	less := compareFor(r.Kind)
	if less == nil {
		return false, false
	}
	if _, valid := less(v, v); !valid {
		return false, false
	}
	events := slices.Clone(r.Events)
	valid := true
	slices.SortStableFunc(events, func(a, b Event) int {
		// "0" is the start of time in OSV: below every version.
		if a.Introduced == "0" {
			return -1
		}
		if b.Introduced == "0" {
			return 1
		}
		c, ok := less(a.version(), b.version())
		valid = valid && ok
		return c
	})
	if !valid {
		return false, false
	}
	affected := false
	for _, e := range events {
		switch {
		case e.Introduced != "":
			if c, _ := less(v, e.Introduced); e.Introduced == "0" || c >= 0 {
				affected = true
			}
		case e.Fixed != "":
			if c, _ := less(v, e.Fixed); c >= 0 {
				affected = false
			}
		case e.Limit != "":
			if c, _ := less(v, e.Limit); c >= 0 {
				affected = false
			}
		case e.LastAffected != "":
			if c, _ := less(v, e.LastAffected); c > 0 {
				affected = false
			}
		}
	}
	return affected, true
}

// compareFor returns the version order of a range kind: a three-way
// comparison that also says whether both versions could be read.
func compareFor(k RangeKind) func(a, b string) (int, bool) {
	switch k {
	case RangeSemver:
		return compareSemver
	case RangeEcosystem:
		return compareGeneric
	}
	return nil
}

// compareSemver compares SemVer 2.0 versions, with or without a leading v.
func compareSemver(a, b string) (int, bool) {
	va, vb := "v"+strings.TrimPrefix(a, "v"), "v"+strings.TrimPrefix(b, "v")
	if !isFullSemver(va) || !isFullSemver(vb) {
		return 0, false
	}
	return semver.Compare(va, vb), true
}

// isFullSemver accepts only MAJOR.MINOR.PATCH (with optional pre-release
// and build), as SemVer 2.0 requires; x/mod/semver alone also accepts the
// shorthands v1 and v1.2.
func isFullSemver(v string) bool {
	if !semver.IsValid(v) {
		return false
	}
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	core, _, _ = strings.Cut(core, "+")
	return strings.Count(core, ".") == 2
}

// compareGeneric orders firmware versions whose scheme the advisory does
// not name ("ECOSYSTEM" for a device maker's own line): split into runs of
// digits and of other characters, digits compared as numbers. 1.10 > 1.9,
// 2.0-rc1 < 2.0-rc2. An empty version cannot be compared.
func compareGeneric(a, b string) (int, bool) {
	if a == "" || b == "" {
		return 0, false
	}
	pa, pb := genericParts(a), genericParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		switch {
		case ex == nil && ey == nil:
			if c := cmp.Compare(nx, ny); c != 0 {
				return c, true
			}
		case ex == nil:
			return 1, true // a number sorts after a word: 1.0.1 > 1.0.beta
		case ey == nil:
			return -1, true
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c, true
			}
		}
	}
	return cmp.Compare(len(pa), len(pb)), true
}

// genericParts splits a version into runs of digits and runs of letters;
// separators only separate.
func genericParts(v string) []string {
	var parts []string
	start, digits := -1, false
	flush := func(i int) {
		if start >= 0 {
			parts = append(parts, strings.ToLower(v[start:i]))
			start = -1
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		isDigit := c >= '0' && c <= '9'
		isLetter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		switch {
		case !isDigit && !isLetter:
			flush(i)
		case start < 0:
			start, digits = i, isDigit
		case digits != isDigit:
			flush(i)
			start, digits = i, isDigit
		}
	}
	flush(len(v))
	return parts
}

// Exact is a set of one version (a CSAF product_version branch). Versions
// are equal when the generic order says so, so "1.2" and "v1.2" match.
type Exact string

// Contains implements VersionSet.
func (e Exact) Contains(v string) (in, ok bool) {
	c, ok := compareGeneric(strings.TrimPrefix(v, "v"), strings.TrimPrefix(string(e), "v"))
	return ok && c == 0, ok
}

// Vers is a version range in the "vers" syntax CSAF recommends for
// product_version_range (github.com/package-url/vers-spec):
// "vers:generic/>=1.0|<1.4". Constraints are read as the spec's
// algorithm does: sorted, and taken pairwise as intervals.
type Vers struct {
	Constraints []Constraint
	semver      bool
}

// Constraint is one comparator and version of a vers range.
type Constraint struct {
	Op      string // "=", "!=", "<", "<=", ">", ">="; "*" for any
	Version string
}

// ParseVers reads a vers range. ok is false for anything it cannot read
// (including free-text ranges CSAF allows), which then matches nothing.
func ParseVers(s string) (Vers, bool) {
	rest, found := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "vers:")
	if !found {
		return Vers{}, false
	}
	scheme, list, found := strings.Cut(rest, "/")
	if !found || list == "" {
		return Vers{}, false
	}
	v := Vers{semver: scheme == "semver"}
	if strings.TrimSpace(list) == "*" {
		return Vers{Constraints: []Constraint{{Op: "*"}}}, true
	}
	for _, c := range strings.Split(list, "|") {
		c = strings.TrimSpace(c)
		op := "="
		for _, p := range []string{">=", "<=", "!=", "<", ">", "="} {
			if strings.HasPrefix(c, p) {
				op, c = p, strings.TrimSpace(c[len(p):])
				break
			}
		}
		if c == "" {
			return Vers{}, false
		}
		v.Constraints = append(v.Constraints, Constraint{Op: op, Version: c})
	}
	cmpf := v.compare
	valid := true
	slices.SortStableFunc(v.Constraints, func(a, b Constraint) int {
		c, ok := cmpf(a.Version, b.Version)
		valid = valid && ok
		return c
	})
	return v, valid
}

func (v Vers) compare(a, b string) (int, bool) {
	if v.semver {
		return compareSemver(a, b)
	}
	return compareGeneric(a, b)
}

// Contains implements VersionSet following the vers specification's
// containment algorithm.
func (v Vers) Contains(ver string) (in, ok bool) {
	if len(v.Constraints) == 1 && v.Constraints[0].Op == "*" {
		return true, true
	}
	var rest []Constraint
	for _, c := range v.Constraints {
		r, ok := v.compare(ver, c.Version)
		if !ok {
			return false, false
		}
		switch c.Op {
		case "=":
			if r == 0 {
				return true, true
			}
		case "!=":
			if r == 0 {
				return false, true
			}
		default:
			rest = append(rest, c)
		}
	}
	for i, c := range rest {
		r, _ := v.compare(ver, c.Version)
		if satisfies(c.Op, r) && (c.Op == "<" || c.Op == "<=") && i == 0 {
			return true, true
		}
		if (c.Op == ">" || c.Op == ">=") && i == len(rest)-1 && satisfies(c.Op, r) {
			return true, true
		}
		if i+1 < len(rest) && (c.Op == ">" || c.Op == ">=") {
			n := rest[i+1]
			r2, _ := v.compare(ver, n.Version)
			if satisfies(c.Op, r) && satisfies(n.Op, r2) {
				return true, true
			}
		}
	}
	return false, true
}

// satisfies reports whether a comparison result r (ver against the
// constraint's version) meets op.
func satisfies(op string, r int) bool {
	switch op {
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	}
	return false
}
