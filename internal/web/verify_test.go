package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/auditlog/verify"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/testsupport/readability"
)

var verifyLinkRe = regexp.MustCompile(`href="(/log/entries/(\d+)/verify)"`)

func TestVerifyPageChecksARealEntry(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	if err := h.submit(d.ID, "temperature", `{"celsius": 21}`); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	b.login("alex", goodPassword)
	b.get("/devices/" + d.ID) // a read, logged

	links := verifyLinkRe.FindAllStringSubmatch(b.get("/log").body, -1)
	if len(links) < 3 {
		t.Fatalf("the log page has %d check links", len(links))
	}
	cp := h.alog.Checkpoint()
	for _, l := range links {
		index, _ := strconv.ParseUint(l[2], 10, 64)
		p := b.get(l[1])
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", l[1], p.status)
		}
		e, err := h.alog.Entry(context.Background(), index)
		if err != nil {
			t.Fatal(err)
		}
		text := visibleText(p.body)
		mustContain(t, l[1], text, "This line is in the log.", "The hub cannot change or remove it without it showing.",
			fmt.Sprintf("It covers the first %d lines.", cp.Size), "test.candor.local",
			base64.StdEncoding.EncodeToString(verify.LeafHash(e.Data)), base64.StdEncoding.EncodeToString(cp.Root),
			"Check it in your browser", h.alog.VerifierKey(), "candor log verify")
		mustContain(t, l[1], p.body, `href="/api/v1/log/proof/inclusion?index=`+l[2]+`"`, `href="#in-browser"`,
			`src="/static/verify.js?v=`)
		if m := regexp.MustCompile(`data-verifier-key="([^"]+)"`).FindStringSubmatch(p.body); m == nil || html.UnescapeString(m[1]) != h.alog.VerifierKey() {
			t.Errorf("%s: the verifier key for the script is %q", l[1], m)
		}
		mustNotContain(t, l[1], text, "could not be checked")
	}

	// The page is plain English, like the others.
	p := b.get(links[0][1])
	if s := readability.Score(visibleText(p.body)); s.Ease < readability.PlainEnglish {
		t.Errorf("the check page scores %.1f, want at least %.0f:\n%s", s.Ease, readability.PlainEnglish, visibleText(p.body))
	}
}

func TestVerifyPageFollowsTheLogPagesVisibility(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	ctx := context.Background()
	alex := h.setup("alex")
	_, sam, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	h.addDevice(sam.HouseholdID, "Door", "door-sensor")

	// Which entries are whose.
	var alexs, sams []uint64
	for e, err := range h.alog.Entries(ctx, 0, h.alog.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Event.Household == alex.HouseholdID:
			alexs = append(alexs, e.Index)
		case e.Event.Household == sam.HouseholdID || e.Event.Subject.Account == sam.ID:
			sams = append(sams, e.Index)
		}
	}
	if len(alexs) == 0 || len(sams) == 0 {
		t.Fatalf("entries: alex %v, sam %v", alexs, sams)
	}
	ba, bs := h.browser(), h.browser()
	ba.login("alex", goodPassword)
	bs.login("sam", "marble-otter-sunrise-19")
	missing := ba.get("/log/entries/999999/verify")
	if missing.status != http.StatusNotFound {
		t.Errorf("a line past the end: %d", missing.status)
	}
	for _, i := range alexs {
		path := fmt.Sprintf("/log/entries/%d/verify", i)
		if p := ba.get(path); p.status != http.StatusOK {
			t.Errorf("alex's own line %d: %d", i, p.status)
		}
		p := bs.get(path)
		if p.status != http.StatusNotFound {
			t.Errorf("sam sees alex's line %d: %d", i, p.status)
		}
	}
	for _, i := range sams {
		path := fmt.Sprintf("/log/entries/%d/verify", i)
		if p := bs.get(path); p.status != http.StatusOK {
			t.Errorf("sam's own line %d: %d", i, p.status)
		}
		// Another household's line looks like one that does not exist.
		p := ba.get(path)
		if p.status != http.StatusNotFound || visibleText(p.body) != visibleText(missing.body) {
			t.Errorf("alex sees sam's line %d: %d", i, p.status)
		}
	}
	for _, bad := range []string{"x", "-1", "1.5", "18446744073709551616"} {
		if p := ba.get("/log/entries/" + bad + "/verify"); p.status != http.StatusNotFound {
			t.Errorf("line %q: %d", bad, p.status)
		}
	}
	anon := h.browser()
	if p := anon.get(fmt.Sprintf("/log/entries/%d/verify", alexs[0])); p.url != fmt.Sprintf("/login?next=%%2Flog%%2Fentries%%2F%d%%2Fverify", alexs[0]) {
		t.Errorf("logged out, the check page went to %s", p.url)
	}

	// Without a transparency log there is nothing to check.
	h2 := startHub(t, func(c *Config) { c.Log = nil })
	h2.setup("alex")
	b2 := h2.browser()
	b2.login("alex", goodPassword)
	if p := b2.get("/log/entries/0/verify"); p.status != http.StatusNotFound {
		t.Errorf("without a log: %d", p.status)
	}
}

// testLog is a transparency log of n entries in a temporary directory.
func testLog(t *testing.T, n int) *auditlog.Log {
	t.Helper()
	key, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(context.Background(), filepath.Join(t.TempDir(), "log"), key, auditlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range n {
		ev := auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}, Action: "test.event", Household: "hh_test",
			Purpose: "test " + strconv.Itoa(i) + ": café <ok> & \"quoted\""}
		if _, err := l.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestProofPathReachesTheRoot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := testLog(t, 21)
	for size := uint64(1); size <= l.Size(); size++ {
		root, err := l.RootHash(ctx, size)
		if err != nil {
			t.Fatal(err)
		}
		for i := range size {
			e, err := l.Entry(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			proof, err := l.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			steps, got := proofPath(i, size, verify.LeafHash(e.Data), proof)
			if string(got) != string(root) || len(steps) != len(proof) {
				t.Fatalf("line %d of %d: path reaches %x in %d steps, root %x, proof of %d", i, size, got, len(steps), root, len(proof))
			}
		}
	}
}

func TestCheckInclusion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := testLog(t, 13)
	cp := l.Checkpoint()
	e, err := l.Entry(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := l.InclusionProof(ctx, 6, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	good := checkInclusion(cp.Signed, l.VerifierKey(), cp.Size, 6, e.Data, proof)
	if !good.Verified || good.Problem != "" || !good.SignatureOK || good.Computed != good.RootHash ||
		good.KeyName != "test.candor.local" || len(good.KeyID) != 8 || len(good.Steps) != len(proof) {
		t.Fatalf("a good proof: %+v", good)
	}

	tamper := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 1
		return c
	}
	bad := append([][]byte(nil), proof...)
	bad[1] = tamper(bad[1])
	other, _ := auditlog.GenerateKey("test.candor.local")
	for name, v := range map[string]verifyView{
		"changed line":       checkInclusion(cp.Signed, l.VerifierKey(), cp.Size, 6, tamper(e.Data), proof),
		"changed proof":      checkInclusion(cp.Signed, l.VerifierKey(), cp.Size, 6, e.Data, bad),
		"short proof":        checkInclusion(cp.Signed, l.VerifierKey(), cp.Size, 6, e.Data, proof[1:]),
		"other line number":  checkInclusion(cp.Signed, l.VerifierKey(), cp.Size, 7, e.Data, proof),
		"another key":        checkInclusion(cp.Signed, other.VerifierKey(), cp.Size, 6, e.Data, proof),
		"changed checkpoint": checkInclusion(tamper(cp.Signed), l.VerifierKey(), cp.Size, 6, e.Data, proof),
		"other size":         checkInclusion(cp.Signed, l.VerifierKey(), cp.Size-1, 6, e.Data, proof),
	} {
		if v.Verified || v.Problem == "" {
			t.Errorf("%s: verified %v, problem %q", name, v.Verified, v.Problem)
		}
		if (name == "another key" || name == "changed checkpoint") != !v.SignatureOK {
			t.Errorf("%s: signature ok %v", name, v.SignatureOK)
		}
	}
	if v := checkInclusion(cp.Signed, l.VerifierKey(), cp.Size, 6, e.Data, bad); v.Computed == v.RootHash || !strings.Contains(v.Problem, "proof does not lead") {
		t.Errorf("a changed proof: %+v", v)
	}
}
