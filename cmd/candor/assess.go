package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/assess"
	"github.com/candor-iot/candor/internal/signkey"
)

// runAudit runs the security audit on the running hub and prints its
// findings; it fails (exit status 1) when one at or above --fail-on is
// open, so scripts and CI can gate on it.
func runAudit(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "suppress":
			return auditSuppress(args[1:])
		case "unsuppress":
			return auditUnsuppress(args[1:])
		}
	}
	fs := newFlags("candor audit", "candor audit [--fail-on SEVERITY] [--json] [--closed] [--no-run] [--data DIR]\n       candor audit suppress ID --reason TEXT --until TIME|--for DURATION\n       candor audit unsuppress ID")
	dir := dataDirFlag(fs)
	failOn := fs.String("fail-on", "high", "exit with status 1 when a finding this severe or worse is open: critical, high, medium, low or info")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	closed := fs.Bool("closed", false, "also list findings that were fixed")
	noRun := fs.Bool("no-run", false, "show the latest findings without running the checks again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	min, err := assess.ParseSeverity(*failOn)
	if err != nil {
		return fmt.Errorf("--fail-on: %w", err)
	}
	l := newLocal(*dir)
	if !*noRun {
		if err := l.do("POST", "/api/v1/audit/run", nil, nil); err != nil {
			return err
		}
	}
	path := "/api/v1/audit"
	if *closed {
		path += "?closed=true"
	}
	var rep assess.Report
	if err := l.do("GET", path, nil, &rep); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printAudit(os.Stdout, &rep)
	}
	if n := rep.OpenAtOrAbove(min); n > 0 {
		return fmt.Errorf("%d open finding(s) at %s or above", n, min)
	}
	return nil
}

func printAudit(w io.Writer, rep *assess.Report) {
	fmt.Fprintf(w, "Security audit of this hub, run %s\n\n", rep.RanAt.Local().Format(time.RFC1123))
	if len(rep.Findings) == 0 {
		fmt.Fprintln(w, "No findings.")
	}
	for _, f := range rep.Findings {
		state := ""
		switch {
		case f.ClosedAt != nil:
			state = " (fixed " + f.ClosedAt.Local().Format(time.DateTime) + ")"
		case f.Suppressed != nil:
			state = fmt.Sprintf(" (suppressed until %s: %s)", f.Suppressed.Until.Local().Format(time.DateTime), f.Suppressed.Reason)
		}
		fmt.Fprintf(w, "[%s] %s%s\n", strings.ToUpper(string(f.Severity)), f.Title, state)
		fmt.Fprintf(w, "  Found:  %s\n  Why:    %s\n  Fix:    %s\n", f.Evidence, f.Why, f.Fix)
		if f.FixURL != "" {
			fmt.Fprintf(w, "  Page:   %s\n", f.FixURL)
		}
		fmt.Fprintf(w, "  Id:     %s\n\n", f.ID)
	}
	var na []string
	for _, c := range rep.Checks {
		if !c.Available {
			na = append(na, fmt.Sprintf("  %s: %s", c.Title, c.Note))
		}
	}
	if len(na) > 0 {
		fmt.Fprintf(w, "Checks that did not run:\n%s\n", strings.Join(na, "\n"))
	}
}

func auditSuppress(args []string) error {
	fs := newFlags("candor audit suppress", "candor audit suppress ID --reason TEXT (--until TIME | --for DURATION) [--data DIR]")
	dir := dataDirFlag(fs)
	reason := fs.String("reason", "", "why this finding may wait (required)")
	until := fs.String("until", "", "when the suppression ends, RFC 3339 (2027-01-31T00:00:00Z)")
	dur := fs.Duration("for", 0, "how long the suppression lasts, such as 720h")
	id, rest := firstArg(args)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if id == "" {
		return errors.New("name the finding: candor audit suppress ID (ids are in 'candor audit')")
	}
	var end time.Time
	switch {
	case *until != "" && *dur == 0:
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return fmt.Errorf("--until: %w", err)
		}
		end = t
	case *until == "" && *dur > 0:
		end = time.Now().Add(*dur)
	default:
		return errors.New("give one of --until or --for")
	}
	in := map[string]any{"reason": *reason, "until": end.UTC()}
	return newLocal(*dir).do("PUT", "/api/v1/audit/findings/"+url.PathEscape(id)+"/suppression", in, nil)
}

func auditUnsuppress(args []string) error {
	fs := newFlags("candor audit unsuppress", "candor audit unsuppress ID [--data DIR]")
	dir := dataDirFlag(fs)
	id, rest := firstArg(args)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if id == "" {
		return errors.New("name the finding: candor audit unsuppress ID")
	}
	return newLocal(*dir).do("DELETE", "/api/v1/audit/findings/"+url.PathEscape(id)+"/suppression", nil, nil)
}

// firstArg splits a leading positional argument from the flags.
func firstArg(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// runPIA prints a household's privacy impact assessment, regenerated and
// signed by the hub when its facts changed; `candor pia verify` checks a
// saved JSON version offline.
func runPIA(args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		return reportVerify("pia", args[1:])
	}
	fs := newFlags("candor pia", "candor pia [--household ID] [--format markdown|html|jsonld|json] [--data DIR]\n       candor pia verify --key KEY.pem FILE.json")
	dir := dataDirFlag(fs)
	household := fs.String("household", "", "the household (needed when the hub has several)")
	format := fs.String("format", "markdown", "markdown, html, jsonld (DPV terms) or json (with the signature)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l := newLocal(*dir)
	hh := *household
	if hh == "" {
		var list struct {
			Households []struct {
				ID string `json:"id"`
			} `json:"households"`
		}
		if err := l.do("GET", "/api/v1/households", nil, &list); err != nil {
			return err
		}
		if len(list.Households) != 1 {
			return fmt.Errorf("the hub has %d households: name one with --household", len(list.Households))
		}
		hh = list.Households[0].ID
	}
	text, err := l.raw("GET", "/api/v1/pia?household="+url.QueryEscape(hh)+"&format="+url.QueryEscape(*format))
	if err != nil {
		return err
	}
	_, err = io.WriteString(os.Stdout, text)
	return err
}

// reportVerify checks a saved report version (the JSON the API serves)
// against the hub's report key, offline.
func reportVerify(name string, args []string) error {
	fs := newFlags("candor "+name+" verify", "candor "+name+" verify --key KEY.pem FILE.json")
	keyFile := fs.String("key", "", "the hub's report key, from /api/v1/assessments/key")
	file, rest := firstArg(args)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if file == "" || *keyFile == "" {
		return errors.New("give the saved JSON file and --key")
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	pub, err := signkey.ParsePublicKey(kb)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var in struct {
		Document  string `json:"document"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	doc, err1 := base64.StdEncoding.DecodeString(in.Document)
	sig, err2 := base64.StdEncoding.DecodeString(in.Signature)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%s: document and signature must be base64", file)
	}
	sd, err := assess.Verify(pub, doc, sig)
	if err != nil {
		return err
	}
	fmt.Printf("Good signature: %s version %d of %s, digest %s.\n", sd.Kind, sd.Version, sd.CreatedAt.Format(time.RFC3339), sd.Digest)
	return nil
}

// runConformance prints the hub's conformance report, computed now and
// signed by the hub; `candor conformance verify` checks a saved one.
func runConformance(args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		return reportVerify("conformance", args[1:])
	}
	fs := newFlags("candor conformance", "candor conformance [--format text|html|json] [--data DIR]\n       candor conformance verify --key KEY.pem FILE.json")
	dir := dataDirFlag(fs)
	format := fs.String("format", "text", "text, html or json (with the signature)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l := newLocal(*dir)
	if *format == "html" || *format == "json" {
		text, err := l.raw("GET", "/api/v1/conformance?format="+url.QueryEscape(*format))
		if err != nil {
			return err
		}
		_, err = io.WriteString(os.Stdout, text)
		return err
	}
	if *format != "text" {
		return errors.New("--format: text, html or json")
	}
	var sj struct {
		assess.Signed
	}
	if err := l.do("GET", "/api/v1/conformance", nil, &sj); err != nil {
		return err
	}
	var c assess.Conformance
	if err := json.Unmarshal(sj.Body, &c); err != nil {
		return fmt.Errorf("read the report: %w", err)
	}
	fmt.Printf("Conformance report, version %d of %s (signed by the hub)\n\n", sj.Version, sj.CreatedAt.Local().Format(time.RFC1123))
	for _, r := range c.Live {
		state := "PASS"
		if !r.Passed {
			state = "FAIL"
		}
		fmt.Printf("live %s: %s (%s)\n", state, r.Name, r.Detail)
	}
	fmt.Println()
	for _, r := range c.Rows {
		fmt.Printf("%-16s %-18s %-14s %s\n", frameworkTag(r.Framework), r.Clause, r.Status, r.Title)
		fmt.Printf("%35s evidence: %s\n", "", r.Evidence)
		if r.Missing != "" {
			fmt.Printf("%35s missing:  %s\n", "", r.Missing)
		}
	}
	fmt.Printf("\nmet %d, partly met %d, not met %d, not applicable %d\n",
		c.Summary[assess.Met], c.Summary[assess.PartlyMet], c.Summary[assess.NotMet], c.Summary[assess.NotApplicable])
	return nil
}

func frameworkTag(f string) string {
	if strings.HasPrefix(f, "ETSI") {
		return "EN 303 645"
	}
	return "Good Practice"
}
