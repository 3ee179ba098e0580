package advisories

import (
	"fmt"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severity is how bad a flaw is, from its CVSS data.
type Severity struct {
	// Level is critical, high, medium, low, none or unknown (the CVSS
	// qualitative rating scale, lower case).
	Level  string
	Score  float64 // CVSS base score 0–10; 0 with Level unknown
	Vector string  // the CVSS vector, when the document gives one
	// Version is the CVSS version ("3.0", "3.1", "4.0"), empty when unknown.
	Version string
	// Computed is true when Score was worked out from Vector here, false
	// when it was taken as the document states it.
	Computed bool
	// Stated is true when the document gives only a severity word, no
	// score.
	Stated bool
	// metrics holds the vector's base metrics, for plain-word impacts.
	metrics map[string]string
}

// Words says the severity in plain words, and where the figure came from:
// worked out here from the CVSS vector, or as the advisory states it.
func (s Severity) Words() string {
	if s.Level == "" || s.Level == "unknown" {
		return "Unknown. The advisory does not say how bad it is."
	}
	name := strings.ToUpper(s.Level[:1]) + s.Level[1:]
	switch {
	case s.Stated:
		return name + ", as the advisory states it. It gives no score."
	case s.Computed:
		return fmt.Sprintf("%s: %.1f out of 10. The hub worked this out from the CVSS %s code in the advisory.", name, s.Score, s.Version)
	}
	return fmt.Sprintf("%s: %.1f out of 10, as the advisory states it.", name, s.Score)
}

// rank orders levels so the worst comes first in lists.
func (s Severity) rank() int {
	switch s.Level {
	case "critical":
		return 5
	case "high":
		return 4
	case "medium":
		return 3
	case "low":
		return 2
	case "none":
		return 1
	}
	return 0
}

// FromVector scores a CVSS v3.0, v3.1 or v4.0 vector.
func FromVector(vector string) (Severity, error) {
	var (
		score   float64
		version string
		metrics = map[string]string{}
	)
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		c, err := gocvss40.ParseVector(vector)
		if err != nil {
			return Severity{}, fmt.Errorf("CVSS 4.0 vector: %w", err)
		}
		score, version = c.Score(), "4.0"
		for _, m := range []string{"AV", "PR", "UI", "VC", "VI", "VA"} {
			metrics[m], _ = c.Get(m)
		}
		metrics["C"], metrics["I"], metrics["A"] = metrics["VC"], metrics["VI"], metrics["VA"]
		if metrics["UI"] != "N" {
			metrics["UI"] = "R"
		}
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		c, err := gocvss31.ParseVector(vector)
		if err != nil {
			return Severity{}, fmt.Errorf("CVSS 3.1 vector: %w", err)
		}
		score, version = c.BaseScore(), "3.1"
		for _, m := range []string{"AV", "PR", "UI", "C", "I", "A"} {
			metrics[m], _ = c.Get(m)
		}
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		c, err := gocvss30.ParseVector(vector)
		if err != nil {
			return Severity{}, fmt.Errorf("CVSS 3.0 vector: %w", err)
		}
		score, version = c.BaseScore(), "3.0"
		for _, m := range []string{"AV", "PR", "UI", "C", "I", "A"} {
			metrics[m], _ = c.Get(m)
		}
	default:
		return Severity{}, fmt.Errorf("%q is not a CVSS 3.0, 3.1 or 4.0 vector", truncate(vector, 40))
	}
	return Severity{Level: level(score), Score: score, Vector: vector, Version: version, Computed: true, metrics: metrics}, nil
}

// level is the CVSS qualitative rating of a base score (the same bands in
// v3.x and v4.0).
func level(score float64) string {
	switch {
	case score >= 9.0:
		return "critical"
	case score >= 7.0:
		return "high"
	case score >= 4.0:
		return "medium"
	case score >= 0.1:
		return "low"
	}
	return "none"
}

// worst returns the more severe of a and b (a on a tie).
func worst(a, b Severity) Severity {
	if b.rank() > a.rank() || b.rank() == a.rank() && b.Score > a.Score {
		return b
	}
	return a
}

// AttackerCan says in plain words what the CVSS vector says an attacker
// can do: from where, with what, and to what effect. It is empty when the
// severity carries no vector.
func (s Severity) AttackerCan() string {
	m := s.metrics
	if m == nil {
		return ""
	}
	who := map[string]string{
		"N": "Someone on the internet",
		"A": "Someone on your home network",
		"L": "Someone who can run software on the device",
		"P": "Someone who can touch the device",
	}[m["AV"]]
	if who == "" {
		who = "An attacker"
	}
	var effects []string
	if m["C"] == "H" || m["C"] == "L" {
		effects = append(effects, "see what it knows")
	}
	if m["I"] == "H" || m["I"] == "L" {
		effects = append(effects, "change what it does")
	}
	if m["A"] == "H" || m["A"] == "L" {
		effects = append(effects, "stop it from working")
	}
	if len(effects) == 0 {
		effects = []string{"misuse it"}
	}
	var b strings.Builder
	b.WriteString(who)
	b.WriteString(" could ")
	for i, e := range effects {
		switch {
		case i == 0:
		case i == len(effects)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(e)
	}
	b.WriteString(".")
	if m["PR"] == "N" {
		b.WriteString(" They would not need a password.")
	}
	if m["UI"] == "R" || m["UI"] == "P" || m["UI"] == "A" {
		b.WriteString(" It only works if someone is tricked into a step, such as opening a link.")
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
