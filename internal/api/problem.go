package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/manifest"
	problems "github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// problem is an RFC 9457 problem details document.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Reason is a machine-readable refusal reason (extension member) for
	// refused readings, e.g. "not_json_object", and for throttled
	// credential checks, e.g. "address".
	Reason string `json:"reason,omitempty"`
	// Problems lists every problem of an invalid manifest (extension
	// member), each with the JSON path it is about.
	Problems []manifest.Problem `json:"problems,omitempty"`
	// Sharing says what turning on a use would send out of the hub, to
	// whom and on what terms (extension member of confirm-sharing).
	Sharing *consent.Sharing `json:"sharing,omitempty"`
	// Challenge is sent back with the code to finish a login that needs
	// a second factor (extension member of second-factor-required).
	Challenge string `json:"challenge,omitempty"`
}

// Problem types are URNs: stable identifiers a client can switch on.
const problemPrefix = "urn:candor:problem:"

func writeProblem(w http.ResponseWriter, r *http.Request, status int, kind, detail string) {
	writeProblemDoc(w, r, problem{Type: problemPrefix + kind, Status: status, Detail: detail})
}

func writeProblemDoc(w http.ResponseWriter, r *http.Request, p problem) {
	p.Title = http.StatusText(p.Status)
	p.Instance = r.URL.Path
	status := p.Status
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// fail maps an error to a problem response. Unexpected errors are logged
// with the request path and answered without internal detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var re *ingest.RefusedError
	var ve *manifest.ValidationError
	var te *identity.ThrottledError
	var sf *identity.SecondFactorRequiredError
	kind, detail, hasKind := problems.Of(err)
	switch {
	case errors.As(err, &sf):
		writeProblemDoc(w, r, problem{Type: problemPrefix + "second-factor-required", Status: http.StatusUnauthorized,
			Detail: "send the code from your authenticator app (or a recovery code) as code, with this challenge, within 5 minutes", Challenge: sf.Challenge})
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		writeProblemDoc(w, r, problem{Type: problemPrefix + "too-many-attempts", Status: http.StatusTooManyRequests,
			Detail: te.Error(), Reason: te.Reason})
	case errors.As(err, &ve):
		writeProblemDoc(w, r, problem{Type: problemPrefix + "invalid-manifest", Status: http.StatusUnprocessableEntity,
			Detail: fmt.Sprintf("the manifest has %d problem(s); each is listed with its path", len(ve.Problems)), Problems: ve.Problems})
	case errors.Is(err, catalog.ErrNoManifest) && !errors.Is(err, store.ErrNotFound):
		writeProblem(w, r, http.StatusUnprocessableEntity, "no-manifest", err.Error())
	case errors.As(err, &re):
		writeProblemDoc(w, r, problem{Type: problemPrefix + "reading-refused", Status: http.StatusUnprocessableEntity,
			Detail: re.Error(), Reason: re.Reason})
	case hasKind:
		// The services' kinds (identity.ErrInvalid, erasure.ErrRefused,
		// export's refusals) and the API's own below: each says its status
		// and type, and carries its detail apart from its text.
		writeProblem(w, r, kind.Status, kind.Type, detail)
	case errors.Is(err, identity.ErrUnauthenticated):
		if w.Header().Get("WWW-Authenticate") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="candor"`)
		}
		writeProblem(w, r, http.StatusUnauthorized, "unauthenticated", "missing, wrong or expired credentials")
	case errors.Is(err, identity.ErrForbidden):
		writeProblem(w, r, http.StatusForbidden, "forbidden", "your account may not do this; ask an owner of the household")
	case errors.Is(err, identity.ErrSetupDone):
		writeProblem(w, r, http.StatusConflict, "setup-done", "this hub is already set up; log in instead")
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such resource, or not yours")
	case errors.Is(err, store.ErrConflict):
		writeProblem(w, r, http.StatusConflict, "conflict", err.Error())
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, r, http.StatusInternalServerError, "internal", "the hub could not complete the request; see its log")
	}
}

// errBadRequest is the kind of a request the API cannot read.
var errBadRequest = &problems.Kind{Status: http.StatusBadRequest, Type: "bad-request", Text: "bad request"}

// errConflictUserHeld is the kind of data the hub holds but cannot
// decrypt: it is sealed under a key only its owner holds.
var errConflictUserHeld = &problems.Kind{Status: http.StatusConflict, Type: "user-held", Text: "encrypted to the owner's own key"}

func badRequest(format string, args ...any) error {
	return errBadRequest.Errorf(format, args...)
}

// maxBody bounds JSON request bodies other than device readings.
const maxBody = 1 << 20

// decodeJSON reads one JSON object into v, refusing unknown fields and
// naming where the body went wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return badRequest("Content-Type must be application/json, not %q", ct)
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body: unexpected data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return "empty; a JSON object is required"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q: expected %s, got a JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.As(err, &tooBig):
		return fmt.Sprintf("larger than %d bytes", tooBig.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return err.Error()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
