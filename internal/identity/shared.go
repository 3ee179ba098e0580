package identity

import "github.com/candor-iot/candor/internal/throttle"

// Wrong guesses counted across hub nodes. Each node counts failed
// credential checks in its own throttle tables; a node that also tells the
// others (OnSpent) and hears from them (SpentElsewhere) makes a guesser
// spreading attempts over N nodes use up the same allowance as on one.
// Known-browser buckets are keyed by a secret token and stay on the node.

// Throttle table names passed between nodes.
const (
	TableAddress = "address"
	TableAccount = "account"
	TableDevice  = "device"
	TableConfirm = "confirm"
)

func (l *limits) byName(name string) *throttle.Table {
	switch name {
	case TableAddress:
		return l.addresses
	case TableAccount:
		return l.accounts
	case TableDevice:
		return l.devices
	case TableConfirm:
		return l.confirms
	}
	return nil
}

func (l *limits) name(t *throttle.Table) string {
	switch t {
	case l.addresses:
		return TableAddress
	case l.accounts:
		return TableAccount
	case l.devices:
		return TableDevice
	case l.confirms:
		return TableConfirm
	}
	return "" // the browsers table: its keys are secrets
}

// OnSpent registers f to hear of each attempt a failed check used up
// here, by table name and key (a network address, a username, a device
// id or an account id; never a secret), to pass it on to other nodes.
func (s *Service) OnSpent(f func(table, key string)) {
	s.mu.Lock()
	s.onSpent = append(s.onSpent, f)
	s.mu.Unlock()
}

func (s *Service) spent(refs []bucketRef) {
	s.mu.Lock()
	fs := s.onSpent
	s.mu.Unlock()
	if len(fs) == 0 {
		return
	}
	for _, ref := range refs {
		name := s.limits.name(ref.table)
		if name == "" {
			continue
		}
		for _, f := range fs {
			f(name, ref.key)
		}
	}
}

// SpentElsewhere uses up an attempt of key in the named table for a check
// that failed on another node. Unknown tables are ignored.
func (s *Service) SpentElsewhere(table, key string) {
	if t := s.limits.byName(table); t != nil {
		t.Take(key)
	}
}
