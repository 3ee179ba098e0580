package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
)

// Confirming wraps the handler of an API or of the pages so that a request
// that may change something answers only after the change is in force on
// every live node. For POST, PUT, PATCH and DELETE it holds the response
// back and, when the handler succeeded (status below 400), calls Sync.
// What the request changed is what the services noted while it ran (each
// service reports its own changes through a hook the hub wires to Note),
// so Sync carries it; a request that changed nothing noted nothing, and
// Sync returns at once. If Sync fails, the person gets a 503 saying the
// change is stored but not yet confirmed everywhere, instead of the
// handler's "done". Reads pass straight through.
//
// A handler that failed after a service noted a change (stored, then the
// transparency log refused the record) answers its error unchanged; the
// change goes out with the next round.
func (n *Node) Confirming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			next.ServeHTTP(w, r)
			return
		}
		bw := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(bw, r)
		if bw.status < 400 {
			if err := n.Sync(r.Context()); err != nil {
				unconfirmed(w, err)
				return
			}
		}
		for k, v := range bw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(bw.status)
		_, _ = w.Write(bw.body.Bytes())
	})
}

func unconfirmed(w http.ResponseWriter, err error) {
	detail := "The change is stored, but not every hub node confirmed it, so it may not be in force everywhere yet. Try again; if it keeps failing, check the hub nodes."
	var ue *UnconfirmedError
	if errors.As(err, &ue) {
		detail = ue.Error() + ". It may not be in force on those nodes yet: try again, and check them if it keeps failing."
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":   "about:blank",
		"title":  "Change not confirmed by every hub node",
		"status": http.StatusServiceUnavailable,
		"detail": detail,
	})
}

// bufferedWriter holds a response back until the change is confirmed.
type bufferedWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}
