package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/throttle"
)

// Credential checks are throttled before the slow hash runs: each check
// first reserves an attempt in every bucket that applies, and a check that
// succeeds gives its attempts back, so only wrong guesses use them up and
// concurrent guesses cannot all slip past a check that has not counted
// them yet.
//
//   - per network address (an IPv4 address or an IPv6 /64), for every
//     check that is not answered from the verified-device cache: bounds
//     the argon2id work one address can cause, whatever names it tries;
//   - per username and per device id, whether or not the name exists (a
//     limit only on real names would tell which names are real): bounds
//     guessing at one account or device from many addresses;
//   - per known browser, instead of the two above, for a login that
//     presents a valid known-browser token for that username, so nobody
//     can lock the owner out of a browser they logged in from before
//     (OWASP's "device cookies");
//   - per account for re-entering one's password (ConfirmPassword,
//     ChangePassword).
var (
	addressLimit = throttle.Limit{Burst: 16, Every: 2 * time.Second}
	accountLimit = throttle.Limit{Burst: 5, Every: time.Minute}
	deviceLimit  = throttle.Limit{Burst: 5, Every: time.Minute}
	browserLimit = throttle.Limit{Burst: 5, Every: time.Minute}
	confirmLimit = throttle.Limit{Burst: 5, Every: time.Minute}
)

// maxThrottleKeys bounds each table's memory (about 200 bytes a key).
const maxThrottleKeys = 10000

// busyRetry is the Retry-After given when a table has no room because
// every key in it has a check in flight.
const busyRetry = 5 * time.Second

// Throttle reasons: ThrottledError.Reason and the metric's reason label.
const (
	ReasonAddress = "address" // too many checks from one network address
	ReasonAccount = "account" // too many wrong passwords for one username or account
	ReasonDevice  = "device"  // too many wrong secrets for one device id
	ReasonBrowser = "browser" // too many wrong passwords from one known browser
	ReasonBusy    = "busy"    // too many checks in flight at once
)

// ThrottledError is a credential check refused before it ran. Reason says
// which limit was reached; RetryAfter when the next attempt is allowed.
type ThrottledError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	what := "too many attempts"
	switch e.Reason {
	case ReasonAddress:
		what = "too many sign-in attempts from this network address"
	case ReasonAccount:
		what = "too many wrong passwords for this account"
	case ReasonDevice:
		what = "too many wrong secrets for this device"
	case ReasonBrowser:
		what = "too many wrong passwords from this browser"
	case ReasonBusy:
		what = "the hub is checking too many sign-ins at once"
	}
	return what + "; try again in " + humanDuration(e.RetryAfter)
}

func (e *ThrottledError) Unwrap() error { return ErrTooManyAttempts }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, for a
// Retry-After header.
func (e *ThrottledError) RetryAfterSeconds() int {
	return int((e.RetryAfter + time.Second - 1) / time.Second)
}

func humanDuration(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	switch {
	case s <= 1:
		return "a second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case s == 60:
		return "a minute"
	default:
		return fmt.Sprintf("%d minutes", (s+59)/60)
	}
}

// Origin is where a credential check comes from.
type Origin struct {
	// Addr is the client's network address, "host:port" or a bare IP (as
	// in http.Request.RemoteAddr). Addresses that do not parse, such as
	// the control socket's, share one bucket.
	Addr string
	// Browser is the known-browser token the client presented (the
	// KnownBrowserCookie), if any. Only logins use it.
	Browser string
}

// addressKey is the bucket key of a network address: the IP without port,
// and for IPv6 its /64, since one host usually holds a whole /64.
func addressKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	ip := ap.Addr()
	if err != nil {
		if ip, err = netip.ParseAddr(addr); err != nil {
			return "?"
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// limits is the service's throttle tables and their metric.
type limits struct {
	addresses *throttle.Table
	accounts  *throttle.Table
	devices   *throttle.Table
	browsers  *throttle.Table
	confirms  *throttle.Table
	throttled *prometheus.CounterVec
}

func newLimits(now func() time.Time) limits {
	return limits{
		addresses: throttle.New(addressLimit, maxThrottleKeys, now),
		accounts:  throttle.New(accountLimit, maxThrottleKeys, now),
		devices:   throttle.New(deviceLimit, maxThrottleKeys, now),
		browsers:  throttle.New(browserLimit, maxThrottleKeys, now),
		confirms:  throttle.New(confirmLimit, maxThrottleKeys, now),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_credential_checks_throttled_total",
			Help: "Credential checks refused before they ran because too many attempts were made, by kind (login, device, confirm) and reason.",
		}, []string{"kind", "reason"}),
	}
}

// Kinds of credential check, the metric's kind label.
const (
	checkLogin   = "login"
	checkDevice  = "device"
	checkConfirm = "confirm"
)

// bucketRef names one bucket an attempt must reserve.
type bucketRef struct {
	table  *throttle.Table
	key    string
	reason string
}

// attempt is the reservations one credential check holds, with the
// buckets they came from, so a failure can be passed on (OnSpent).
type attempt struct {
	rs   []*throttle.Reservation
	refs []bucketRef
	s    *Service
}

// failed spends the reservations: the credential was wrong.
func (a attempt) failed() {
	for _, r := range a.rs {
		r.Spend()
	}
	if a.s != nil {
		a.s.spent(a.refs)
	}
}

// passed gives the reservations back: the credential was right, or the
// check could not be made.
func (a attempt) passed() {
	for _, r := range a.rs {
		r.Refund()
	}
}

// reserve takes an attempt from each bucket in order, or none: on a
// refusal the ones already taken are given back.
func (s *Service) reserve(ctx context.Context, kind string, refs ...bucketRef) (attempt, error) {
	a := attempt{rs: make([]*throttle.Reservation, 0, len(refs)), refs: refs, s: s}
	for _, ref := range refs {
		r, err := ref.table.Reserve(ctx, ref.key)
		if err == nil {
			a.rs = append(a.rs, r)
			continue
		}
		a.passed()
		var te *ThrottledError
		var le *throttle.LimitedError
		switch {
		case errors.As(err, &le):
			te = &ThrottledError{Reason: ref.reason, RetryAfter: le.RetryAfter}
		case errors.Is(err, throttle.ErrFull):
			te = &ThrottledError{Reason: ReasonBusy, RetryAfter: busyRetry}
		default:
			return attempt{}, fmt.Errorf("%s check: %w", kind, err)
		}
		s.limits.throttled.WithLabelValues(kind, te.Reason).Inc()
		s.log.Debug("credential check throttled", "kind", kind, "reason", te.Reason)
		return attempt{}, te
	}
	return a, nil
}
