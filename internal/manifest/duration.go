package manifest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is an ISO 8601 duration such as "P1Y", "P30D" or "PT5M", the
// form DPV and xsd:duration use. Years and months are calendar-free
// approximations (365 and 30 days): retention periods are stated in whole
// years and months and enforced with a day's precision.
type Duration struct {
	Text string
	D    time.Duration
}

// ParseDuration parses an ISO 8601 duration (PnYnMnWnDTnHnMnS, no sign,
// fractions only on seconds).
func ParseDuration(s string) (Duration, error) {
	bad := fmt.Errorf("%q is not an ISO 8601 duration such as P30D, P1Y or PT5M", s)
	if len(s) < 3 || s[0] != 'P' {
		return Duration{}, bad
	}
	rest := s[1:]
	var total float64
	inTime := false
	seen := ""
	units := map[bool]map[byte]float64{
		false: {'Y': 365 * 24 * 3600, 'M': 30 * 24 * 3600, 'W': 7 * 24 * 3600, 'D': 24 * 3600},
		true:  {'H': 3600, 'M': 60, 'S': 1},
	}
	order := map[bool]string{false: "YMWD", true: "HMS"}
	any := false
	for len(rest) > 0 {
		if rest[0] == 'T' {
			if inTime || len(rest) == 1 {
				return Duration{}, bad
			}
			inTime, seen = true, ""
			rest = rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return Duration{}, bad
		}
		num, unit := rest[:i], rest[i]
		mult, ok := units[inTime][unit]
		if !ok {
			return Duration{}, bad
		}
		// Units must appear once each and in order (P1D2Y is not valid).
		pos := strings.IndexByte(order[inTime], unit)
		if seen != "" && strings.IndexByte(order[inTime], seen[len(seen)-1]) >= pos {
			return Duration{}, bad
		}
		seen += string(unit)
		if strings.Contains(num, ".") && !(inTime && unit == 'S') {
			return Duration{}, bad
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return Duration{}, bad
		}
		total += v * mult
		any = true
		rest = rest[i+1:]
	}
	if !any {
		return Duration{}, bad
	}
	const maxSeconds = 200 * 365 * 24 * 3600
	if total > maxSeconds {
		return Duration{}, fmt.Errorf("%q is longer than 200 years", s)
	}
	return Duration{Text: s, D: time.Duration(total * float64(time.Second))}, nil
}

// MarshalJSON writes the ISO 8601 text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Text) }

// IsZero reports whether no duration was given.
func (d Duration) IsZero() bool { return d.Text == "" }

// Human renders the duration in plain words ("1 year", "30 days", "5 minutes").
func (d Duration) Human() string {
	if d.IsZero() {
		return "not stated"
	}
	day := 24 * time.Hour
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch v := d.D; {
	case v >= 365*day && v%(365*day) == 0:
		return plural(int64(v/(365*day)), "year")
	case v >= 30*day && v%(30*day) == 0:
		return plural(int64(v/(30*day)), "month")
	case v >= 7*day && v%(7*day) == 0:
		return plural(int64(v/(7*day)), "week")
	case v >= day && v%day == 0:
		return plural(int64(v/day), "day")
	case v >= time.Hour && v%time.Hour == 0:
		return plural(int64(v/time.Hour), "hour")
	case v >= time.Minute && v%time.Minute == 0:
		return plural(int64(v/time.Minute), "minute")
	default:
		return plural(int64((v+time.Second/2)/time.Second), "second")
	}
}
