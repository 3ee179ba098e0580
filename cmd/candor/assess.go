package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/assess"
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
