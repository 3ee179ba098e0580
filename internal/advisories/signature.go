package advisories

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/gocsaf/csaf/v3/csaf"
)

// OpenPGP signatures of CSAF documents (CSAF 2.0 requirements 7.1.19 and
// 7.1.20): a provider lists its public keys in provider-metadata.json
// (public_openpgp_keys, each a fingerprint and a URL) and publishes a
// detached armored signature, name.json.asc, beside each document. The
// hub fetches the keys over https, uses only a key whose own fingerprint
// is the one the metadata lists (and, when the operator pinned one, only
// that key), and imports a document only when its signature verifies.
//
// A document without a signature is refused unless the operator allowed
// unsigned documents for the feed. A document whose signature does not
// verify is refused always: that is not a missing signature but a
// document or signature altered on the way, or signed by someone else.

// maxKeyBytes bounds a provider's public key file; maxSignatureBytes a
// document's signature.
const (
	maxKeyBytes       = 1 << 20
	maxSignatureBytes = 64 << 10
)

// FeedSignatures is what the operator chose about a CSAF feed's OpenPGP
// signatures when adding it.
type FeedSignatures struct {
	// Fingerprint pins the provider's key: only the key with this
	// fingerprint may sign (the provider metadata must list it too).
	// Spaces are ignored, case does not matter. Empty: any key the
	// metadata lists.
	Fingerprint string `json:"fingerprint,omitempty"`
	// UnsignedAllowed lets documents without a signature in. Off by
	// default: when a provider lists keys, every document must be signed.
	UnsignedAllowed bool `json:"unsignedAllowed,omitempty"`
}

// normFingerprint returns a fingerprint as upper-case hex without spaces,
// or an error when it is not one (40 hex digits for a v4 key, 64 for v5
// and v6 keys).
func normFingerprint(s string) (string, error) {
	fp := strings.ToUpper(strings.Join(strings.Fields(s), ""))
	if _, err := hex.DecodeString(fp); err != nil || (len(fp) != 40 && len(fp) != 64) {
		return "", ErrFeedURL.Errorf("%q is not an OpenPGP fingerprint (40 or 64 hex digits)", s)
	}
	return fp, nil
}

// signers is how a refresh checks a feed's documents: ring is nil when
// nothing is checked (the provider lists no usable key and unsigned
// documents are allowed).
type signers struct {
	ring            openpgp.EntityList
	unsignedAllowed bool
	// plain says how signatures were checked, for the feed's state.
	plain string
}

// csafSigners fetches the keys a provider's metadata lists and keeps those
// whose fingerprint is the listed one (and the pinned one, when pinned).
// An error means the feed cannot be read safely as it is: it pins a key
// the provider does not list or serve, or the provider lists keys and
// none is usable while signatures are required.
func (f *fetcher) csafSigners(ctx context.Context, pmdURL *url.URL, keys []csaf.PGPKey, sig FeedSignatures) (signers, error) {
	pin := ""
	if sig.Fingerprint != "" {
		var err error
		if pin, err = normFingerprint(sig.Fingerprint); err != nil {
			return signers{}, err
		}
	}
	if len(keys) == 0 {
		if pin != "" {
			return signers{}, ErrFeed.Errorf("the feed pins OpenPGP key %s, but provider metadata %s lists no OpenPGP keys", pin, pmdURL.Redacted())
		}
		return signers{unsignedAllowed: true,
			plain: "The provider lists no OpenPGP keys, so its documents are not signature-checked (only their SHA-256 files, when linked)."}, nil
	}
	var (
		ring     openpgp.EntityList
		problems []string
	)
	for _, k := range keys {
		want, err := normFingerprint(string(k.Fingerprint))
		if err != nil {
			problems = append(problems, fmt.Sprintf("a listed key has no valid fingerprint (%q)", string(k.Fingerprint)))
			continue
		}
		if pin != "" && want != pin {
			continue // the operator trusts only the pinned key
		}
		if k.URL == nil || *k.URL == "" {
			problems = append(problems, fmt.Sprintf("key %s has no URL", want))
			continue
		}
		e, err := f.key(ctx, pmdURL, *k.URL, want)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		ring = append(ring, e)
	}
	if len(ring) > 0 {
		fps := make([]string, len(ring))
		for i, e := range ring {
			fps[i] = hex.EncodeToString(e.PrimaryKey.Fingerprint)
		}
		s := signers{ring: ring, unsignedAllowed: sig.UnsignedAllowed,
			plain: "Documents are checked against the provider's OpenPGP key " + strings.ToUpper(strings.Join(fps, ", ")) + "."}
		if sig.UnsignedAllowed {
			s.plain += " Unsigned documents are let in: the operator allowed them."
		}
		return s, nil
	}
	why := "no usable key"
	if len(problems) > 0 {
		why = strings.Join(problems, "; ")
	}
	switch {
	case pin != "":
		return signers{}, ErrFeed.Errorf("the pinned OpenPGP key %s cannot be used: provider metadata %s: %s", pin, pmdURL.Redacted(), why)
	case sig.UnsignedAllowed:
		return signers{unsignedAllowed: true,
			plain: "None of the provider's OpenPGP keys could be used (" + why + "); documents are let in unchecked because the operator allowed unsigned documents."}, nil
	}
	return signers{}, ErrFeed.Errorf("provider metadata %s lists OpenPGP keys, but none can be used: %s", pmdURL.Redacted(), why)
}

// key fetches one public key and checks its fingerprint is the listed one:
// the metadata, fetched over https from the provider, vouches for the
// fingerprint, and the key file alone vouches for nothing.
func (f *fetcher) key(ctx context.Context, base *url.URL, raw, fingerprint string) (*openpgp.Entity, error) {
	ku, err := base.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("key %s: URL %q: %w", fingerprint, raw, err)
	}
	data, err := f.get(ctx, ku, maxKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", fingerprint, err)
	}
	var ents openpgp.EntityList
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		ents, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		ents, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("key %s at %s is not an OpenPGP public key: %v", fingerprint, ku.Redacted(), err)
	}
	for _, e := range ents {
		if e.PrimaryKey != nil && strings.EqualFold(hex.EncodeToString(e.PrimaryKey.Fingerprint), fingerprint) {
			if e.PrivateKey != nil {
				e.PrivateKey = nil // a provider publishing its secret key is its problem; the hub only verifies
			}
			return e, nil
		}
	}
	return nil, fmt.Errorf("the key at %s does not have the fingerprint %s the provider metadata lists", ku.Redacted(), fingerprint)
}

// errUnsigned marks a document without a signature.
var errUnsigned = errors.New("no OpenPGP signature")

// verify checks a document's detached armored signature. It returns nil
// when the signature verifies, or when there is none and unsigned
// documents are allowed (unsigned then reports true).
func (f *fetcher) verify(ctx context.Context, s signers, r docRef, data []byte) (unsigned bool, err error) {
	if s.ring == nil {
		return true, nil
	}
	src := r.url.Redacted()
	su := r.sigURL
	if su == nil {
		c := *r.url
		c.Path, c.RawPath = c.Path+".asc", ""
		su = &c
	}
	asc, err := f.get(ctx, su, maxSignatureBytes)
	if err != nil {
		if s.unsignedAllowed {
			return true, nil
		}
		return false, ErrInvalid.Errorf("document %s is refused: %w (%s: %v); the feed requires signed documents", src, errUnsigned, su.Redacted(), err)
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(s.ring, bytes.NewReader(data), bytes.NewReader(asc), nil); err != nil {
		return false, ErrInvalid.Errorf("document %s is refused: its OpenPGP signature %s does not verify with the provider's key: %v", src, su.Redacted(), err)
	}
	return false, nil
}
