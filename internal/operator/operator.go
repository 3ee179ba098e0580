// Package operator names whoever runs the hub: their name, how to reach
// them, whom to ask about privacy, and their vulnerability disclosure
// policy. The pages, labels, consent records and /.well-known/security.txt
// (RFC 9116) all take the operator from here, so there is one answer to
// "whom do I address?" (clause 2A of the IoT Good Practice paper).
package operator

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Unnamed is how the hub refers to an operator who has not given a name.
const Unnamed = "The operator of this Candor hub"

// ActionOperatorChange is the transparency-log action of a change.
const ActionOperatorChange = "operator.change"

// ErrInvalid means a field of the operator settings was refused.
var ErrInvalid = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-operator", Text: "operator: invalid settings"}

// Store is the part of store.Store the service uses.
type Store interface {
	Operator(ctx context.Context) (store.Operator, error)
	SetOperator(ctx context.Context, o store.Operator) error
}

// Recorder appends to the transparency log.
type Recorder interface {
	Record(ctx context.Context, ev auditlog.Event) error
}

// Service reads and changes the operator settings.
type Service struct {
	st  Store
	log Recorder
	now func() time.Time
}

// New returns a Service; rec may be nil, now defaults to time.Now.
func New(st Store, rec Recorder, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, log: rec, now: now}
}

// Settings are the operator's details as people edit them.
type Settings struct {
	Name             string `json:"name"`
	Contact          string `json:"contact"`
	PrivacyContact   string `json:"privacyContact"`
	DisclosurePolicy string `json:"disclosurePolicy"`
}

// Get returns the settings (empty fields are unknown).
func (s *Service) Get(ctx context.Context) (Settings, error) {
	o, err := s.st.Operator(ctx)
	if err != nil {
		return Settings{}, err
	}
	return Settings{Name: o.Name, Contact: o.Contact, PrivacyContact: o.PrivacyContact, DisclosurePolicy: o.DisclosurePolicy}, nil
}

// DisplayName is the operator's name, or Unnamed.
func (st Settings) DisplayName() string {
	if st.Name == "" {
		return Unnamed
	}
	return st.Name
}

// Name implements what consent and the pages ask: the operator's name, or
// Unnamed when none was given or it cannot be read.
func (s *Service) Name(ctx context.Context) string {
	st, err := s.Get(ctx)
	if err != nil {
		return Unnamed
	}
	return st.DisplayName()
}

// Set validates and stores the settings, and records the change (the
// fields that changed, not their values: contacts may be people's).
func (s *Service) Set(ctx context.Context, in Settings) (Settings, error) {
	in = Settings{Name: strings.TrimSpace(in.Name), Contact: strings.TrimSpace(in.Contact),
		PrivacyContact: strings.TrimSpace(in.PrivacyContact), DisclosurePolicy: strings.TrimSpace(in.DisclosurePolicy)}
	if err := validate(in); err != nil {
		return Settings{}, err
	}
	old, err := s.Get(ctx)
	if err != nil {
		return Settings{}, err
	}
	if err := s.st.SetOperator(ctx, store.Operator{Name: in.Name, Contact: in.Contact, PrivacyContact: in.PrivacyContact,
		DisclosurePolicy: in.DisclosurePolicy, UpdatedAt: s.now().UTC()}); err != nil {
		return Settings{}, fmt.Errorf("store operator settings: %w", err)
	}
	if s.log != nil {
		var changed []string
		for _, f := range []struct{ name, a, b string }{
			{"name", old.Name, in.Name}, {"contact", old.Contact, in.Contact},
			{"privacyContact", old.PrivacyContact, in.PrivacyContact}, {"disclosurePolicy", old.DisclosurePolicy, in.DisclosurePolicy},
		} {
			if f.a != f.b {
				changed = append(changed, f.name)
			}
		}
		if len(changed) > 0 {
			if err := s.log.Record(ctx, auditlog.Event{Action: ActionOperatorChange,
				Detail: map[string]string{"fields": strings.Join(changed, ",")}}); err != nil {
				return Settings{}, fmt.Errorf("record operator change: %w", err)
			}
		}
	}
	return in, nil
}

// validate checks each field and names the first that is wrong.
func validate(s Settings) error {
	if utf8.RuneCountInString(s.Name) > 120 || strings.ContainsAny(s.Name, "\r\n") {
		return ErrInvalid.Errorf("name: at most 120 characters on one line")
	}
	for _, f := range []struct{ field, v string }{{"contact", s.Contact}, {"privacyContact", s.PrivacyContact}} {
		if f.v == "" {
			continue
		}
		if err := checkContact(f.v); err != nil {
			return ErrInvalid.Errorf("%s: %v", f.field, err)
		}
	}
	if s.DisclosurePolicy != "" {
		u, err := url.Parse(s.DisclosurePolicy)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return ErrInvalid.Errorf("disclosurePolicy: must be an https:// address of the policy page")
		}
	}
	return nil
}

// checkContact accepts the URI forms RFC 9116 allows for Contact:
// mailto:, https: and tel:. A bare e-mail address gets mailto: added by
// Contact URI callers, not here: the stored value is what is served.
func checkContact(v string) error {
	if len(v) > 200 || strings.ContainsAny(v, " \r\n") {
		return fmt.Errorf("at most 200 characters, no spaces")
	}
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("not an address such as mailto:security@example.org")
	}
	switch u.Scheme {
	case "mailto":
		if !strings.Contains(u.Opaque, "@") {
			return fmt.Errorf("a mailto: address needs an @")
		}
	case "https":
		if u.Host == "" {
			return fmt.Errorf("an https: address needs a host")
		}
	case "tel":
	default:
		return fmt.Errorf("must be a mailto:, https: or tel: address")
	}
	return nil
}
