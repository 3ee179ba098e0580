package updates

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Authenticator checks a device's own credential (the identity service,
// which throttles guesses per device and per network address).
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, remoteAddr, id, secret string) error
}

// ErrThrottled is wrapped by an Authenticator's refusal to check a
// credential because of too many wrong attempts (answered 429, not 401).
var ErrThrottled = errors.New("too many wrong attempts")

// AuthFunc adapts a function to Authenticator.
type AuthFunc func(ctx context.Context, remoteAddr, id, secret string) error

// AuthenticateDevice calls f.
func (f AuthFunc) AuthenticateDevice(ctx context.Context, remoteAddr, id, secret string) error {
	return f(ctx, remoteAddr, id, secret)
}

// FilePattern is the route FileHandler serves (Go 1.22 mux syntax).
const FilePattern = "GET /updates/v1/{device}/{sha256}"

// FileHandler serves the verified image a device was offered, to that
// device only: it authenticates with its own id and secret (HTTP Basic,
// as HTTP ingest does), and anything else, including another device's
// offer, answers 404 so ids cannot be probed. The bytes are checked
// against the signed metadata again on every request.
func (s *Service) FileHandler(auth Authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id == "" || secret == "" || id != r.PathValue("device") {
			w.Header().Set("WWW-Authenticate", `Basic realm="candor devices"`)
			http.Error(w, "send the device id and secret with HTTP Basic authentication", http.StatusUnauthorized)
			return
		}
		if err := auth.AuthenticateDevice(r.Context(), r.RemoteAddr, id, secret); err != nil {
			if errors.Is(err, ErrThrottled) {
				http.Error(w, "too many wrong secrets for this device: try again later", http.StatusTooManyRequests)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="candor devices"`)
			http.Error(w, "the device id or secret is wrong", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		st := s.states[id]
		var t *Target
		var c *Client
		if st != nil && st.target != nil && st.target.SHA256 == r.PathValue("sha256") && offeredStage(st.Stage) {
			t, c = st.target, st.client
		}
		s.mu.Unlock()
		if t == nil {
			http.Error(w, "no update is offered to this device at this address", http.StatusNotFound)
			return
		}
		data, err := c.Download(r.Context(), *t)
		if err == nil {
			err = t.verify(data)
		}
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				s.log.WarnContext(r.Context(), "update file refused while serving", "device", id, "reason", re.Reason)
			} else {
				s.log.ErrorContext(r.Context(), "update file", "device", id, "err", err)
			}
			http.Error(w, "the update file is not available", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(data)
	})
}

// offeredStage reports whether a device in this stage may fetch its image.
func offeredStage(stage string) bool {
	switch Stage(stage) {
	case StageDownloading, StageVerified, StageInstalling, StageFailed:
		return true
	}
	return stage == StatusOffered
}
