package assess

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/store"
)

// Conformance statuses.
const (
	Met           = "met"
	PartlyMet     = "partly-met"
	NotMet        = "not-met"
	NotApplicable = "not-applicable"
)

// Frameworks the report covers.
const (
	FrameworkPaper = "IoT Good Practice paper (DC-IoT, 2018)"
	FrameworkETSI  = "ETSI EN 303 645 v3.1.3"
)

// Conformance is the hub's conformance report: each clause of the IoT
// Good Practice paper and each provision of ETSI EN 303 645 with a status,
// the evidence computed from the hub now, and what is missing.
type Conformance struct {
	Rows    []Row          `json:"rows"`
	Summary map[string]int `json:"summary"`
	// Live are the tests run against the hub's own listeners for this
	// report.
	Live []LiveResult `json:"live_tests"`
	// Notes say what the report does not claim.
	Notes []string `json:"notes,omitempty"`
}

// etsiNumberingNote is what the report says about its provision list.
const etsiNumberingNote = "The ETSI EN 303 645 provisions follow the standard's numbering as we know it from v2.1.1, which v3.1.3 keeps as far as we know; we did not have the text of v3.1.3 at hand, so a provision it added would be missing. Every title is our own short summary."

// Row is one clause or provision.
type Row struct {
	Framework string `json:"framework"`
	Clause    string `json:"clause"`
	// Title is a short paraphrase of the clause in the project's own
	// words, not the text of the standard.
	Title    string `json:"title"`
	Status   string `json:"status"`
	Evidence string `json:"evidence"`
	Missing  string `json:"missing,omitempty"`
}

// LiveResult is one test run against the running hub.
type LiveResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// LiveTests runs tests against the hub's own listeners (over loopback).
type LiveTests interface {
	// DefaultCredentials tries known default credentials from the list
	// the hub ships and reports whether each was refused.
	DefaultCredentials(ctx context.Context) []LiveResult
}

// facts are what the conformance rows are computed from.
type facts struct {
	audit        Report
	open         map[string]int // open findings by check
	unavailable  map[string]bool
	live         []LiveResult
	devices      int
	chosen       int
	households   int
	withPIA      int
	types        int // device types in use with a manifest in force
	uses, usesOn int
	userHeld     int
	keyOwners    int
	mlStreams    int
	logSize      uint64
	checkpointAt string
	plain        []string // plain listeners on the network
	tls          bool
	// admins counts admin accounts; admins2FA those with a second factor
	// (only when the hub has second factors).
	admins, admins2FA int
	// adminSFRequired: the hub makes the admin enrol a second factor
	// before anything else.
	adminSFRequired bool
}

func (f *facts) has(check string) bool   { return f.open[check] > 0 }
func (f *facts) avail(check string) bool { return !f.unavailable[check] }

func (f *facts) liveAllPassed() (int, int) {
	pass := 0
	for _, r := range f.live {
		if r.Passed {
			pass++
		}
	}
	return pass, len(f.live)
}

func (s *Service) gatherFacts(ctx context.Context) (*facts, error) {
	rep, err := s.Run(ctx)
	if err != nil {
		return nil, err
	}
	f := &facts{audit: rep, open: map[string]int{}, unavailable: map[string]bool{}, tls: s.cfg.Certificate != nil,
		adminSFRequired: s.cfg.AdminSecondFactorRequired && s.cfg.SecondFA != nil}
	for _, fd := range rep.Findings {
		if fd.ClosedAt == nil {
			f.open[fd.Check]++
		}
	}
	for _, c := range rep.Checks {
		if !c.Available {
			f.unavailable[c.Name] = true
		}
	}
	for _, l := range s.cfg.Listeners {
		if !l.TLS && l.Addr != "" && !Loopback(l.Addr) {
			f.plain = append(f.plain, l.Name+" on "+l.Addr)
		}
	}
	if s.cfg.Live != nil {
		f.live = s.cfg.Live.DefaultCredentials(ctx)
	}
	devs, err := s.cfg.Store.AllDevices(ctx)
	if err != nil {
		return nil, err
	}
	types := map[string]bool{}
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		f.devices++
		if e, err := s.cfg.Manifests.Current(d.Type); err == nil && e != nil && !e.Draft && e.Manifest != nil && !types[d.Type] {
			types[d.Type] = true
			for _, st := range e.Manifest.Streams {
				if st.MachineLearning || st.AutomatedDecisions {
					f.mlStreams++
				}
			}
		}
	}
	f.types = len(types)
	chosen, err := s.cfg.Store.ChosenSecretDevices(ctx)
	if err != nil {
		return nil, err
	}
	f.chosen = len(chosen)
	hhs, err := s.cfg.Store.Households(ctx)
	if err != nil {
		return nil, err
	}
	f.households = len(hhs)
	owners := map[string]bool{}
	for _, d := range devs {
		owners[d.KeyOwnerID()] = true
	}
	for o := range owners {
		ko, err := s.cfg.Store.KeyOwner(ctx, o)
		if err != nil {
			continue
		}
		f.keyOwners++
		if ko.Mode == store.KeyModeUserHeld {
			f.userHeld++
		}
	}
	for _, hh := range hhs {
		if s.cfg.Key != nil {
			if _, _, err := s.PIA(ctx, access.Operator(), hh.ID); err == nil {
				f.withPIA++
			}
		}
		p, err := s.buildPIA(ctx, hh)
		if err != nil {
			return nil, err
		}
		for _, n := range p.Necessity {
			f.uses++
			if n.State != StateOff {
				f.usesOn++
			}
		}
	}
	if err := s.countSecondFactors(ctx, f, hhs); err != nil {
		return nil, err
	}
	if s.cfg.LogSize != nil {
		f.logSize = s.cfg.LogSize()
	}
	if at, err := s.cfg.Store.AuditMark(ctx, MarkCheckpoint); err == nil && !at.IsZero() {
		f.checkpointAt = at.UTC().Format("2006-01-02")
	}
	return f, nil
}

// countSecondFactors counts the admin accounts and those with a second
// login factor, for the authentication rows.
func (s *Service) countSecondFactors(ctx context.Context, f *facts, hhs []store.Household) error {
	for _, hh := range hhs {
		accs, err := s.cfg.Store.Accounts(ctx, hh.ID)
		if err != nil {
			return err
		}
		for _, a := range accs {
			if !a.Admin {
				continue
			}
			f.admins++
			if s.cfg.SecondFA == nil {
				continue
			}
			ok, err := s.cfg.SecondFA.HasSecondFactor(ctx, a.ID)
			if err != nil {
				return err
			}
			if ok {
				f.admins2FA++
			}
		}
	}
	return nil
}

// Conformance computes the report now and returns its signed version
// (a new one when a status, evidence or live result changed). Only the
// admin and the operator may ask: it describes the whole hub.
func (s *Service) Conformance(ctx context.Context, p access.Principal) (*Version, *Conformance, error) {
	if !p.Admin() {
		return nil, nil, ErrForbidden.Errorf("the conformance report is the admin's")
	}
	f, err := s.gatherFacts(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := &Conformance{Summary: map[string]int{}, Live: f.live, Notes: []string{etsiNumberingNote}}
	for _, r := range rows {
		row := Row{Framework: r.framework, Clause: r.clause, Title: r.title}
		row.Status, row.Evidence, row.Missing = r.eval(f)
		c.Rows = append(c.Rows, row)
		c.Summary[row.Status]++
	}
	v, err := s.publish(ctx, KindConformance, "", c, conformanceFacts)
	if err != nil {
		return nil, nil, err
	}
	var shown Conformance
	if err := json.Unmarshal(v.Body, &shown); err != nil {
		return nil, nil, fmt.Errorf("read conformance version %d: %w", v.Version, err)
	}
	return v, &shown, nil
}

func conformanceFacts(raw json.RawMessage) []string {
	var c Conformance
	if json.Unmarshal(raw, &c) != nil {
		return nil
	}
	var out []string
	for _, r := range c.Rows {
		out = append(out, fmt.Sprintf("%s %s is %s.", frameworkShort(r.Framework), r.Clause, strings.ReplaceAll(r.Status, "-", " ")))
	}
	return out
}

func frameworkShort(f string) string {
	if strings.HasPrefix(f, "ETSI") {
		return "ETSI EN 303 645"
	}
	return "Good Practice"
}
