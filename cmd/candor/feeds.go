package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/candor-iot/candor/internal/advisories"
)

// advisoriesFeeds lists, adds, removes and refreshes the HTTPS feeds
// advisories come from, through the API on the control socket.
func advisoriesFeeds(args []string) error {
	sub := "list"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		return feedsList(args)
	case "add":
		return feedsAdd(args)
	case "remove":
		return feedsRemove(args)
	case "refresh":
		return feedsRefresh(args)
	}
	return fmt.Errorf("unknown feeds command %q: use list, add, remove or refresh", sub)
}

func feedsList(args []string) error {
	fs := newFlags("candor advisories feeds", "candor advisories feeds [list] [--json]")
	dir := dataDirFlag(fs)
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var out struct {
		Feeds []advisories.FeedStatus `json:"feeds"`
		Stale int                     `json:"stale"`
	}
	if err := newLocal(*dir).do("GET", "/api/v1/advisories/feeds", nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	if len(out.Feeds) == 0 {
		fmt.Println("No advisory feeds. Add one with: candor advisories feeds add URL --kind csaf|osv")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "URL\tKIND\tFROM\tLAST READ\tSTATE")
	for _, f := range out.Feeds {
		last := "never"
		if !f.LastSuccess.IsZero() {
			last = f.LastSuccess.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.URL, f.Kind, f.Origin, last, f.Plain)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Stale > 0 {
		return fmt.Errorf("%d feed(s) not refreshed for 7 days", out.Stale)
	}
	return nil
}

func feedsAdd(args []string) error {
	fs := newFlags("candor advisories feeds add", "candor advisories feeds add URL --kind csaf|osv [--fingerprint FPR] [--unsigned-allowed]")
	dir := dataDirFlag(fs)
	kind := fs.String("kind", "", "csaf (a maker's provider-metadata.json) or osv (a zip of OSV documents, or one)")
	fpr := fs.String("fingerprint", "", "CSAF only: the maker's OpenPGP key fingerprint; only that key may sign the documents")
	unsigned := fs.Bool("unsigned-allowed", false, "CSAF only: let documents without an OpenPGP signature in (bad signatures are still refused)")
	u, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if *kind == "" {
		return errors.New("say which kind of feed with --kind csaf or --kind osv")
	}
	var out struct {
		Feed advisories.FeedStatus `json:"feed"`
	}
	in := map[string]any{"url": u, "kind": *kind}
	if *fpr != "" {
		in["fingerprint"] = *fpr
	}
	if *unsigned {
		in["unsignedAllowed"] = true
	}
	if err := newLocal(*dir).do("POST", "/api/v1/advisories/feeds", in, &out); err != nil {
		return err
	}
	fmt.Printf("added %s (%s); the hub reads it every 6 hours. Read it now with: candor advisories feeds refresh %s\n", out.Feed.URL, out.Feed.Kind, out.Feed.URL)
	return nil
}

func feedsRemove(args []string) error {
	fs := newFlags("candor advisories feeds remove", "candor advisories feeds remove URL")
	dir := dataDirFlag(fs)
	u, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	if err := newLocal(*dir).do("DELETE", "/api/v1/advisories/feeds?url="+url.QueryEscape(u), nil, nil); err != nil {
		return err
	}
	fmt.Printf("removed %s; the advisories it brought stay\n", u)
	return nil
}

func feedsRefresh(args []string) error {
	fs := newFlags("candor advisories feeds refresh", "candor advisories feeds refresh [URL]")
	dir := dataDirFlag(fs)
	var one string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		one, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("name at most one feed, before the flags")
	}
	path := "/api/v1/advisories/feeds/refresh"
	if one != "" {
		path += "?url=" + url.QueryEscape(one)
	}
	var out struct {
		Results []advisories.RefreshResult `json:"results"`
	}
	if err := newLocal(*dir).do("POST", path, nil, &out); err != nil {
		return err
	}
	failed := 0
	for _, r := range out.Results {
		fmt.Printf("%s: %s %d new or changed, %d refused\n", r.Feed.URL, r.Feed.Plain, len(r.Imported), len(r.Refused))
		for _, why := range r.Refused {
			fmt.Printf("  refused: %s\n", why)
		}
		if r.Feed.LastAttempt.After(r.Feed.LastSuccess) {
			failed++
			fmt.Printf("  not read: %s\n", r.Feed.LastError)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d feed(s) could not be read", failed)
	}
	return nil
}
