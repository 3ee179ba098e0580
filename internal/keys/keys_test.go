package keys_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/keys"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
	"github.com/candor-iot/candor/internal/testsupport/logtest"
	"github.com/candor-iot/candor/internal/vault"
)

type rig struct {
	svc  *keys.Service
	log  *auditlog.Log
	told []string // the owners OnChange was told of
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acc := store.Account{ID: "acc_alex", HouseholdID: "hh_home", Username: "alex", PasswordHash: "x",
		Role: store.RoleOwner, CreatedAt: time.Now()}
	if err := st.CreateHouseholdWithOwner(ctx, store.Household{ID: "hh_home", Name: "Home", CreatedAt: time.Now()}, acc); err != nil {
		t.Fatal(err)
	}
	hub, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(ctx, st, vault.Options{Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	log := logtest.Open(t)
	r := &rig{log: log}
	r.svc = keys.New(keys.Options{Vault: v, Accounts: st, Log: log, OnChange: func(owner string) { r.told = append(r.told, owner) }})
	return r
}

func TestChangesAreRecordedWithIdsOnly(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		owner       string
		change      func(s *keys.Service, owner string) (secret string, err error)
		action      string
		wantAccount string
		detail      map[string]string
	}{
		{
			name: "a person takes a generated key", owner: "acc_alex",
			change: func(s *keys.Service, owner string) (string, error) {
				en, err := s.Enroll(ctx, owner, vault.Settings{Mode: vault.UserHeld, GenerateIdentity: true})
				return en.Identity, err
			},
			action: auditlog.ActionKeyChange, wantAccount: "acc_alex",
			detail: map[string]string{"mode": string(vault.UserHeld), "own_recipient": "false", "generated": "true"},
		},
		{
			name: "the household's keys stay with the hub", owner: "hh_home",
			change: func(s *keys.Service, owner string) (string, error) {
				_, err := s.Enroll(ctx, owner, vault.Settings{Mode: vault.HubAssisted})
				return "", err
			},
			action: auditlog.ActionKeyChange,
			detail: map[string]string{"mode": string(vault.HubAssisted), "own_recipient": "false", "generated": "false"},
		},
		{
			name: "a person rotates", owner: "acc_alex",
			change: func(s *keys.Service, owner string) (string, error) {
				if _, err := s.Enroll(ctx, owner, vault.Settings{Mode: vault.HubAssisted}); err != nil {
					return "", err
				}
				_, err := s.Rotate(ctx, owner)
				return "", err
			},
			action: auditlog.ActionKeyRotate, wantAccount: "acc_alex",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			secret, err := tt.change(r.svc, tt.owner)
			if err != nil {
				t.Fatal(err)
			}
			evs := logtest.Events(t, r.log, "")
			if len(evs) == 0 {
				t.Fatal("nothing recorded")
			}
			// Each change is told (a hub node passes it on with it).
			if len(r.told) != len(evs) || r.told[len(r.told)-1] != tt.owner {
				t.Errorf("OnChange told of %v for %d recorded changes; want each, the last of %s", r.told, len(evs), tt.owner)
			}
			ev := evs[len(evs)-1]
			if ev.Action != tt.action || ev.Household != "hh_home" || ev.Subject.Account != tt.wantAccount || ev.Purpose == "" {
				t.Errorf("recorded %+v", ev)
			}
			for k, v := range tt.detail {
				if ev.Detail[k] != v {
					t.Errorf("detail %s = %q, want %q", k, ev.Detail[k], v)
				}
			}
			for k, v := range ev.Detail {
				if secret != "" && strings.Contains(v, secret) || strings.HasPrefix(v, "AGE-SECRET-KEY") {
					t.Errorf("detail %s carries a key", k)
				}
			}
		})
	}
}

func TestAChangeTheLogMissedIsReported(t *testing.T) {
	r := newRig(t)
	r.log.Close()
	_, err := r.svc.Enroll(context.Background(), "acc_alex", vault.Settings{Mode: vault.HubAssisted})
	if err == nil {
		t.Fatal("a change the log could not record was reported as done")
	}
	// The change itself is made: the vault holds the new setting.
	if st, err := r.svc.Status("acc_alex"); err != nil || st.Mode != vault.HubAssisted {
		t.Errorf("status %+v, %v", st, err)
	}
}
