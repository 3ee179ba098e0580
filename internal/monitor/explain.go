package monitor

import (
	"fmt"
	"math"
	"time"
)

// Explanation tells the device's owner, in plain words, what was seen (with
// the numbers), what the risk is, and what they can do.
type Explanation struct {
	Why  string
	Risk string
	Next string
}

// Explain words the alarm for the device's owner. The text is kept short
// and plain so that anyone in the household can act on it.
func (a Alarm) Explain() Explanation {
	n := num(a.Observed)
	lim := num(a.Limit)
	win := window(a.Window)
	stream := a.Stream
	if stream == "" {
		stream = "its data"
	}
	const (
		nextCheck = "Check the device. If you trust it, release it and say why. If not, give it a new secret or remove it."
		nextCred  = "Give the device a new secret now. If you did not copy it to a second place, remove the old one."
	)
	switch a.Kind {
	case KindDeclaredRate:
		return Explanation{
			Why:  fmt.Sprintf("It sent %s messages on %s in %s. Its maker says it sends at most %s in that time.", n, stream, win, lim),
			Risk: "A device that sends far more than it should may be broken, or someone may have taken it over.",
			Next: nextCheck,
		}
	case KindDeclaredSize:
		return Explanation{
			Why:  fmt.Sprintf("It sent messages of %s bytes on %s. Its maker says they stay under %s bytes.", n, stream, lim),
			Risk: "Large messages can carry data out of your home that should not leave it.",
			Next: nextCheck,
		}
	case KindUndeclared:
		return Explanation{
			Why:  fmt.Sprintf("It tried to send %s things in %s that its maker never said it would send.", n, win),
			Risk: "A device that sends data it did not declare may be sending your data to the wrong place.",
			Next: nextCheck,
		}
	case KindIgnoresOff:
		return Explanation{
			Why:  fmt.Sprintf("You turned %s off, but it still sent %s messages on it in %s.", stream, n, win),
			Risk: "It does not obey your choice. The hub did not keep what it sent.",
			Next: nextCheck,
		}
	case KindUnusualRate:
		return Explanation{
			Why:  fmt.Sprintf("It sent %s messages on %s in %s. It usually sends about %s.", n, stream, win, lim),
			Risk: "A sudden change can mean a fault, new software, or an attack.",
			Next: nextCheck,
		}
	case KindUnusualSize:
		return Explanation{
			Why:  fmt.Sprintf("Its messages on %s were %s bytes each. They are usually about %s bytes.", stream, n, lim),
			Risk: "A sudden change can mean a fault, new software, or an attack.",
			Next: nextCheck,
		}
	case KindUnusualGap:
		return Explanation{
			Why:  fmt.Sprintf("Its messages on %s came %s seconds apart. They are usually about %s seconds apart.", stream, n, lim),
			Risk: "A sudden change can mean a fault, new software, or an attack.",
			Next: nextCheck,
		}
	case KindWrongSecrets:
		return Explanation{
			Why:  fmt.Sprintf("Someone tried to log in as this device with a wrong secret %s times in %s.", n, win),
			Risk: "Someone may be trying to guess its secret.",
			Next: "Give the device a new, long secret. The hub slows down more tries.",
		}
	case KindClone:
		return Explanation{
			Why:  fmt.Sprintf("Its secret was in use from %s places at the same time.", n),
			Risk: "Someone may have copied the device or its secret.",
			Next: nextCred,
		}
	case KindTakeover:
		return Explanation{
			Why:  fmt.Sprintf("A second link tried to take over its session from a new place %s times.", n),
			Risk: "Someone may have copied the device or its secret.",
			Next: nextCred,
		}
	case KindProbe:
		return Explanation{
			Why:  fmt.Sprintf("It tried %s times in %s to reach topics that are not its own.", n, win),
			Risk: "It may be looking for other devices to attack.",
			Next: nextCheck,
		}
	case KindReconnects:
		return Explanation{
			Why:  fmt.Sprintf("It joined the hub %s times in %s.", n, win),
			Risk: "A device that keeps joining may be broken or used in an attack.",
			Next: nextCheck,
		}
	case KindNewAddress:
		return Explanation{
			Why:  "It joined from a network address the hub has not seen it use before.",
			Risk: "This is often fine, for example after a router change. It can also mean a copy of the device.",
			Next: "If you did not change your network, give the device a new secret.",
		}
	case KindAdvisory:
		return Explanation{
			Why:  fmt.Sprintf("An owner put it on hold because of a known security flaw (%s). It stays on hold until a fix is in.", a.Stream),
			Risk: "While it is on hold, the hub keeps nothing it sends and passes nothing on. It can still get its updates.",
			Next: "Install the fix when it is ready. The hold ends by itself when the device reports a fixed version. You can also release it now.",
		}
	case KindWave:
		return Explanation{
			Why:  fmt.Sprintf("%s devices of this type raised alarms in the same %s.", n, win),
			Risk: "Many devices of one type at once can mean bad software or a wide attack.",
			Next: "Check with the maker. Keep the devices apart until you know more.",
		}
	}
	return Explanation{Why: "The hub saw something odd.", Risk: "It may be a fault or an attack.", Next: nextCheck}
}

func num(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

func window(d time.Duration) string {
	switch {
	case d <= 0:
		return "a short time"
	case d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return plural(int(d.Round(time.Second)/time.Second), "second")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "one " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
