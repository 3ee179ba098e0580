package monitor

import (
	"fmt"
	"strconv"
	"time"
)

// Severity ranks how much an alarm matters. The admin maps each one to an
// Action.
type Severity uint8

// Severities, lowest first.
const (
	Info Severity = iota + 1
	Warning
	Critical
)

// String returns the severity's name as shown to people and in settings.
func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return "unknown"
}

// ParseSeverity reads a severity name written by String.
func ParseSeverity(s string) (Severity, error) {
	for _, v := range []Severity{Info, Warning, Critical} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, warning or critical)", s)
}

// Kind names what a detector saw.
type Kind string

// Detector kinds. The first group breaks a declaration (certain), the
// second is unusual for this device (learned), the rest concern
// credentials, connections and the fleet.
const (
	KindDeclaredRate Kind = "declared_rate"
	KindDeclaredSize Kind = "declared_size"
	KindUndeclared   Kind = "undeclared"
	KindIgnoresOff   Kind = "ignores_off"

	KindUnusualRate Kind = "unusual_rate"
	KindUnusualSize Kind = "unusual_size"
	KindUnusualGap  Kind = "unusual_gap"

	KindWrongSecrets Kind = "wrong_secrets"
	KindClone        Kind = "clone"
	KindTakeover     Kind = "takeover"
	KindProbe        Kind = "probe"
	KindReconnects   Kind = "reconnects"
	KindNewAddress   Kind = "new_address"
	KindWave         Kind = "wave"
)

// Alarm is one raised finding about a device (or, for KindWave, about a
// device type). It carries numbers and names, never reading values.
type Alarm struct {
	Device   string // empty for a fleet wave
	Type     string // the device type, when known
	Kind     Kind
	Severity Severity
	Stream   string  // the stream concerned, if any
	Observed float64 // what was seen in one window (count, bytes, ...)
	Limit    float64 // what was expected or allowed
	Window   time.Duration
	Raised   time.Time
}

// detail returns the alarm's numbers for the transparency log: ids and
// counts only.
func (a Alarm) detail() map[string]string {
	d := map[string]string{
		"kind":     string(a.Kind),
		"severity": a.Severity.String(),
		"observed": strconv.FormatFloat(a.Observed, 'g', 6, 64),
		"limit":    strconv.FormatFloat(a.Limit, 'g', 6, 64),
		"window":   a.Window.String(),
	}
	if a.Type != "" {
		d["type"] = a.Type
	}
	return d
}
