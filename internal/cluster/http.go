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
// back; when the handler succeeded (status below 400) it notes what
// classify says the request changed (for changes the services do not
// report themselves) and calls Sync. If Sync fails, the person gets a 503
// saying the change is stored but not yet confirmed everywhere, instead of
// the handler's "done". Reads pass straight through.
func (n *Node) Confirming(next http.Handler, classify func(*http.Request) []Change) http.Handler {
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
			if classify != nil {
				for _, c := range classify(r) {
					n.Note(c)
				}
			}
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
