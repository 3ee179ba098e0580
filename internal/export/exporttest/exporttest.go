// Package exporttest opens export archives in tests and checks them the
// way a person would: every file listed in index.json is there and has the
// SHA-256 the index gives. It serves the tests of every package that makes
// or serves archives (export, api, web, hub), so they check alike.
package exporttest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"
)

// IndexFile is one entry of index.json.
type IndexFile struct {
	Name     string `json:"name"`
	SHA256   string `json:"sha256"`
	Readings *int64 `json:"readings"`
}

// Archive is an opened export.
type Archive struct {
	Files map[string][]byte // by name
	Index []IndexFile
}

// Open unzips zb, fails t if it is not a ZIP or lacks index.json, and
// reports (t.Errorf) every listed file that is missing or does not match
// its SHA-256.
func Open(t testing.TB, zb []byte) Archive {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatalf("the export is not a ZIP: %v", err)
	}
	a := Archive{Files: map[string][]byte{}}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		a.Files[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
	}
	var index struct {
		Files []IndexFile `json:"files"`
	}
	if err := json.Unmarshal(a.Files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	a.Index = index.Files
	for _, f := range a.Index {
		b, ok := a.Files[f.Name]
		if !ok {
			t.Errorf("%s: listed in index.json but not in the archive", f.Name)
			continue
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: SHA-256 does not match index.json", f.Name)
		}
	}
	return a
}
