package assess

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/store"
)

// Households lists the households p may see a PIA of.
func (s *Service) households(ctx context.Context, p access.Principal) ([]store.Household, error) {
	all, err := s.cfg.Store.Households(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Household
	for _, h := range all {
		if p.CanSee(h.ID) {
			out = append(out, h)
		}
	}
	return out, nil
}

// PIA returns the privacy impact assessment of a household p may see:
// regenerated, signed and logged as a new version when its facts changed
// since the last one (a manifest, consent, recipient or key setting),
// else the last version. household "" means p's own.
func (s *Service) PIA(ctx context.Context, p access.Principal, household string) (*Version, *PIA, error) {
	if household == "" {
		household = p.Account.HouseholdID
	}
	if household == "" || !p.CanSee(household) {
		return nil, nil, &access.NotFoundError{Kind: "household", ID: household}
	}
	hhs, err := s.households(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	for _, hh := range hhs {
		if hh.ID != household {
			continue
		}
		body, err := s.buildPIA(ctx, hh)
		if err != nil {
			return nil, nil, err
		}
		v, err := s.publish(ctx, KindPIA, hh.ID, body, piaFacts)
		if err != nil {
			return nil, nil, err
		}
		var shown PIA
		if err := json.Unmarshal(v.Body, &shown); err != nil {
			return nil, nil, fmt.Errorf("read PIA version %d: %w", v.Version, err)
		}
		return v, &shown, nil
	}
	return nil, nil, &access.NotFoundError{Kind: "household", ID: household}
}

// RefreshPIAs regenerates every household's PIA whose facts changed; the
// scheduled run calls it.
func (s *Service) RefreshPIAs(ctx context.Context) error {
	hhs, err := s.cfg.Store.Households(ctx)
	if err != nil {
		return err
	}
	for _, hh := range hhs {
		body, err := s.buildPIA(ctx, hh)
		if err != nil {
			return err
		}
		if _, err := s.publish(ctx, KindPIA, hh.ID, body, piaFacts); err != nil {
			return err
		}
	}
	return nil
}

// piaFacts are the lines a reader compares between two versions.
func piaFacts(raw json.RawMessage) []string {
	var p PIA
	if json.Unmarshal(raw, &p) != nil {
		return nil
	}
	var out []string
	for _, d := range p.Processing.Devices {
		out = append(out, fmt.Sprintf("the device %s (%s) is in the assessment, with version %d of its label.", d.Name, d.Type, d.ManifestVersion))
		for _, st := range d.Streams {
			for _, rc := range st.Recipients {
				state := "may get"
				if rc.On {
					state = "gets"
				}
				out = append(out, fmt.Sprintf("%s %s %s of %s.", rc.Name, state, st.Title, d.Name))
			}
		}
	}
	for _, n := range p.Necessity {
		out = append(out, n.Text)
	}
	for _, e := range p.Processing.Encryption {
		out = append(out, e.Text)
	}
	for _, r := range p.Risks {
		out = append(out, "risk: "+r.Text)
	}
	return out
}
