package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/candor-iot/candor/internal/updates"
	"github.com/candor-iot/candor/internal/updates/repo"
)

const updatesUsage = `candor updates repo init DIR
       candor updates repo add DIR --type TYPE --version V [--security] [--fixes ID,ID] [--notes TEXT] [--name PATH] FILE
       candor updates repo publish DIR
       candor updates repo timestamp DIR
       candor updates repo rotate-root DIR`

// runUpdates is the makers' tool: it keeps a TUF repository for a
// firmware line on disk (see internal/updates/repo).
func runUpdates(args []string) error {
	if len(args) < 3 || args[0] != "repo" {
		return fmt.Errorf("usage: %s", updatesUsage)
	}
	verb, dir, rest := args[1], args[2], args[3:]
	switch verb {
	case "init":
		r, err := repo.Init(dir)
		if err != nil {
			return err
		}
		root, err := os.ReadFile(filepath.Join(r.PublicDir(), "1.root.json"))
		if err != nil {
			return err
		}
		fmt.Printf("Created a TUF repository in %s.\nServe %s as the metadata URL.\nKeep %s offline.\nPin it in a manifest with \"trustedRootSha256\": %q\n",
			dir, r.PublicDir(), filepath.Join(dir, "keys", "root.key"), repo.RootSHA256(root))
		return nil
	case "add":
		return runUpdatesAdd(dir, rest)
	}
	r, err := repo.Open(dir)
	if err != nil {
		return err
	}
	switch verb {
	case "publish":
		err = r.Publish()
	case "timestamp":
		err = r.RefreshTimestamp()
	case "rotate-root":
		err = r.RotateRootKey()
	default:
		return fmt.Errorf("unknown verb %q; usage: %s", verb, updatesUsage)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s done (root version %d, targets version %d)\n", dir, verb, r.RootVersion(), r.TargetsVersion())
	return nil
}

func runUpdatesAdd(dir string, args []string) error {
	fs := newFlags("updates repo add", updatesUsage)
	typ := fs.String("type", "", "device type the image is for (the manifest's candor:deviceType)")
	ver := fs.String("version", "", "firmware version, a semantic version such as 1.2.0")
	security := fs.Bool("security", false, "a security update (installed automatically by default)")
	fixes := fs.String("fixes", "", "comma-separated advisory ids it fixes (CVE, GHSA, OSV)")
	notes := fs.String("notes", "", "release notes in plain words")
	name := fs.String("name", "", "target path (default TYPE/BASENAME of FILE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("name exactly one firmware FILE to add")
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	rel := updates.Release{DeviceType: *typ, Version: *ver, Notes: *notes, Security: *security}
	if *fixes != "" {
		rel.Fixes = strings.Split(*fixes, ",")
	}
	custom, err := rel.Custom()
	if err != nil {
		return fmt.Errorf("add %s: %w", file, err)
	}
	if *name == "" {
		*name = *typ + "/" + filepath.Base(file)
	}
	r, err := repo.Open(dir)
	if err != nil {
		return err
	}
	if err := r.Add(*name, data, custom); err != nil {
		return err
	}
	fmt.Printf("Staged %s (%d bytes) as version %s. Run 'candor updates repo publish %s' to sign it.\n", *name, len(data), *ver, dir)
	return nil
}
