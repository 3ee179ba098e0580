package web

import (
	"sync"
	"time"
)

// secretTTL bounds how long a new device secret waits, in memory only, for
// the redirect that shows it. It is normally picked up within a second.
const secretTTL = 10 * time.Minute

// oneTimeSecrets carries a new device secret from the POST that made it to
// the one page that shows it (post, redirect, get), so a reload or the
// back button cannot show it again. Entries are bound to the session that
// made them and are removed when read or expired.
type oneTimeSecrets struct {
	mu sync.Mutex
	m  map[secretKey]heldSecret
}

type secretKey struct{ session, device string }

type heldSecret struct {
	secret  string
	expires time.Time
}

func newOneTimeSecrets() *oneTimeSecrets {
	return &oneTimeSecrets{m: map[secretKey]heldSecret{}}
}

// put holds secret for the session's next look at the device's credential
// page.
func (o *oneTimeSecrets) put(now time.Time, sessionID, deviceID, secret string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, v := range o.m {
		if now.After(v.expires) {
			delete(o.m, k)
		}
	}
	o.m[secretKey{sessionID, deviceID}] = heldSecret{secret: secret, expires: now.Add(secretTTL)}
}

// take returns the held secret and forgets it.
func (o *oneTimeSecrets) take(now time.Time, sessionID, deviceID string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := secretKey{sessionID, deviceID}
	v, ok := o.m[k]
	delete(o.m, k)
	if !ok || now.After(v.expires) {
		return "", false
	}
	return v.secret, true
}
