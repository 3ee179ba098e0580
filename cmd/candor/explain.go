package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/candor-iot/candor/internal/manifest"
)

// runExplain prints a device's (or device type's, or manifest file's)
// privacy and security label in plain language.
func runExplain(args []string) error {
	fs := newFlags("candor explain", "candor explain DEVICE-ID | --type TYPE | --file MANIFEST.json [--markdown]")
	dir := dataDirFlag(fs)
	typ := fs.String("type", "", "explain a device type's manifest instead of a device")
	file := fs.String("file", "", "explain a manifest file (validates it first; needs no running hub)")
	md := fs.Bool("markdown", false, "print Markdown instead of plain text")
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		m, err := manifest.Parse(filepath.Base(*file), b)
		if err != nil {
			return err
		}
		l := manifest.Explain(m, timeNow())
		if *md {
			fmt.Print(l.Markdown())
		} else {
			fmt.Print(l.Text())
		}
		return nil
	}
	var path string
	switch {
	case id != "":
		path = "/api/v1/devices/" + url.PathEscape(id) + "/label"
	case *typ != "":
		path = "/api/v1/manifests/" + url.PathEscape(*typ) + "/label"
	default:
		return errors.New("name a device id, --type TYPE or --file MANIFEST.json")
	}
	format := "text"
	if *md {
		format = "markdown"
	}
	text, err := newLocal(*dir).raw(http.MethodGet, path+"?format="+format)
	if err != nil {
		return err
	}
	_, err = io.WriteString(os.Stdout, text)
	return err
}
