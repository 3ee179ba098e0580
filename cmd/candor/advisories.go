package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/candor-iot/candor/internal/advisories"
)

func runAdvisories(args []string) error {
	if len(args) == 0 {
		return errors.New("which? candor advisories import|list|feeds (each has --help)")
	}
	switch args[0] {
	case "import":
		return advisoriesImport(args[1:])
	case "list":
		return advisoriesList(args[1:])
	case "feeds":
		return advisoriesFeeds(args[1:])
	}
	return fmt.Errorf("unknown advisories command %q: use import, list or feeds", args[0])
}

// advisoriesImport sends one file, or every .json file of a directory, in
// one request: the hub imports all of them or none.
func advisoriesImport(args []string) error {
	fs := newFlags("candor advisories import", "candor advisories import FILE|DIR")
	dir := dataDirFlag(fs)
	path, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	files, err := advisoryFiles(path)
	if err != nil {
		return err
	}
	type doc struct {
		Source   string          `json:"source"`
		Document json.RawMessage `json:"document"`
	}
	var docs []doc
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return err
		}
		if st.Size() > advisories.MaxDocumentBytes {
			return fmt.Errorf("%s is %d bytes; an advisory document may be at most 5 MiB", f, st.Size())
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if !json.Valid(b) {
			return fmt.Errorf("%s is not valid JSON", f)
		}
		docs = append(docs, doc{Source: filepath.Base(f), Document: b})
	}
	var out struct {
		Imported []struct {
			ID     string `json:"id"`
			Format string `json:"format"`
			Title  string `json:"title"`
		} `json:"imported"`
	}
	if err := newLocal(*dir).do("POST", "/api/v1/advisories", map[string]any{"documents": docs}, &out); err != nil {
		return err
	}
	for _, a := range out.Imported {
		fmt.Printf("imported %s (%s) %s\n", a.ID, strings.ToUpper(a.Format), a.Title)
	}
	return nil
}

// advisoryFiles is the file itself, or a directory's *.json files sorted.
func advisoryFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s has no .json files", path)
	}
	sort.Strings(files)
	return files, nil
}

// advisoriesList prints what GET /api/v1/advisories answers.
func advisoriesList(args []string) error {
	fs := newFlags("candor advisories list", "candor advisories list [--json]")
	dir := dataDirFlag(fs)
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var out struct {
		Advisories int                     `json:"advisories"`
		Findings   []advisories.View       `json:"findings"`
		StaleFeeds []advisories.FeedStatus `json:"staleFeeds"`
	}
	if err := newLocal(*dir).do("GET", "/api/v1/advisories", nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	for _, f := range out.StaleFeeds {
		fmt.Printf("Warning: feed %s: %s\n", f.URL, f.Plain)
	}
	if len(out.Findings) == 0 {
		fmt.Printf("No open advisories (%d held).\n", out.Advisories)
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tFIRMWARE\tADVISORY\tSEVERITY\tSTATUS")
	for _, f := range out.Findings {
		fmt.Fprintf(tw, "%s (%s)\t%s\t%s\t%s\t%s\n", f.Device, f.DeviceName, orDash(f.Firmware), f.Advisory, f.Severity, f.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range out.Findings {
		fmt.Printf("\n%s on %s (%s)\n  What it means: %s\n  How bad: %s\n  What to do: %s\n", f.Advisory, f.DeviceName, f.Device, f.AttackerCan, f.SeverityWords, f.Action)
		if f.ActionURL != "" {
			fmt.Printf("  More: %s\n", f.ActionURL)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
