package problem

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

var (
	errInvalid = &Kind{Status: 422, Type: "invalid-input", Text: "invalid input"}
	errBusy    = &Kind{Status: 503, Type: "busy", Text: "jobs: too many at once", Detail: "try again in a few minutes"}
)

// lockedError is a service's own error type that knows its kind.
type lockedError struct{ msg string }

func (e *lockedError) Error() string                { return e.msg }
func (e *lockedError) ProblemKind() (*Kind, string) { return errBusy, e.msg }
func (e *lockedError) Unwrap() error                { return errBusy }

func TestOf(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantKind   *Kind
		wantDetail string
		wantText   string // err.Error(), when it matters
	}{
		{name: "no kind", err: errors.New("disk on fire")},
		{name: "nil", err: nil},
		{name: "kind with detail", err: errInvalid.Errorf("username: %q is already taken", "alex"),
			wantKind: errInvalid, wantDetail: `username: "alex" is already taken`, wantText: `invalid input: username: "alex" is already taken`},
		{name: "detail names a cause", err: errInvalid.Errorf("identity: %w", fs.ErrInvalid),
			wantKind: errInvalid, wantDetail: "identity: invalid argument"},
		{name: "wrapped with context", err: fmt.Errorf("rotate device dev_1: %w", errInvalid.Errorf("revoked")),
			wantKind: errInvalid, wantDetail: "revoked", wantText: "rotate device dev_1: invalid input: revoked"},
		{name: "bare kind shows its detail", err: fmt.Errorf("start job: %w", errBusy),
			wantKind: errBusy, wantDetail: "try again in a few minutes"},
		{name: "bare kind without detail shows its text", err: errInvalid,
			wantKind: errInvalid, wantDetail: "invalid input"},
		{name: "the outermost kind wins", err: errBusy.Errorf("%w", errInvalid.Errorf("inner")),
			wantKind: errBusy, wantDetail: "invalid input: inner"},
		{name: "a service's own type", err: fmt.Errorf("export: %w", &lockedError{msg: "locked; give the key"}),
			wantKind: errBusy, wantDetail: "locked; give the key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, detail, ok := Of(tt.err)
			if ok != (tt.wantKind != nil) || kind != tt.wantKind || detail != tt.wantDetail {
				t.Errorf("Of(%v) = %v, %q, %v; want %v, %q", tt.err, kind, detail, ok, tt.wantKind, tt.wantDetail)
			}
			if tt.wantText != "" && tt.err.Error() != tt.wantText {
				t.Errorf("text %q, want %q", tt.err.Error(), tt.wantText)
			}
			if tt.wantKind != nil && !errors.Is(tt.err, tt.wantKind) {
				t.Errorf("errors.Is(%v, its kind) is false", tt.err)
			}
		})
	}
}

// TestErrorfKeepsCauses checks that errors.Is and errors.As still reach
// what the detail wraps.
func TestErrorfKeepsCauses(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "key", Err: fs.ErrPermission}
	err := errInvalid.Errorf("key file: %w", cause)
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrPermission) || !errors.As(err, &pe) || pe != cause {
		t.Errorf("cause lost in %v", err)
	}
	if errors.Is(err, errBusy) {
		t.Error("an error is of a kind it was not given")
	}
	two := errInvalid.Errorf("device %s (%w), then %w", "dev_1", fs.ErrNotExist, cause)
	if !errors.Is(two, fs.ErrNotExist) || !errors.Is(two, fs.ErrPermission) {
		t.Errorf("a cause of two lost in %v", two)
	}
	if errors.Is(errInvalid.Errorf("no cause"), fs.ErrPermission) {
		t.Error("an error without a cause matches one")
	}
}
