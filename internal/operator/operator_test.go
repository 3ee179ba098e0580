package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

type recorder struct{ evs []auditlog.Event }

func (r *recorder) Record(_ context.Context, ev auditlog.Event) error {
	r.evs = append(r.evs, ev)
	return nil
}

func newService(t *testing.T) (*Service, *recorder) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &recorder{}
	return New(db, rec, func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }), rec
}

func TestSetValidates(t *testing.T) {
	tests := []struct {
		name      string
		in        Settings
		wantField string // "" means accepted
	}{
		{"all set", Settings{Name: "Ada's home hub", Contact: "mailto:ada@example.org", PrivacyContact: "https://example.org/privacy", DisclosurePolicy: "https://example.org/disclose"}, ""},
		{"only a name", Settings{Name: "Ada"}, ""},
		{"telephone contact", Settings{Contact: "tel:+44-20-7946-0000"}, ""},
		{"bare e-mail", Settings{Contact: "ada@example.org"}, "contact"},
		{"mailto without @", Settings{Contact: "mailto:ada"}, "contact"},
		{"javascript contact", Settings{PrivacyContact: "javascript:alert(1)"}, "privacyContact"},
		{"http policy", Settings{DisclosurePolicy: "http://example.org/p"}, "disclosurePolicy"},
		{"name on two lines", Settings{Name: "Ada\nContact: mailto:evil@example.org"}, "name"},
		{"name too long", Settings{Name: strings.Repeat("a", 121)}, "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newService(t)
			_, err := s.Set(t.Context(), tc.in)
			if tc.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantField+":") {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, tc.wantField)
			}
			if got, _ := s.Get(t.Context()); got != (Settings{}) {
				t.Errorf("a refused change stored %+v", got)
			}
		})
	}
}

func TestSetRecordsChangedFields(t *testing.T) {
	s, rec := newService(t)
	ctx := t.Context()
	if s.Name(ctx) != Unnamed {
		t.Errorf("unset name = %q, want %q", s.Name(ctx), Unnamed)
	}
	in := Settings{Name: "Ada", Contact: "mailto:ada@example.org"}
	if _, err := s.Set(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Name = "Ada Lovelace"
	if _, err := s.Set(ctx, in); err != nil {
		t.Fatal(err)
	}
	if len(rec.evs) != 2 || rec.evs[0].Detail["fields"] != "name,contact" || rec.evs[1].Detail["fields"] != "name" {
		t.Fatalf("events = %+v, want one per real change naming the fields", rec.evs)
	}
	for _, ev := range rec.evs {
		for _, v := range ev.Detail {
			if strings.Contains(v, "ada@") {
				t.Errorf("event carries a contact: %+v", ev)
			}
		}
	}
	if s.Name(ctx) != "Ada Lovelace" {
		t.Errorf("Name = %q", s.Name(ctx))
	}
}

func TestSecurityTxt(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	if _, ok := (Settings{Name: "Ada"}).SecurityTxt("", now); ok {
		t.Error("a security.txt without Contact was produced (RFC 9116 requires one)")
	}
	body, ok := Settings{Contact: "mailto:sec@example.org", DisclosurePolicy: "https://example.org/disclose"}.SecurityTxt("https://hub.example.org/.well-known/security.txt", now)
	if !ok {
		t.Fatal("no security.txt")
	}
	want := []string{
		"Contact: mailto:sec@example.org",
		"Expires: 2026-12-31T10:30:00Z",
		"Policy: https://example.org/disclose",
		"Preferred-Languages: en",
		"Canonical: https://hub.example.org/.well-known/security.txt",
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("security.txt lacks %q:\n%s", w, body)
		}
	}
	if strings.Count(body, "Expires:") != 1 {
		t.Errorf("Expires must appear exactly once:\n%s", body)
	}
}
