package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/candor-iot/candor/internal/auditlog/verify"
)

// runLog handles the transparency log: fetch its checkpoint, key and
// exports from a running hub, and verify them offline.
func runLog(args []string) error {
	if len(args) == 0 {
		return errors.New("which? candor log checkpoint|key|export|verify (each has --help)")
	}
	switch args[0] {
	case "checkpoint":
		return logFetch(args[1:], "checkpoint", "/api/v1/log/checkpoint")
	case "key":
		return logFetch(args[1:], "key", "/api/v1/log/key")
	case "export":
		return logExport(args[1:])
	case "verify":
		return logVerify(args[1:])
	}
	return fmt.Errorf("unknown log command %q: use checkpoint, key, export or verify", args[0])
}

func logFetch(args []string, name, path string) error {
	fs := newFlags("candor log "+name, "candor log "+name+" [--data DIR]  (save the output to check the log later)")
	dir := dataDirFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	text, err := newLocal(*dir).raw("GET", path)
	if err != nil {
		return err
	}
	_, err = io.WriteString(os.Stdout, text)
	return err
}

func logExport(args []string) error {
	fs := newFlags("candor log export", "candor log export [--since SIZE] [--data DIR] > log.jsonl")
	dir := dataDirFlag(fs)
	since := fs.Uint64("since", 0, "add a consistency proof from this tree size (of a checkpoint you saved)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	text, err := newLocal(*dir).raw("GET", "/api/v1/log/export?since="+url.QueryEscape(fmt.Sprint(*since)))
	if err != nil {
		return err
	}
	_, err = io.WriteString(os.Stdout, text)
	return err
}

// logVerify checks a log offline: an export file or a copy of the log
// directory, against the hub's public key and optionally a checkpoint saved
// earlier. It exits non-zero naming the first altered entry.
func logVerify(args []string) error {
	fs := newFlags("candor log verify", "candor log verify --key VERIFIER-KEY (--export FILE | --dir DIR) [--checkpoint SAVED]")
	key := fs.String("key", "", "the hub's verifier key (from 'candor log key' or /api/v1/log/key), or @FILE")
	export := fs.String("export", "", "an export from 'candor log export' or /api/v1/log/export")
	logDir := fs.String("dir", "", "a copy of the hub's log directory (data/audit)")
	saved := fs.String("checkpoint", "", "a checkpoint saved earlier: prove the log only grew since")
	if err := fs.Parse(args); err != nil {
		return err
	}
	vkey := *key
	if strings.HasPrefix(vkey, "@") {
		b, err := os.ReadFile(vkey[1:])
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		vkey = strings.TrimSpace(string(b))
	}
	if vkey == "" || (*export == "") == (*logDir == "") {
		return errors.New("give --key and exactly one of --export or --dir")
	}
	ctx := context.Background()
	var trusted *verify.Checkpoint
	if *saved != "" {
		b, err := os.ReadFile(*saved)
		if err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
		cp, err := verify.ParseCheckpoint(b, vkey)
		if err != nil {
			return fmt.Errorf("--checkpoint %s: %w", *saved, err)
		}
		trusted = &cp
	}
	if *logDir != "" {
		rep, err := verify.Dir(ctx, *logDir, vkey)
		if err != nil {
			return fmt.Errorf("log NOT verified: %w", err)
		}
		if trusted != nil && rep.Checkpoint.Size < trusted.Size {
			return fmt.Errorf("log NOT verified: it has %d entries, fewer than the %d of your saved checkpoint: history was removed", rep.Checkpoint.Size, trusted.Size)
		}
		fmt.Printf("OK: %d entries verified against the signed checkpoint (tree size %d).\n", rep.Entries, rep.Checkpoint.Size)
		if trusted != nil {
			fmt.Println("Note: with --dir the saved checkpoint is compared by size only; use an export with --since for a consistency proof.")
		}
		return nil
	}
	f, err := os.Open(*export)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := verify.Export(ctx, f, vkey, verify.ExportOptions{Trusted: trusted})
	if err != nil {
		return fmt.Errorf("log NOT verified: %w", err)
	}
	kind := "selected entries, each with its inclusion proof"
	if rep.Complete {
		kind = "entries: the whole log, tree recomputed"
	}
	fmt.Printf("OK: %d %s, checkpoint tree size %d.\n", rep.Entries, kind, rep.Checkpoint.Size)
	if trusted != nil {
		if rep.ConsistentWithTrusted {
			fmt.Printf("OK: the log only grew since your saved checkpoint (size %d).\n", trusted.Size)
		} else {
			return errors.New("log NOT verified: could not prove it only grew since your saved checkpoint (export it with --since SIZE)")
		}
	}
	return nil
}
