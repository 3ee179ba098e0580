package consent

import (
	"context"
	"fmt"
	"strings"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
)

// A new manifest version never widens what people agreed to. A device's
// defaults were agreed under the version in force when it was added (its
// base); against a later version:
//
//   - a use (purpose × recipient) the base did not declare is off until
//     someone who decides turns it on, even an essential purpose;
//   - a stream's retention is the shorter of the base's and the version
//     in force, until someone agrees to the longer one (an explicit
//     routing with that retention);
//   - what the version removes or shortens applies at once.
//
// Pending lists what is waiting for an answer; each answer is an ordinary
// Set or SetRouting, so it is a consent record naming the version.

// versionLister is the part of *catalog.Catalog that finds a device's
// base. A Manifests without it has no base: every version is as agreed.
type versionLister interface {
	Versions(ctx context.Context, deviceType string) ([]*catalog.Entry, error)
}

// baseline returns the version of e's device type that was in force when
// the device was added, if it is older than e; nil otherwise or when it
// cannot be told.
func (s *Service) baseline(ctx context.Context, deviceID string, e *catalog.Entry) *catalog.Entry {
	vl, ok := s.manifests.(versionLister)
	if !ok || e == nil || e.Manifest == nil {
		return nil
	}
	vs, err := s.versionsUpTo(ctx, vl, e)
	if err != nil {
		s.log.Warn("consent: manifest versions not read; the version in force counts as agreed", "device", deviceID, "err", err)
		return nil
	}
	if len(vs) == 0 || (len(vs) == 1 && vs[0].Version == e.Version) {
		return nil // e is the first version: it is every device's base
	}
	d, err := s.st.Device(ctx, deviceID)
	if err != nil {
		return nil
	}
	var base *catalog.Entry
	for _, v := range vs {
		if v.CreatedAt.After(d.CreatedAt) {
			continue
		}
		if base == nil || v.Version > base.Version {
			base = v
		}
	}
	if base == nil || base.Version == e.Version {
		return nil
	}
	return base
}

// versionsUpTo returns the published versions of e's device type up to
// and including e: e itself must be a candidate, or a device added while
// e was in force would get the version before as its base, and whatever
// e added would wait for an agreement nobody is asked for. They are read
// and parsed once per version in force, not once per device: loading every device after a restart parsed every version of its
// manifest each time (6.1 s of CPU for 10,000 devices; issue #19). The
// list cannot change while that version is in force: versions are only
// ever added, with higher numbers (confirming a draft adds a version).
// Refresh forgets the cache all the same.
func (s *Service) versionsUpTo(ctx context.Context, vl versionLister, e *catalog.Entry) ([]*catalog.Entry, error) {
	key := olderKey{e.Manifest.DeviceType, e.Version}
	if vs, ok := s.older.Load(key); ok {
		return vs.([]*catalog.Entry), nil
	}
	all, err := vl.Versions(ctx, e.Manifest.DeviceType)
	if err != nil {
		return nil, err
	}
	var vs []*catalog.Entry
	for _, v := range all {
		if !v.Draft && v.Manifest != nil && v.Version <= e.Version {
			vs = append(vs, v)
		}
	}
	s.older.Store(key, vs)
	return vs, nil
}

// olderKey names the versions up to one version of a device type.
type olderKey struct {
	deviceType string
	version    int
}

// isNew reports whether a use was added after the device's base.
func (dt *deviceTable) isNew(stream, purpose, recipient string) bool {
	if dt.base == nil {
		return false
	}
	st := dt.base.Manifest.Stream(stream)
	if st == nil {
		return true
	}
	if recipient == RecipientHub {
		for _, p := range st.Purposes {
			if p.ID == purpose {
				return false
			}
		}
		return true
	}
	for _, r := range st.Recipients {
		if r.Name == recipient && r.Purpose == purpose {
			return false
		}
	}
	return true
}

// agreedRetention is the longest a stream may be kept without a newer
// agreement: the version in force's, cut to the base's.
func (dt *deviceTable) agreedRetention(st *manifest.Stream) manifest.Duration {
	if dt.base == nil {
		return st.Retention
	}
	if b := dt.base.Manifest.Stream(st.Name); b != nil && !b.Retention.IsZero() && b.Retention.D < st.Retention.D {
		return b.Retention
	}
	return st.Retention
}

// PendingChange is what a newer manifest version asks of a device's
// people about one stream, which nobody has answered yet.
type PendingChange struct {
	DeviceID        string `json:"device_id"`
	ManifestVersion int    `json:"manifest_version"`
	Stream          string `json:"stream"`
	Title           string `json:"title"`
	// Uses are the new uses, off until someone turns them on.
	Uses []UseState `json:"uses,omitempty"`
	// Retention, when set, is the longer retention asked for; Agreed is
	// the one that holds until someone agrees.
	Retention *manifest.Duration `json:"retention,omitempty"`
	Agreed    manifest.Duration  `json:"agreed_retention"`
	// Sentence says the change in plain words.
	Sentence string `json:"sentence"`
}

// Pending lists what the manifest in force for a device asks beyond what
// its people agreed to, per stream, that nobody has answered: new uses
// nobody decided, and a longer retention nobody chose.
func (s *Service) Pending(ctx context.Context, deviceID string) ([]PendingChange, error) {
	dt, err := s.table(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	if dt.base == nil {
		return nil, nil
	}
	var out []PendingChange
	for _, st := range dt.entry.Manifest.Streams {
		pc := PendingChange{DeviceID: deviceID, ManifestVersion: dt.entry.Version, Stream: st.Name, Title: st.Title,
			Agreed: dt.agreedRetention(st)}
		if pc.Title == "" {
			pc.Title = st.Name
		}
		for _, p := range st.Purposes {
			if _, ok := dt.explicit[useKey{st.Name, p.ID, RecipientHub}]; ok || !dt.isNew(st.Name, p.ID, RecipientHub) {
				continue
			}
			u := UseState{Purpose: p.ID, Recipient: RecipientHub, Essential: p.Essential, PurposeText: purposeText(p),
				RecipientText: "this hub, for you"}
			dt.fill(&u, st)
			pc.Uses = append(pc.Uses, u)
		}
		// A learning mark the device's base did not have is a new use too.
		for _, lp := range []string{PurposeMachineLearning, PurposeAutomatedDecisions} {
			if _, ok := dt.explicit[useKey{st.Name, lp, RecipientHub}]; ok || !marked(st, lp) || dt.learningDefault(st, lp) {
				continue
			}
			u := UseState{Purpose: lp, Recipient: RecipientHub, PurposeText: manifest.PurposeWords(lp), RecipientText: "this hub and the device"}
			dt.fill(&u, st)
			pc.Uses = append(pc.Uses, u)
		}
		for _, r := range st.Recipients {
			if r.Name == RecipientHub {
				continue
			}
			if _, ok := dt.explicit[useKey{st.Name, r.Purpose, r.Name}]; ok || !dt.isNew(st.Name, r.Purpose, r.Name) {
				continue
			}
			p := recipientPurpose(st, r)
			u := UseState{Purpose: r.Purpose, Recipient: r.Name, Essential: p.Essential, PurposeText: purposeText(p),
				RecipientText: recipientText(r)}
			dt.fill(&u, st)
			pc.Uses = append(pc.Uses, u)
		}
		if _, chosen := dt.routing[st.Name]; !chosen && pc.Agreed.D < st.Retention.D {
			ret := st.Retention
			pc.Retention = &ret
		}
		if len(pc.Uses) == 0 && pc.Retention == nil {
			continue
		}
		pc.Sentence = pendingSentence(dt.entry.Manifest, pc)
		out = append(out, pc)
	}
	return out, nil
}

// pendingSentence says a change in plain words: "The door sensor wants
// to keep 'door open or closed' for 1 year instead of 1 month, and send
// it to 'Insurance partner'. Nothing changes until you say yes."
func pendingSentence(m *manifest.Manifest, pc PendingChange) string {
	who := "This device"
	if m.Title != "" {
		who = "The " + strings.ToLower(m.Title[:1]) + m.Title[1:]
	}
	var parts []string
	if pc.Retention != nil {
		parts = append(parts, fmt.Sprintf("keep %q for %s instead of %s", strings.ToLower(pc.Title), pc.Retention.Human(), pc.Agreed.Human()))
	}
	var send, use []string
	for _, u := range pc.Uses {
		if u.Recipient != RecipientHub {
			send = append(send, fmt.Sprintf("%q", u.Recipient))
		} else {
			use = append(use, lowerFirstWord(strings.TrimSuffix(u.PurposeText, ".")))
		}
	}
	it := fmt.Sprintf("%q", strings.ToLower(pc.Title))
	if len(parts) > 0 {
		it = "it"
	}
	if len(use) > 0 {
		parts = append(parts, "use "+it+" "+strings.Join(use, " and "))
		it = "it"
	}
	if len(send) > 0 {
		parts = append(parts, "send "+it+" to "+strings.Join(send, " and "))
	}
	return who + " wants to " + strings.Join(parts, ", and ") + ". Nothing changes until you say yes."
}

func lowerFirstWord(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
