package assess

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
)

// Kinds of signed report.
const (
	KindPIA         = "pia"
	KindConformance = "conformance"
)

// Transparency-log action of a new signed report version.
const ActionReportSign = "assessment.report.sign"

// Signed is one version of a generated report as the hub signed it. Its
// canonical JSON (the exact bytes of Document) is what the signature
// covers, so anyone with the hub's public key can check it offline:
// ed25519.Verify(key, Document, Signature).
type Signed struct {
	Kind      string          `json:"kind"`
	Household string          `json:"household,omitempty"`
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	Digest    string          `json:"digest"` // SHA-256 of Body: unchanged facts, no new version
	Changes   []string        `json:"changes"`
	Body      json.RawMessage `json:"body"`
}

// Version is a stored report version: the signed document and its
// signature.
type Version struct {
	Signed
	Document  []byte `json:"-"`
	Signature []byte `json:"-"`
}

// ErrNoKey means the service was built without a signing key.
var ErrNoKey = errors.New("assess: no signing key for reports")

// PublicKey is the key that checks report signatures (nil without one).
func (s *Service) PublicKey() ed25519.PublicKey {
	if s.cfg.Key == nil {
		return nil
	}
	return s.cfg.Key.Public().(ed25519.PublicKey)
}

// Verify checks a report version's signature with the hub's public key.
func Verify(pub ed25519.PublicKey, document, signature []byte) (Signed, error) {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, document, signature) {
		return Signed{}, errors.New("the signature does not match this document and key")
	}
	var sd Signed
	if err := json.Unmarshal(document, &sd); err != nil {
		return Signed{}, fmt.Errorf("read signed document: %w", err)
	}
	return sd, nil
}

// latest returns the newest stored version of a report, or nil.
func (s *Service) latest(ctx context.Context, kind, household string) (*Version, error) {
	docs, err := s.cfg.Store.Assessments(ctx, kind, household, 1)
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	return decodeVersion(docs[0])
}

func decodeVersion(d store.AssessmentDoc) (*Version, error) {
	v := &Version{Document: d.Doc, Signature: d.Signature}
	if err := json.Unmarshal(d.Doc, &v.Signed); err != nil {
		return nil, fmt.Errorf("stored %s version %d: %w", d.Kind, d.Version, err)
	}
	return v, nil
}

// Versions lists the stored versions of a report, newest first.
func (s *Service) Versions(ctx context.Context, kind, household string) ([]*Version, error) {
	docs, err := s.cfg.Store.Assessments(ctx, kind, household, 0)
	if err != nil {
		return nil, err
	}
	out := make([]*Version, 0, len(docs))
	for _, d := range docs {
		v, err := decodeVersion(d)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// publish stores body as the next version of a report when its facts
// changed since the latest one (else it returns the latest), signed and
// recorded in the transparency log. facts lists the report's facts as
// lines, so the new version can say what changed.
func (s *Service) publish(ctx context.Context, kind, household string, body any, facts func(json.RawMessage) []string) (*Version, error) {
	if s.cfg.Key == nil {
		return nil, ErrNoKey
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	sum := sha256.Sum256(raw)
	digest := hex.EncodeToString(sum[:])
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	prev, err := s.latest(ctx, kind, household)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.Digest == digest {
		return prev, nil
	}
	sd := Signed{Kind: kind, Household: household, CreatedAt: s.cfg.Now().UTC().Truncate(time.Second), Digest: digest, Body: raw,
		Changes: []string{}}
	if prev != nil {
		sd.Version = prev.Version + 1
		sd.Changes = diffLines(facts(prev.Body), facts(raw))
	} else {
		sd.Version = 1
		sd.Changes = []string{"This is the first version."}
	}
	doc, err := json.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	sig := ed25519.Sign(s.cfg.Key, doc)
	stored, err := s.cfg.Store.PutAssessment(ctx, store.AssessmentDoc{Kind: kind, HouseholdID: household, Digest: digest,
		Doc: doc, Signature: sig, CreatedAt: sd.CreatedAt})
	if err != nil {
		return nil, err
	}
	if stored.Version != sd.Version {
		// Another node wrote a version meanwhile; ours is still signed over
		// the number it carries, so say so rather than hide it.
		s.log.Warn("report version raced", "kind", kind, "household", household, "signed", sd.Version, "stored", stored.Version)
	}
	if err := s.cfg.Log.Record(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}, Action: ActionReportSign,
		Household: household, Purpose: "assessment",
		Detail: map[string]string{"kind": kind, "version": fmt.Sprint(sd.Version), "digest": digest}}); err != nil {
		return nil, err
	}
	return &Version{Signed: sd, Document: doc, Signature: sig}, nil
}

// diffLines says which fact lines are new and which are gone.
func diffLines(before, after []string) []string {
	var out []string
	for _, l := range after {
		if !slices.Contains(before, l) {
			out = append(out, "New: "+l)
		}
	}
	for _, l := range before {
		if !slices.Contains(after, l) {
			out = append(out, "Gone: "+l)
		}
	}
	if len(out) == 0 {
		out = append(out, "Nothing you can see changed; details of the facts did.")
	}
	return out
}
