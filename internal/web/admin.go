package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/erasure"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// The people pages: /household, where everyone sees who else is in their
// household and an owner adds people, and /admin, where the hub's admin
// (the account made with the setup token) sees every household and makes
// new ones, each with its first owner. They follow the API's rules
// (package api, people.go): only the admin sees other households, and for
// anyone else /admin does not exist (404, like another household's
// device). The changes are recorded in the transparency log by identity.

// peopleStore is the part of storage the people pages read. The hub's
// store has it; a Store without it gets pages that say so.
type peopleStore interface {
	Households(ctx context.Context) ([]store.Household, error)
	Accounts(ctx context.Context, householdID string) ([]store.Account, error)
}

func (s *Server) people() (peopleStore, bool) {
	ps, ok := s.st.(peopleStore)
	return ps, ok
}

// memberView is one person in a household list.
type memberView struct {
	ID        string
	Username  string
	Owner     bool
	Admin     bool
	You       bool
	CreatedAt time.Time
}

// memberForm is what the add-member form shows again after a refusal.
// Passwords are never echoed into a page.
type memberForm struct {
	Username string
	Role     store.Role
}

type householdView struct {
	Available bool
	Name      string
	Members   []memberView
	Owners    int // an owner can step down only while there is another
	CanManage bool
	Form      memberForm
	MinChars  int
	// CodesOn are the usernames whose login codes the viewer (the
	// admin) may turn off, for someone who lost their phone.
	CodesOn []string
}

// householdPage lists the members of the viewer's own household.
func (s *Server) householdPage(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderHousehold(w, r, v, http.StatusOK, memberForm{Role: store.RoleMember}, nil)
}

func (s *Server) renderHousehold(w http.ResponseWriter, r *http.Request, v viewer, status int, form memberForm, errs []formError) {
	hv := householdView{CanManage: v.CanManage(v.Account.HouseholdID), Form: form, MinChars: credential.MinPasswordChars}
	if ps, ok := s.people(); ok {
		list, err := ps.Accounts(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		hv.Available = true
		for _, a := range list {
			if !v.CanSee(a.HouseholdID) {
				continue // never show anyone outside the household
			}
			hv.Members = append(hv.Members, memberView{ID: a.ID, Username: a.Username, Owner: a.Role == store.RoleOwner,
				Admin: a.Admin, You: a.ID == v.Account.ID, CreatedAt: a.CreatedAt})
			if a.Role == store.RoleOwner {
				hv.Owners++
			}
			if v.ResetSecondFactor(a) == nil {
				st, err := s.id.SecondFactor(r.Context(), a.ID)
				if err != nil {
					s.fail(w, r, err)
					return
				}
				if st.On {
					hv.CodesOn = append(hv.CodesOn, a.Username)
				}
			}
		}
	}
	p := s.pageFor(r, v, "Your household", "household")
	if p.Viewer != nil {
		hv.Name = p.Viewer.Household
	}
	p.Errors = errs
	p.Data = hv
	s.render(w, r, status, "household", p)
}

// postMember adds a person to the viewer's household: owners only.
func (s *Server) postMember(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.CanManage(v.Account.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, identity.ErrForbidden)
		return
	}
	form := memberForm{Username: strings.TrimSpace(r.PostFormValue("username")), Role: store.Role(r.PostFormValue("role"))}
	if form.Role != store.RoleOwner && form.Role != store.RoleMember {
		form.Role = store.RoleMember
		s.renderHousehold(w, r, v, http.StatusUnprocessableEntity, form,
			[]formError{{Field: "role-member", Message: "Choose what the new person may do: member or owner."}})
		return
	}
	acc, err := s.id.CreateAccount(r.Context(), identity.NewAccount{
		HouseholdID: v.Account.HouseholdID, Username: form.Username, Password: r.PostFormValue("password"), Role: form.Role})
	if errors.Is(err, identity.ErrInvalid) {
		s.renderHousehold(w, r, v, http.StatusUnprocessableEntity, form, inputErrors(err, map[string]field{
			"username": {"member-username", "The username"}, "password": {"member-password", "The password"},
			"role": {"role-member", "The role"}}))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, fmt.Sprintf("%s is now %s of your household. They can log in with the username %s and the password you chose.",
		acc.Username, roleWords(acc.Role), acc.Username))
	http.Redirect(w, r, "/household?done="+flashDone, http.StatusSeeOther)
}

// postRole makes a member an owner or an owner a member: owners only, in
// their own household, and never the last owner (identity.SetRole).
func (s *Server) postRole(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.CanManage(v.Account.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, identity.ErrForbidden)
		return
	}
	acc, err := s.id.SetRole(r.Context(), v.Account, r.PathValue("id"), store.Role(r.PostFormValue("role")))
	if errors.Is(err, identity.ErrInvalid) {
		msg := strings.TrimPrefix(detail(err), "role: ")
		s.renderHousehold(w, r, v, http.StatusUnprocessableEntity, memberForm{Role: store.RoleMember},
			[]formError{{Message: upperFirst(sentence(msg))}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, fmt.Sprintf("%s is now %s of your household.", acc.Username, roleWords(acc.Role)))
	http.Redirect(w, r, "/household?done="+flashDone, http.StatusSeeOther)
}

func roleWords(r store.Role) string {
	if r == store.RoleOwner {
		return "an owner"
	}
	return "a member"
}

// householdRow is one household on the admin page.
type householdRow struct {
	ID        string
	Name      string
	Members   int
	Devices   int
	CreatedAt time.Time
	Yours     bool
}

// householdForm is what the new-household form shows again after a
// refusal.
type householdForm struct {
	Name     string
	Username string
}

type adminView struct {
	Available  bool
	Households []householdRow
	Form       householdForm
	MinChars   int
	// Cells are the anonymised aggregates unlinking kept (the newest
	// first, at most aggregateRows); nil when the store keeps none.
	Cells      []aggregateRow
	CellsShown bool
	MinCount   int
	// Feeds are the advisory feeds, stale ones first; FeedsOn is true
	// when the hub has feeds at all, and FeedForm is the add form.
	Feeds    []advisories.FeedStatus
	FeedsOn  bool
	FeedForm feedForm
}

// aggregateRow is one anonymised hourly cell, as the admin sees it.
type aggregateRow struct {
	DeviceType, Stream, Field string
	Hour                      time.Time
	Count                     int64
	Mean                      string
}

// aggregateRows bounds the cells shown on the page; the API lists all.
const aggregateRows = 50

// aggregateStore lists the cells unlinking keeps.
type aggregateStore interface {
	Aggregates(ctx context.Context, q store.AggregateQuery) ([]store.Aggregate, error)
}

// adminPage lists every household on the hub, for the hub's admin only.
func (s *Server) adminPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	s.renderAdmin(w, r, v, http.StatusOK, householdForm{}, nil)
}

func (s *Server) renderAdmin(w http.ResponseWriter, r *http.Request, v viewer, status int, form householdForm, errs []formError) {
	s.renderAdminWith(w, r, v, status, form, feedForm{Kind: "csaf"}, errs)
}

func (s *Server) renderAdminWith(w http.ResponseWriter, r *http.Request, v viewer, status int, form householdForm, feed feedForm, errs []formError) {
	av := adminView{Form: form, MinChars: credential.MinPasswordChars, Feeds: s.feeds(r.Context()), FeedForm: feed, FeedsOn: s.cfg.Feeds != nil}
	if ps, ok := s.people(); ok {
		av.Available = true
		list, err := ps.Households(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, hh := range list {
			members, err := ps.Accounts(r.Context(), hh.ID)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			devices, err := s.st.Devices(r.Context(), hh.ID)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			av.Households = append(av.Households, householdRow{ID: hh.ID, Name: hh.Name, Members: len(members),
				Devices: len(devices), CreatedAt: hh.CreatedAt, Yours: hh.ID == v.Account.HouseholdID})
		}
	}
	if as, ok := s.st.(aggregateStore); ok {
		cells, err := as.Aggregates(r.Context(), store.AggregateQuery{})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		av.CellsShown, av.MinCount = true, erasure.MinCellCount
		for i := len(cells) - 1; i >= 0 && len(av.Cells) < aggregateRows; i-- {
			c := cells[i]
			av.Cells = append(av.Cells, aggregateRow{DeviceType: c.DeviceType, Stream: c.Stream, Field: c.Field,
				Hour: c.Hour, Count: c.Count, Mean: strconv.FormatFloat(c.Sum/float64(c.Count), 'g', 4, 64)})
		}
	}
	p := s.pageFor(r, v, "All households", "admin")
	p.Errors = errs
	p.Data = av
	s.render(w, r, status, "admin", p)
}

// postHousehold makes a household with its first owner: the admin only.
func (s *Server) postHousehold(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	if _, ok := s.people(); !ok {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	form := householdForm{Name: strings.TrimSpace(r.PostFormValue("name")), Username: strings.TrimSpace(r.PostFormValue("username"))}
	hh, acc, err := s.id.CreateHousehold(r.Context(), form.Name,
		identity.NewAccount{Username: form.Username, Password: r.PostFormValue("password")})
	if errors.Is(err, identity.ErrInvalid) {
		s.renderAdmin(w, r, v, http.StatusUnprocessableEntity, form, inputErrors(err, map[string]field{
			"name": {"household-name", "The name of the household"}, "username": {"owner-username", "The username"},
			"owner.username": {"owner-username", "The username"}, "password": {"owner-password", "The password"}}))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, fmt.Sprintf("The household %s is made. Its owner can log in with the username %s and the password you chose.",
		hh.Name, acc.Username))
	http.Redirect(w, r, "/admin?done="+flashDone, http.StatusSeeOther)
}
