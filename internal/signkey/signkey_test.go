package signkey

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/privfile"
)

const name = "test-signing-key"

func TestKeyFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Load(dir, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load before any key: %v", err)
	}
	key, err := LoadOrCreate(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for file, want := range map[string]os.FileMode{KeyFile(name): 0o600, PublicKeyFile(name): 0o644} {
			fi, err := os.Stat(filepath.Join(dir, file))
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v %v, want mode %04o", file, fi.Mode(), err, want)
			}
		}
	}
	again, err := LoadOrCreate(dir, name)
	if err != nil || !again.Equal(key) {
		t.Fatalf("second LoadOrCreate: a different key or %v", err)
	}
	if _, err := Create(dir, name); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing key: %v, want fs.ErrExist", err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, PublicKeyFile(name)))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pemBytes)
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("public key file: %v", err)
	}
	// A missing public key file is written again.
	os.Remove(filepath.Join(dir, PublicKeyFile(name)))
	if _, err := LoadOrCreate(dir, name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PublicKeyFile(name))); err != nil {
		t.Errorf("public key file not rewritten: %v", err)
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files in the key dir: %v", entries)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(filepath.Join(dir, KeyFile(name)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, name); !errors.Is(err, privfile.ErrExposed) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("world-readable key: %v", err)
		}
	}
	if _, err := ParsePublicKey([]byte("nope")); err == nil {
		t.Error("ParsePublicKey accepted garbage")
	}
}

// Keys of different names in one directory are independent.
func TestKeysByName(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir, "b")
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) {
		t.Fatal("two names gave one key")
	}
}
