package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/auditlog/verify"
)

// jsCheck is what CandorVerify.check (static/verify.js) answers.
type jsCheck struct {
	OK        bool     `json:"ok"`
	Unable    bool     `json:"unable"`
	Problems  []string `json:"problems"`
	Signature string   `json:"signature"`
}

// TestBrowserChecksALogLine has Chromium check a line of the
// transparency log by itself (static/verify.js): a real proof verifies,
// a proof or a line changed on the way fails, and the script's Merkle
// math agrees with the Go verifier on every line of trees of 1 to 21
// lines.
func TestBrowserChecksALogLine(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests take a few seconds; skipped with -short")
	}
	h := startHub(t)
	alex := h.setup("alex")
	// A line with letters beyond ASCII and characters Go's JSON encoder
	// escapes (<, >, &), so the browser must hash the line's exact UTF-8
	// bytes, not what the JSON looked like on the wire.
	ctx := context.Background()
	if err := h.alog.Record(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: alex.ID},
		Action: auditlog.ActionReadingsExport, Household: alex.HouseholdID, Purpose: `a café <copy> & "more" ☕`}); err != nil {
		t.Fatal(err)
	}
	index := h.alog.Size() - 1
	tb := startBrowser(t, h.srv.URL)
	defer func() {
		for _, r := range tb.results {
			t.Log(r)
		}
	}()
	tb.open("/login")
	tb.step("fill login form", chromedp.SendKeys(chromedp.ID("username"), "alex"), chromedp.SendKeys(chromedp.ID("password"), goodPassword))
	tb.submit("log in", "main form button[type=submit]")

	tb.open(fmt.Sprintf("/log/entries/%d/verify", index))
	if !eval[bool](tb, `document.getElementById('browser-needs-script').hidden && !document.getElementById('browser-check').hidden`) {
		t.Error("the script did not show its button")
	}
	tb.checkA11y("check a log line")

	// check clicks the button and waits for the answer.
	check := func(what string) (string, string) {
		t.Helper()
		tb.step(what, chromedp.Click(chromedp.ID("browser-check")))
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('browser-result').hasAttribute('data-result')`,
			chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			t.Fatalf("%s: no answer: %v", what, err)
		}
		return eval[string](tb, `document.getElementById('browser-result').getAttribute('data-result')`),
			eval[string](tb, `document.getElementById('browser-result').textContent`)
	}
	result, text := check("check in the browser")
	if result != "verified" || !strings.Contains(text, "Verified in your browser.") ||
		!strings.Contains(text, "It also checked that the hub’s key signed the checkpoint.") {
		t.Errorf("the browser's check says %s: %q", result, text)
	}
	tb.checkA11y("check a log line, verified in the browser")
	tb.checkFocusVisible("check a log line")
	tb.screenshot("log-verify")

	// A proof changed on its way to the browser: the script sees it. The
	// page's fetch is wrapped, as a meddling hub or network would.
	tb.step("tamper with the proof", chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = window.__candorFetch || window.fetch;
		window.__candorFetch = orig;
		window.fetch = (u, o) => orig(u, o).then(r => r.json()).then(j => {
			const flip = s => { const b = atob(s); return btoa(String.fromCharCode(b.charCodeAt(0) ^ 1) + b.slice(1)); };
			if (window.__tamper === 'proof') { j.proof[0] = flip(j.proof[0]); }
			if (window.__tamper === 'line') { j.leaf = j.leaf.replace('café', 'cafe'); }
			return new Response(JSON.stringify(j), {status: 200, headers: {'Content-Type': 'application/json'}});
		});
		window.__tamper = 'proof';
		return true;
	})()`))
	result, text = check("check a changed proof")
	if result != "failed" || !strings.Contains(text, "The check in your browser failed.") ||
		!strings.Contains(text, "The proof does not lead to the root hash in the checkpoint.") {
		t.Errorf("a changed proof: %s: %q", result, text)
	}
	tb.checkA11y("check a log line, failed in the browser")
	tb.step("tamper with the line", chromedp.Evaluate[chromedp.Void](`window.__tamper = 'line'; true`))
	result, text = check("check a changed line")
	if result != "failed" || !strings.Contains(text, "The line the hub sent is not the line on this page.") ||
		!strings.Contains(text, "The proof does not lead to the root hash in the checkpoint.") {
		t.Errorf("a changed line: %s: %q", result, text)
	}

	// The check itself, on a good proof and on proofs changed in each
	// part: each change is caught, and named.
	other, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	cases := eval[map[string]jsCheck](tb, `(async () => {
		const sec = document.querySelector('[data-verify]');
		const key = sec.dataset.verifierKey;
		const want = {index: Number(sec.dataset.index), leafHash: sec.dataset.leafHash};
		const good = await (await window.__candorFetch(sec.dataset.proofUrl, {credentials: 'same-origin'})).json();
		const c = () => JSON.parse(JSON.stringify(good));
		const flip = (s, i) => { const b = atob(s); return btoa(b.slice(0, i) + String.fromCharCode(b.charCodeAt(i) ^ 1) + b.slice(i + 1)); };
		const out = {};
		out.good = await CandorVerify.check(good, key, want);
		out.goodAlone = await CandorVerify.check(good, key);
		let x = c(); x.proof[0] = flip(x.proof[0], 7); out.proof = await CandorVerify.check(x, key);
		x = c(); x.leaf = x.leaf.replace('café', 'cafe'); out.line = await CandorVerify.check(x, key);
		x = c(); x.proof.pop(); out.short = await CandorVerify.check(x, key);
		x = c(); x.proof.push(x.proof[0]); out.long = await CandorVerify.check(x, key);
		x = c(); x.index = x.index - 1; out.index = await CandorVerify.check(x, key);
		x = c(); x.tree_size = x.tree_size + 1; out.size = await CandorVerify.check(x, key);
		x = c(); let lines = x.checkpoint.split('\n'); lines[2] = flip(lines[2], 3); x.checkpoint = lines.join('\n'); out.root = await CandorVerify.check(x, key);
		x = c(); lines = x.checkpoint.split('\n'); const sig = lines.length - 2; const parts = lines[sig].split(' ');
		parts[2] = flip(parts[2], 20); lines[sig] = parts.join(' '); x.checkpoint = lines.join('\n'); out.signature = await CandorVerify.check(x, key);
		out.otherKey = await CandorVerify.check(good, `+jsString(other.VerifierKey())+`);
		out.badKey = await CandorVerify.check(good, 'not a key');
		out.nothing = await CandorVerify.check({}, key);
		return out;
	})()`)
	expect := map[string]struct {
		ok        bool
		problem   string
		signature string
	}{
		"good":      {true, "", "good"},
		"goodAlone": {true, "", "good"},
		"proof":     {false, "does not lead to the root hash", "good"},
		"line":      {false, "does not lead to the root hash", "good"},
		"short":     {false, "fewer hashes than the log needs", ""},
		"long":      {false, "more hashes than the log needs", ""},
		"index":     {false, "does not lead to the root hash", "good"},
		"size":      {false, "another size than the checkpoint", ""},
		"root":      {false, "not signed by the verifier key", "bad"},
		"signature": {false, "not signed by the verifier key", "bad"},
		"otherKey":  {false, "not signed by the verifier key", "bad"},
		"badKey":    {false, "verifier key", ""},
		"nothing":   {false, "", ""},
	}
	for name, want := range expect {
		got, ok := cases[name]
		if !ok {
			t.Errorf("%s: no answer", name)
			continue
		}
		if got.OK != want.ok || got.Unable || (want.problem != "" && !strings.Contains(strings.Join(got.Problems, "; "), want.problem)) ||
			(want.signature != "" && got.Signature != want.signature) {
			t.Errorf("%s: ok %v, signature %q, problems %q; want ok %v, signature %q, a problem with %q",
				name, got.OK, got.Signature, got.Problems, want.ok, want.signature, want.problem)
		}
	}
	// A changed checkpoint root fails on both counts.
	if p := strings.Join(cases["root"].Problems, "; "); !strings.Contains(p, "does not lead to the root hash") {
		t.Errorf("a changed root: %q", p)
	}

	// The script's Merkle math against the Go verifier's, for every line
	// of trees of 1 to 21 lines.
	type proofCase struct {
		Index    uint64   `json:"index"`
		Size     uint64   `json:"size"`
		LeafHash string   `json:"leaf"`
		Proof    []string `json:"proof"`
		Root     string   `json:"root"`
	}
	l := testLog(t, 21)
	var all []proofCase
	b64 := base64.StdEncoding.EncodeToString
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
			pc := proofCase{Index: i, Size: size, LeafHash: b64(verify.LeafHash(e.Data)), Root: b64(root)}
			for _, p := range proof {
				pc.Proof = append(pc.Proof, b64(p))
			}
			all = append(all, pc)
		}
	}
	js, _ := json.Marshal(all)
	wrong := eval[[]string](tb, `(async () => {
		const dec = s => Uint8Array.from(atob(s), ch => ch.charCodeAt(0));
		const enc = b => btoa(String.fromCharCode(...b));
		const bad = [];
		for (const c of `+string(js)+`) {
			const got = enc(await CandorVerify.rootFromProof(c.index, c.size, dec(c.leaf), (c.proof || []).map(dec)));
			if (got !== c.root) { bad.push(c.index + ' of ' + c.size + ': ' + got); }
		}
		return bad;
	})()`)
	if len(all) != 231 || len(wrong) > 0 {
		t.Errorf("%d proofs; the script reaches another root for %q", len(all), wrong)
	}
	// And the script hashes a line's exact UTF-8 bytes as Go does.
	e, err := l.Entry(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := eval[string](tb, `CandorVerify.leafHash(`+jsString(string(e.Data))+`).then(h => btoa(String.fromCharCode(...h)))`); got != b64(verify.LeafHash(e.Data)) {
		t.Errorf("the script's leaf hash of %s is %s", e.Data, got)
	}
	tb.checkProblems("end")
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
