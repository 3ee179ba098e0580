package web

import (
	"errors"
	"fmt"
	"testing"

	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/identity"
)

// TestFormMessagesFromErrorKinds checks that form messages are built from
// the detail an error of a kind carries, wherever the kind sits in the
// error, and never show the kind's own text.
func TestFormMessagesFromErrorKinds(t *testing.T) {
	t.Parallel()
	fields := map[string]field{"password": {"password", "The password"}, "name": {"name", "The name"}}
	tests := []struct {
		name      string
		got       []formError
		wantField string
		wantMsg   string
	}{
		{"refused password", inputErrors(identity.ErrInvalid.Errorf("password: password refused: it is too short"), fields),
			"password", "This password is refused: it is too short."},
		{"named field", inputErrors(identity.ErrInvalid.Errorf("name: must not be empty"), fields),
			"name", "The name must not be empty."},
		{"field the form does not have", inputErrors(identity.ErrInvalid.Errorf("rotate device %s: the device is revoked", "dev_1"), fields),
			"", "Rotate device dev_1: the device is revoked."},
		{"refusal wrapped by a caller", []formError{{Message: refusal(fmt.Errorf("unlink: %w",
			erasure.ErrRefused.Errorf("device %s belongs to another member", "dev_1")))}},
			"", "Device dev_1 belongs to another member."},
		{"error without a kind", []formError{{Message: refusal(errors.New("disk full"))}}, "", "Disk full."},
	}
	for _, tt := range tests {
		if len(tt.got) != 1 || tt.got[0].Field != tt.wantField || tt.got[0].Message != tt.wantMsg {
			t.Errorf("%s: %+v, want field %q with %q", tt.name, tt.got, tt.wantField, tt.wantMsg)
		}
	}
}
