package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/names"
)

// Names shown to other people refuse characters that reorder or hide
// text, so "Kitchen\u202Erecord" cannot pose as another name; the error
// names the field and the code point, and nothing is stored.
func TestNamesRefuseSpoofingCharacters(t *testing.T) {
	svc, db := newService(t)
	hh := newHousehold(t, db, "hh_1")
	c := ctx(t)
	spoofs := []struct {
		name string
		in   string
		code string
	}{
		{"right-to-left override", "Kitchen\u202Etxt.exe", "U+202E"},
		{"left-to-right isolate", "Hall\u2066", "U+2066"},
		{"zero-width space", "ad\u200Bmin", "U+200B"},
		{"right-to-left mark", "Door\u200F", "U+200F"},
		{"byte order mark", "\uFEFFGarage", "U+FEFF"},
		{"soft hyphen", "Lamp\u00ADpost", "U+00AD"},
	}
	calls := []struct {
		field string
		do    func(name string) error
	}{
		{"name", func(n string) error {
			_, _, err := svc.AddDevice(c, NewDevice{HouseholdID: hh, Name: n, Type: "thermostat"})
			return err
		}},
		{"name", func(n string) error {
			_, _, err := svc.CreateHousehold(c, n, NewAccount{Username: "sam", Password: "violet-canyon-drifting-41"})
			return err
		}},
	}
	for _, sp := range spoofs {
		for i, call := range calls {
			err := call.do(sp.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s, call %d: %v, want ErrInvalid", sp.name, i, err)
			}
			var ce *names.CharError
			if !errors.As(err, &ce) {
				t.Errorf("%s, call %d: %v does not carry a names.CharError", sp.name, i, err)
			}
			if msg := err.Error(); !strings.Contains(msg, call.field+": ") || !strings.Contains(msg, sp.code) {
				t.Errorf("%s, call %d: %q does not name the field %q and %s", sp.name, i, msg, call.field, sp.code)
			}
		}
	}
	if all, err := db.AllDevices(c); err != nil || len(all) != 0 {
		t.Fatalf("refused names stored %d devices (%v)", len(all), err)
	}
	if hhs, err := db.Households(c); err != nil || len(hhs) != 1 {
		t.Fatalf("refused names stored households: %d (%v)", len(hhs), err)
	}
	// Scripts, accents and emoji stay welcome.
	for _, ok := range []string{"Küche", "مطبخ", "厨房", "Door 🚪"} {
		if _, _, err := svc.AddDevice(c, NewDevice{HouseholdID: hh, Name: ok, Type: "thermostat"}); err != nil {
			t.Errorf("AddDevice(%q): %v", ok, err)
		}
	}
}
