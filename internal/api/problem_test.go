package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// TestFailMapsErrorsToProblems checks the status, problem type and detail
// the API answers each kind of error with. Details come from the errors'
// kinds, never from editing their text.
func TestFailMapsErrorsToProblems(t *testing.T) {
	_, badIdentity := vault.ParseIdentity("AGE-SECRET-KEY-1NOTAKEY")
	if badIdentity == nil {
		t.Fatal("a bad identity parsed")
	}
	tests := []struct {
		name       string
		err        error
		status     int
		typ        string
		detail     string
		wwwAuth    bool
		wantReason string
	}{
		{name: "invalid input", err: identity.ErrInvalid.Errorf("username: %q is already taken", "alex"),
			status: 422, typ: "invalid-input", detail: `username: "alex" is already taken`},
		{name: "invalid input with its cause", err: identity.ErrInvalid.Errorf("identity: %w", badIdentity),
			status: 422, typ: "invalid-input", detail: "identity: " + badIdentity.Error()},
		{name: "invalid input wrapped by a caller", err: fmt.Errorf("add device: %w", identity.ErrInvalid.Errorf("name: must not be empty")),
			status: 422, typ: "invalid-input", detail: "name: must not be empty"},
		{name: "erasure refused", err: erasure.ErrRefused.Errorf("device %s belongs to another member", "dev_1"),
			status: 409, typ: "refused", detail: "device dev_1 belongs to another member"},
		{name: "user-held history", err: errConflictUserHeld.Errorf("%w", errUserHeld),
			status: 409, typ: "user-held", detail: errUserHeld.Error()},
		{name: "bad request", err: badRequest("body: unknown field %q", "x"),
			status: 400, typ: "bad-request", detail: `body: unknown field "x"`},
		{name: "export locked", err: &export.LockedError{Msg: "switch back to hub-assisted mode"},
			status: 409, typ: "user-held", detail: "switch back to hub-assisted mode"},
		{name: "export for no one", err: export.ErrNotAPerson,
			status: 400, typ: "bad-request", detail: "an export is a person's: log in as a member of the household"},
		{name: "invalid manifest", err: &manifest.ValidationError{Problems: []manifest.Problem{{Path: "/streams", Message: "missing"}}},
			status: 422, typ: "invalid-manifest", detail: "the manifest has 1 problem(s); each is listed with its path"},
		{name: "no manifest", err: fmt.Errorf("thermostat: %w", catalog.ErrNoManifest),
			status: 422, typ: "no-manifest", detail: "thermostat: " + catalog.ErrNoManifest.Error()},
		{name: "reading refused", err: &ingest.RefusedError{Reason: "not_json_object", Detail: "not a JSON object"},
			status: 422, typ: "reading-refused", wantReason: "not_json_object"},
		{name: "unauthenticated", err: identity.ErrUnauthenticated,
			status: 401, typ: "unauthenticated", detail: "missing, wrong or expired credentials", wwwAuth: true},
		{name: "forbidden", err: fmt.Errorf("rotate: %w", identity.ErrForbidden),
			status: 403, typ: "forbidden", detail: "your account may not do this; ask an owner of the household"},
		{name: "setup done", err: identity.ErrSetupDone,
			status: 409, typ: "setup-done", detail: "this hub is already set up; log in instead"},
		{name: "not found", err: fmt.Errorf("device dev_1: %w", store.ErrNotFound),
			status: 404, typ: "not-found", detail: "no such resource, or not yours"},
		{name: "conflict", err: fmt.Errorf("username alex: %w", store.ErrConflict),
			status: 409, typ: "conflict", detail: "username alex: conflict"},
		{name: "unexpected", err: errors.New("database disk image is malformed"),
			status: 500, typ: "internal", detail: "the hub could not complete the request; see its log"},
	}
	s := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.fail(w, httptest.NewRequest("GET", "/api/v1/x", nil), tt.err)
			var p problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("not a problem document: %s", w.Body)
			}
			if w.Code != tt.status || p.Status != tt.status || p.Type != problemPrefix+tt.typ || p.Title != http.StatusText(tt.status) {
				t.Errorf("answered %d %s (%d %q), want %d %s", w.Code, p.Type, p.Status, p.Title, tt.status, tt.typ)
			}
			if tt.detail != "" && p.Detail != tt.detail {
				t.Errorf("detail %q, want %q", p.Detail, tt.detail)
			}
			if p.Reason != tt.wantReason {
				t.Errorf("reason %q, want %q", p.Reason, tt.wantReason)
			}
			if got := w.Header().Get("WWW-Authenticate") != ""; got != tt.wwwAuth {
				t.Errorf("WWW-Authenticate set: %v, want %v", got, tt.wwwAuth)
			}
		})
	}
}
