package monitor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/candor-iot/candor/internal/auditlog"
)

// ActionStore keeps the admin's choice of action per severity, when made
// on the page: it outlasts a restart and wins over --monitor-actions.
type ActionStore interface {
	PutMonitorActions(ctx context.Context, actions map[string]string) error
	MonitorActions(ctx context.Context) (map[string]string, error)
}

// ActionPolicyChange is the transparency-log action of the admin changing
// what the hub does about alarms.
const ActionPolicyChange = "monitor.actions.change"

// ErrBadPolicy is returned by ChangePolicy for a policy that does not
// name a known action for every severity.
var ErrBadPolicy = errors.New("policy")

// Severities lists the severities, lowest first.
func Severities() []Severity { return []Severity{Info, Warning, Critical} }

// Actions lists the actions, mildest first.
func Actions() []Action { return []Action{ActNotify, ActRateLimit, ActQuarantine, ActRevoke} }

// Policy returns the action per severity in force.
func (m *Monitor) Policy() Policy {
	m.policyMu.RLock()
	defer m.policyMu.RUnlock()
	return maps.Clone(m.policy)
}

func (m *Monitor) actionFor(a Alarm) Action {
	m.policyMu.RLock()
	defer m.policyMu.RUnlock()
	return m.policy.For(a)
}

// ChangePolicy sets the action per severity, keeps it in the store and
// records the change in the transparency log. p must name an action for
// every severity.
func (m *Monitor) ChangePolicy(ctx context.Context, by auditlog.Actor, p Policy) error {
	for _, sev := range Severities() {
		act, ok := p[sev]
		if !ok {
			return fmt.Errorf("%w: no action for %s alarms", ErrBadPolicy, sev)
		}
		if _, err := ParseAction(string(act)); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadPolicy, sev, err)
		}
	}
	old := m.Policy()
	if m.cfg.Actions != nil {
		if err := m.cfg.Actions.PutMonitorActions(ctx, p.names()); err != nil {
			return fmt.Errorf("keep monitor actions: %w", err)
		}
	}
	m.policyMu.Lock()
	m.policy = maps.Clone(p)
	fs := slices.Clone(m.policyChanged)
	m.policyMu.Unlock()
	// In force here: tell the listeners even if the record below fails.
	for _, f := range fs {
		f()
	}
	det := map[string]string{"before": old.String(), "after": p.String()}
	if err := m.record(ctx, auditlog.Event{Actor: by, Action: ActionPolicyChange, Detail: det}); err != nil {
		return fmt.Errorf("log monitor actions change: %w", err)
	}
	return nil
}

// OnPolicyChange registers f, called after ChangePolicy stored a new
// action per severity and put it in force here. A hub node passes the
// change on to the other nodes with it; Reload does not call it.
func (m *Monitor) OnPolicyChange(f func()) {
	m.policyMu.Lock()
	m.policyChanged = append(m.policyChanged, f)
	m.policyMu.Unlock()
}

// loadPolicy restores the admin's stored choice, if any, over the
// configured one.
func (m *Monitor) loadPolicy(ctx context.Context) error {
	if m.cfg.Actions == nil {
		return nil
	}
	stored, err := m.cfg.Actions.MonitorActions(ctx)
	if err != nil {
		return fmt.Errorf("load monitor actions: %w", err)
	}
	p := m.Policy()
	for sevS, actS := range stored {
		sev, err := ParseSeverity(sevS)
		if err != nil {
			return fmt.Errorf("load monitor actions: %w", err)
		}
		act, err := ParseAction(actS)
		if err != nil {
			return fmt.Errorf("load monitor actions: %w", err)
		}
		p[sev] = act
	}
	m.policyMu.Lock()
	m.policy = p
	m.policyMu.Unlock()
	return nil
}

func (p Policy) names() map[string]string {
	out := make(map[string]string, len(p))
	for sev, act := range p {
		out[sev.String()] = string(act)
	}
	return out
}

// String writes p as --monitor-actions takes it, lowest severity first.
func (p Policy) String() string {
	var parts []string
	for _, sev := range Severities() {
		if act, ok := p[sev]; ok {
			parts = append(parts, sev.String()+"="+string(act))
		}
	}
	return strings.Join(parts, ",")
}
