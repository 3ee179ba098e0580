// Package problem gives errors a kind that transports answer with: an
// HTTP status and an RFC 9457 problem type, and the detail to show the
// caller, kept apart from the kind's own text. A service declares its
// sentinel errors as kinds and builds its errors with Kind.Errorf; the
// API and the pages find both with Of (errors.As underneath), so no
// transport reads or edits error text to learn what went wrong.
package problem

import (
	"errors"
	"fmt"
)

// Kind is a class of failure a caller can act on. It is an error, so a
// kind serves as a sentinel: errors.Is(err, kind) reports whether err is
// of that kind. Kinds are compared by identity: declare each once, as a
// package-level variable.
type Kind struct {
	// Status is the HTTP status that answers an error of this kind.
	Status int
	// Type names the kind for clients (the API prefixes it to a URN);
	// it never changes once published.
	Type string
	// Text is the kind's error text, as logs show it.
	Text string
	// Detail is what to tell the caller when an error of this kind
	// brings no detail of its own (the kind itself was returned, or
	// wrapped with fmt.Errorf). Empty means Text.
	Detail string
}

// Error returns the kind's text.
func (k *Kind) Error() string { return k.Text }

// ProblemKind returns k and its detail.
func (k *Kind) ProblemKind() (*Kind, string) {
	if k.Detail == "" {
		return k, k.Text
	}
	return k, k.Detail
}

// Errorf returns an error of kind k whose detail is the formatted text.
// Its %w verbs wrap as fmt.Errorf's do, so errors.Is and errors.As still
// reach the causes. Its text is the kind's text, a colon and the detail,
// as fmt.Errorf("%w: "+format, k, ...) would write it.
func (k *Kind) Errorf(format string, args ...any) error {
	cause := fmt.Errorf(format, args...)
	e := &Error{Kind: k, Detail: cause.Error()}
	switch cause.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		e.Err = cause
	}
	return e
}

// Error is an error of a Kind with its own detail.
type Error struct {
	Kind *Kind
	// Detail says what was wrong and, where it can, what to do next. It
	// is shown to the caller: it names fields and ids, never secrets or
	// stored data.
	Detail string
	// Err is the cause, if any.
	Err error
}

// Error returns the kind's text and the detail.
func (e *Error) Error() string { return e.Kind.Text + ": " + e.Detail }

// Unwrap returns the kind and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ProblemKind returns e's kind and detail.
func (e *Error) ProblemKind() (*Kind, string) { return e.Kind, e.Detail }

// Described is implemented by errors that know their kind and the detail
// to show: *Kind, *Error, and a service's own error types that carry
// more than a message. Such a type should also unwrap to its kind, so
// that errors.Is(err, kind) holds for it too.
type Described interface {
	error
	ProblemKind() (kind *Kind, detail string)
}

// Of returns the kind of err and the detail to show for it: those of the
// first error in err's tree (errors.As order) that describes itself. ok
// is false when nothing in err has a kind.
func Of(err error) (kind *Kind, detail string, ok bool) {
	var d Described
	if !errors.As(err, &d) {
		return nil, "", false
	}
	kind, detail = d.ProblemKind()
	return kind, detail, true
}
