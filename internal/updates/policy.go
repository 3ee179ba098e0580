package updates

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/candor-iot/candor/internal/privfile"
)

// policy is what an owner decided for one device. It outlives a restart:
// an owner who switched automatic updates off, or postponed one, must not
// get it installed because the hub restarted.
type policy struct {
	Manual         bool      `json:"manual,omitempty"` // automatic security updates switched off
	PostponedUntil time.Time `json:"postponedUntil,omitzero"`
	PostponedOnce  string    `json:"postponedOnce,omitempty"` // the version postponed
}

const policyFile = "policy.json"

// maxPolicyFile bounds the policy file read at start.
const maxPolicyFile = 16 << 20

func loadPolicies(dir string) (map[string]policy, error) {
	file := filepath.Join(dir, policyFile)
	b, err := privfile.Read(file, maxPolicyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]policy{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update policies %s: %w", file, err)
	}
	var m map[string]policy
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("update policies %s: %w", file, err)
	}
	if m == nil {
		m = map[string]policy{}
	}
	return m, nil
}

// savePolicies writes every device's policy; s.mu is held.
func (s *Service) savePolicies() error {
	m := make(map[string]policy, len(s.states))
	for id, st := range s.states {
		p := policy{Manual: !st.Automatic, PostponedUntil: st.Postponed, PostponedOnce: st.postponedOnce}
		if p != (policy{}) {
			m[id] = p
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return err
	}
	if err := privfile.Replace(filepath.Join(s.cfg.Dir, policyFile), b, 0o600); err != nil {
		return fmt.Errorf("save update policies: %w", err)
	}
	return nil
}
