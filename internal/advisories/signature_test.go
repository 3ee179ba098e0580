package advisories

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// pgpKey is a maker's signing key made for the test.
type pgpKey struct {
	e *openpgp.Entity
}

func newPGPKey(t *testing.T, name string) pgpKey {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@maker.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	return pgpKey{e: e}
}

func (k pgpKey) fingerprint() string {
	return strings.ToUpper(hex.EncodeToString(k.e.PrimaryKey.Fingerprint))
}

// public is the armored public key, as a provider publishes it.
func (k pgpKey) public(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sign returns the detached armored signature of data.
func (k pgpKey) sign(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, k.e, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listKeys adds public_openpgp_keys to the site's provider metadata and
// serves each key: fps[i] is the fingerprint listed for keys[i].
func (m *makerSite) listKeys(t *testing.T, keys []pgpKey, fps []string) {
	t.Helper()
	const pmdPath = "/.well-known/csaf/provider-metadata.json"
	m.mu.Lock()
	raw := m.files[pmdPath]
	m.mu.Unlock()
	var pmd map[string]any
	if err := json.Unmarshal(raw, &pmd); err != nil {
		t.Fatal(err)
	}
	var list []any
	for i, k := range keys {
		p := "/.well-known/csaf/openpgp/key" + string(rune('0'+i)) + ".asc"
		m.put(p, k.public(t))
		list = append(list, map[string]any{"fingerprint": fps[i], "url": m.url(p)})
	}
	pmd["public_openpgp_keys"] = list
	m.put(pmdPath, mustJSON(t, pmd))
}

// signedDocs are the four documents the signature tests publish in the
// ROLIE feed: signed by the maker, unsigned, signed by someone else, and
// altered after signing.
func signedDocs(t *testing.T) map[string][]byte {
	t.Helper()
	base := fixture(t, "csaf-thermostat.json").Data
	doc := func(id string) []byte { return bytes.ReplaceAll(base, []byte("CANDOR-DEMO-SA-2026-07"), []byte(id)) }
	return map[string][]byte{
		"signed.json":   doc("SA-SIGNED"),
		"unsigned.json": doc("SA-UNSIGNED"),
		"other.json":    doc("SA-OTHER"),
		"altered.json":  doc("SA-ALTERED"),
	}
}

func publishSigned(t *testing.T, m *makerSite, maker, other pgpKey) {
	t.Helper()
	docs := signedDocs(t)
	m.publishCSAF(t, docs, nil)
	const dir = "/.well-known/csaf/white/2026/"
	m.put(dir+"signed.json.asc", maker.sign(t, docs["signed.json"]))
	m.put(dir+"other.json.asc", other.sign(t, docs["other.json"]))
	m.put(dir+"altered.json.asc", maker.sign(t, docs["altered.json"]))
	// Changed after signing (same advisory, other bytes), with a SHA-256
	// file that matches, as someone who can change files on the server
	// would make it: only the signature tells.
	altered := append(bytes.Clone(docs["altered.json"]), ' ')
	m.put(dir+"altered.json", altered)
	sum := sha256.Sum256(altered)
	m.put(dir+"altered.json.sha256", []byte(hex.EncodeToString(sum[:])+"  altered.json\n"))
}

// refusedFor returns the refusal naming a document, or "".
func refusedFor(res RefreshResult, name string) string {
	for _, r := range res.Refused {
		if strings.Contains(r, name) {
			return r
		}
	}
	return ""
}

func TestFeedSignaturesRequired(t *testing.T) {
	maker, other := newPGPKey(t, "maker"), newPGPKey(t, "other")
	m := newMakerSite(t)
	publishSigned(t, m, maker, other)
	m.listKeys(t, []pgpKey{maker}, []string{maker.fingerprint()})
	s, _, _ := feedHub(t, m)
	ctx := t.Context()
	pmd := m.url("/.well-known/csaf/provider-metadata.json")
	if _, err := s.AddFeed(ctx, pmd, FeedCSAF, ""); err != nil {
		t.Fatal(err)
	}
	res, err := s.RefreshFeed(ctx, pmd)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Imported) != 1 || res.Imported[0] != "SA-SIGNED" {
		t.Errorf("imported %v, want only SA-SIGNED", res.Imported)
	}
	if r := refusedFor(res, "unsigned.json"); !strings.Contains(r, "no OpenPGP signature") {
		t.Errorf("unsigned.json refusal = %q, want it to say there is no OpenPGP signature (all: %v)", r, res.Refused)
	}
	for _, name := range []string{"other.json", "altered.json"} {
		if r := refusedFor(res, name); !strings.Contains(r, "does not verify") {
			t.Errorf("%s refusal = %q, want a signature that does not verify", name, r)
		}
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("count = %d, want 1: nothing of a refused document is stored", n)
	}
	f := res.Feed
	if !strings.Contains(f.LastError, "3 of 4 documents refused") || !strings.Contains(f.Signatures, maker.fingerprint()) {
		t.Errorf("feed = %+v, want 3 of 4 refused and the key named", f)
	}
}

func TestFeedUnsignedAllowed(t *testing.T) {
	maker, other := newPGPKey(t, "maker"), newPGPKey(t, "other")
	m := newMakerSite(t)
	publishSigned(t, m, maker, other)
	m.listKeys(t, []pgpKey{maker}, []string{maker.fingerprint()})
	s, rec, _ := feedHub(t, m)
	ctx := t.Context()
	pmd := m.url("/.well-known/csaf/provider-metadata.json")
	if _, err := s.AddFeedWith(ctx, pmd, FeedCSAF, "", FeedSignatures{UnsignedAllowed: true}); err != nil {
		t.Fatal(err)
	}
	if ev := rec.evs[len(rec.evs)-1]; ev.Action != ActionFeedAdd || ev.Detail["unsigned"] != "allowed" {
		t.Errorf("feed add event %+v, want unsigned allowed recorded", ev)
	}
	res, err := s.RefreshFeed(ctx, pmd)
	if err != nil {
		t.Fatal(err)
	}
	// Unsigned is let in; a signature that does not verify is still refused.
	if strings.Join(res.Imported, ",") != "SA-SIGNED,SA-UNSIGNED" && strings.Join(res.Imported, ",") != "SA-UNSIGNED,SA-SIGNED" {
		t.Errorf("imported %v, want SA-SIGNED and SA-UNSIGNED", res.Imported)
	}
	if refusedFor(res, "other.json") == "" || refusedFor(res, "altered.json") == "" {
		t.Errorf("refused %v, want other.json and altered.json (bad signatures are refused even when unsigned is allowed)", res.Refused)
	}
	if f := res.Feed; !f.UnsignedAllowed || !strings.Contains(f.Signatures, "1 unsigned documents were let in") {
		t.Errorf("feed = %+v, want unsigned allowed and the unsigned document counted", f)
	}
}

func TestFeedKeyFingerprints(t *testing.T) {
	maker, other := newPGPKey(t, "maker"), newPGPKey(t, "other")
	ctx := t.Context()
	pmdPath := "/.well-known/csaf/provider-metadata.json"

	t.Run("listed fingerprint is not the key's", func(t *testing.T) {
		m := newMakerSite(t)
		publishSigned(t, m, maker, other)
		// The metadata names the maker's fingerprint, the key file holds another key.
		m.listKeys(t, []pgpKey{other}, []string{maker.fingerprint()})
		s, _, _ := feedHub(t, m)
		if _, err := s.AddFeed(ctx, m.url(pmdPath), FeedCSAF, ""); err != nil {
			t.Fatal(err)
		}
		res, err := s.RefreshFeed(ctx, m.url(pmdPath))
		if !errors.Is(err, ErrFeed) || !strings.Contains(err.Error(), "does not have the fingerprint") {
			t.Errorf("refresh err = %v, want the fingerprint mismatch", err)
		}
		if n, _ := s.Count(ctx); n != 0 || !strings.Contains(res.Feed.LastError, "fingerprint") {
			t.Errorf("count %d, feed %+v; want nothing stored and the reason on the feed", n, res.Feed)
		}
	})
	t.Run("pinned key", func(t *testing.T) {
		m := newMakerSite(t)
		publishSigned(t, m, maker, other)
		m.listKeys(t, []pgpKey{other, maker}, []string{other.fingerprint(), maker.fingerprint()})
		s, _, _ := feedHub(t, m)
		// Pinned to the maker's key (lower case, with spaces): other's
		// signature, valid under a listed key, is refused.
		fp := strings.ToLower(maker.fingerprint())
		pin := fp[:20] + " " + fp[20:]
		if _, err := s.AddFeedWith(ctx, m.url(pmdPath), FeedCSAF, "", FeedSignatures{Fingerprint: pin}); err != nil {
			t.Fatal(err)
		}
		res, err := s.RefreshFeed(ctx, m.url(pmdPath))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Imported) != 1 || res.Imported[0] != "SA-SIGNED" || !strings.Contains(refusedFor(res, "other.json"), "does not verify") {
			t.Errorf("imported %v refused %v; want only SA-SIGNED, other.json refused", res.Imported, res.Refused)
		}
		if res.Feed.Fingerprint != maker.fingerprint() {
			t.Errorf("feed fingerprint %q, want %q", res.Feed.Fingerprint, maker.fingerprint())
		}
	})
	t.Run("pinned key not listed", func(t *testing.T) {
		m := newMakerSite(t)
		publishSigned(t, m, maker, other)
		m.listKeys(t, []pgpKey{other}, []string{other.fingerprint()})
		s, _, _ := feedHub(t, m)
		if _, err := s.AddFeedWith(ctx, m.url(pmdPath), FeedCSAF, "", FeedSignatures{Fingerprint: maker.fingerprint()}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RefreshFeed(ctx, m.url(pmdPath)); !errors.Is(err, ErrFeed) || !strings.Contains(err.Error(), "pinned") {
			t.Errorf("refresh err = %v, want the pinned key refused", err)
		}
		if n, _ := s.Count(ctx); n != 0 {
			t.Errorf("count = %d, want 0", n)
		}
	})
	t.Run("no keys listed", func(t *testing.T) {
		m := newMakerSite(t)
		m.publishCSAF(t, map[string][]byte{"good.json": fixture(t, "csaf-thermostat.json").Data}, nil)
		s, _, _ := feedHub(t, m)
		if _, err := s.AddFeed(ctx, m.url(pmdPath), FeedCSAF, ""); err != nil {
			t.Fatal(err)
		}
		res, err := s.RefreshFeed(ctx, m.url(pmdPath))
		if err != nil || len(res.Imported) != 1 || !strings.Contains(res.Feed.Signatures, "lists no OpenPGP keys") {
			t.Errorf("refresh = %+v, %v; want the document in and the feed saying the provider lists no keys", res, err)
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		m := newMakerSite(t)
		s, _, _ := feedHub(t, m)
		if _, err := s.AddFeedWith(ctx, m.url(pmdPath), FeedCSAF, "", FeedSignatures{Fingerprint: "abc"}); !errors.Is(err, ErrFeedURL) {
			t.Errorf("AddFeedWith(bad fingerprint) err = %v, want ErrFeedURL", err)
		}
		if _, err := s.AddFeedWith(ctx, m.url("/all.zip"), FeedOSV, "", FeedSignatures{UnsignedAllowed: true}); !errors.Is(err, ErrFeedURL) {
			t.Errorf("AddFeedWith(OSV, unsigned allowed) err = %v, want ErrFeedURL", err)
		}
	})
}
