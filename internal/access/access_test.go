package access_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

const (
	home  = "hh_home"
	other = "hh_other"
)

var (
	member   = access.Person(store.Account{ID: "acc_member", HouseholdID: home, Role: store.RoleMember}, store.Session{ID: "ses_m"})
	owner    = access.Person(store.Account{ID: "acc_owner", HouseholdID: home, Role: store.RoleOwner}, store.Session{ID: "ses_o"})
	stranger = access.Person(store.Account{ID: "acc_stranger", HouseholdID: other, Role: store.RoleOwner}, store.Session{ID: "ses_s"})
	// admin is the setup account, a member of the other household: being
	// the hub's admin does not open anyone's household.
	admin    = access.Person(store.Account{ID: "acc_admin", HouseholdID: other, Role: store.RoleMember, Admin: true}, store.Session{ID: "ses_a"})
	operator = access.Operator()
)

func TestDecisions(t *testing.T) {
	tests := []struct {
		name                   string
		p                      access.Principal
		admin, owner           bool
		seeHome, manageHome    bool
		memberHome, seeUnknown bool
		actor                  auditlog.Actor
	}{
		{name: "member", p: member, seeHome: true, memberHome: true,
			actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_member"}},
		{name: "owner", p: owner, owner: true, seeHome: true, manageHome: true, memberHome: true,
			actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_owner"}},
		{name: "other household", p: stranger, owner: true,
			actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_stranger"}},
		{name: "admin", p: admin, admin: true,
			actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_admin"}},
		{name: "operator", p: operator, admin: true, seeHome: true, manageHome: true, seeUnknown: true,
			actor: auditlog.Actor{Kind: auditlog.ActorOperator}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Admin(); got != tt.admin {
				t.Errorf("Admin() = %v, want %v", got, tt.admin)
			}
			if got := tt.p.Owner(); got != tt.owner {
				t.Errorf("Owner() = %v, want %v", got, tt.owner)
			}
			if got := tt.p.CanSee(home); got != tt.seeHome {
				t.Errorf("CanSee(home) = %v, want %v", got, tt.seeHome)
			}
			if got := tt.p.CanManage(home); got != tt.manageHome {
				t.Errorf("CanManage(home) = %v, want %v", got, tt.manageHome)
			}
			if got := tt.p.Member(home); got != tt.memberHome {
				t.Errorf("Member(home) = %v, want %v", got, tt.memberHome)
			}
			// A household id nobody belongs to, and the empty one, are
			// seen by the operator only.
			for _, hh := range []string{"hh_unknown", ""} {
				if got := tt.p.CanSee(hh); got != tt.seeUnknown {
					t.Errorf("CanSee(%q) = %v, want %v", hh, got, tt.seeUnknown)
				}
				if got := tt.p.CanManage(hh); got != tt.seeUnknown {
					t.Errorf("CanManage(%q) = %v, want %v", hh, got, tt.seeUnknown)
				}
			}
			if got := tt.p.Actor(); got != tt.actor {
				t.Errorf("Actor() = %+v, want %+v", got, tt.actor)
			}
		})
	}
}

// TestDecide checks who makes a device's consent choices: the person
// whose keys seal it, the owners for a shared device, nobody else; and
// that a refusal is a 403 naming who decides, or the 404 of a device
// the principal may not see.
func TestDecide(t *testing.T) {
	coOwner := access.Person(store.Account{ID: "acc_co", HouseholdID: home, Role: store.RoleOwner}, store.Session{ID: "ses_c"})
	ownersCamera := store.Device{ID: "dev_cam", HouseholdID: home, KeyOwner: "acc_owner"}
	membersWatch := store.Device{ID: "dev_watch", HouseholdID: home, KeyOwner: "acc_member"}
	shared := store.Device{ID: "dev_meter", HouseholdID: home}
	tests := []struct {
		name     string
		p        access.Principal
		d        store.Device
		want     string // "" allowed, "403" or "404"
		mentions string // in the 403's detail
	}{
		{"key owner decides their device", owner, ownersCamera, "", ""},
		{"member decides a device sealed under their keys", member, membersWatch, "", ""},
		{"owner decides a shared device", owner, shared, "", ""},
		{"co-owner decides a shared device", coOwner, shared, "", ""},
		{"member may not switch the owner's camera", member, ownersCamera, "403", "acc_owner"},
		{"co-owner may not switch another person's device", coOwner, ownersCamera, "403", "acc_owner"},
		{"owner may not switch a member's device", owner, membersWatch, "403", "acc_member"},
		{"member may not switch a shared device", member, shared, "403", "owner of the household"},
		{"operator decides for nobody", operator, shared, "403", "operator is no person"},
		{"another household does not see it", stranger, shared, "404", ""},
		{"admin of another household does not see it", admin, ownersCamera, "404", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Decide(tt.d)
			if got := tt.p.CanDecide(tt.d); got != (tt.want == "") {
				t.Errorf("CanDecide = %v, want %v", got, tt.want == "")
			}
			switch tt.want {
			case "":
				if err != nil {
					t.Fatalf("Decide = %v, want nil", err)
				}
			case "404":
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Decide = %v, want store.ErrNotFound", err)
				}
			case "403":
				kind, detail, ok := problem.Of(err)
				if !ok || kind != access.ErrNotYourChoice || kind.Status != 403 {
					t.Fatalf("Decide = %v, want an ErrNotYourChoice (403)", err)
				}
				if !strings.Contains(detail, tt.mentions) || !strings.Contains(detail, tt.d.ID) {
					t.Errorf("detail %q should name %q and the device", detail, tt.mentions)
				}
			}
		})
	}
}

// TestSeeDevice checks the 404 rule: a device of another household is
// reported exactly as a device that does not exist.
func TestSeeDevice(t *testing.T) {
	d := store.Device{ID: "dev_1", HouseholdID: home}
	tests := []struct {
		name     string
		p        access.Principal
		notFound bool
	}{
		{"member", member, false},
		{"owner", owner, false},
		{"other household", stranger, true},
		{"admin of another household", admin, true},
		{"operator", operator, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.SeeDevice(d)
			if !tt.notFound {
				if err != nil {
					t.Fatalf("SeeDevice = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("SeeDevice = %v, want store.ErrNotFound", err)
			}
			var nf *access.NotFoundError
			if !errors.As(err, &nf) || nf.Kind != "device" || nf.ID != "dev_1" {
				t.Fatalf("SeeDevice = %#v, want *NotFoundError for device dev_1", err)
			}
		})
	}
}

func TestCanSeeEvent(t *testing.T) {
	events := map[string]*auditlog.Event{
		"home":            {Household: home},
		"other":           {Household: other},
		"about member":    {Subject: auditlog.Subject{Account: "acc_member"}},
		"made by member":  {Actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_member"}},
		"hub-wide":        {},
		"device actor id": {Actor: auditlog.Actor{Kind: auditlog.ActorDevice, ID: "acc_member"}},
	}
	tests := []struct {
		name string
		p    access.Principal
		see  []string
	}{
		{name: "member", p: member, see: []string{"home", "about member", "made by member"}},
		{name: "owner", p: owner, see: []string{"home"}},
		{name: "other household", p: stranger, see: []string{"other"}},
		// Hub-level entries only besides their own household's: an
		// event with a device as actor names no household, device or
		// account here, so it is hub-level.
		{name: "admin", p: admin, see: []string{"other", "hub-wide", "device actor id"}},
		{name: "operator", p: operator, see: []string{"home", "other", "about member", "made by member", "hub-wide", "device actor id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			see := map[string]bool{}
			for _, k := range tt.see {
				see[k] = true
			}
			for k, ev := range events {
				if got := tt.p.CanSeeEvent(ev); got != see[k] {
					t.Errorf("CanSeeEvent(%s) = %v, want %v", k, got, see[k])
				}
			}
		})
	}
}

func TestCanUnlinkAndKeyOwner(t *testing.T) {
	mine := store.Device{ID: "dev_mine", HouseholdID: home, KeyOwner: "acc_member"}
	shared := store.Device{ID: "dev_shared", HouseholdID: home}
	owners := store.Device{ID: "dev_owner", HouseholdID: home, KeyOwner: "acc_owner"}
	tests := []struct {
		name                 string
		p                    access.Principal
		mine, shared, owners bool
		keyOwnerHome         string
	}{
		{name: "member", p: member, mine: true, keyOwnerHome: "acc_member"},
		{name: "owner", p: owner, shared: true, owners: true, keyOwnerHome: "acc_owner"},
		{name: "other household", p: stranger},
		{name: "admin", p: admin},
		{name: "operator", p: operator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.CanUnlink(mine); got != tt.mine {
				t.Errorf("CanUnlink(member's device) = %v, want %v", got, tt.mine)
			}
			if got := tt.p.CanUnlink(shared); got != tt.shared {
				t.Errorf("CanUnlink(shared device) = %v, want %v", got, tt.shared)
			}
			if got := tt.p.CanUnlink(owners); got != tt.owners {
				t.Errorf("CanUnlink(owner's device) = %v, want %v", got, tt.owners)
			}
			if got := tt.p.KeyOwnerFor(home, false); got != tt.keyOwnerHome {
				t.Errorf("KeyOwnerFor(home) = %q, want %q", got, tt.keyOwnerHome)
			}
			if got := tt.p.KeyOwnerFor(home, true); got != "" {
				t.Errorf("KeyOwnerFor(home, shared) = %q, want the household's", got)
			}
		})
	}
}
