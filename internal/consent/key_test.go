package consent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := LoadKey(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKey before any key: %v", err)
	}
	key, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for name, want := range map[string]os.FileMode{KeyFile: 0o600, PublicKeyFile: 0o644} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v %v, want mode %04o", name, fi.Mode(), err, want)
			}
		}
	}
	again, err := LoadOrCreateKey(dir)
	if err != nil || !again.Equal(key) {
		t.Fatalf("second LoadOrCreateKey: a different key or %v", err)
	}
	if _, err := CreateKey(dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateKey over an existing key: %v, want fs.ErrExist", err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pemBytes)
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("public key file: %v", err)
	}
	// A missing public key file is written again.
	os.Remove(filepath.Join(dir, PublicKeyFile))
	if _, err := LoadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PublicKeyFile)); err != nil {
		t.Errorf("public key file not rewritten: %v", err)
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files in the key dir: %v", entries)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("world-readable key: %v", err)
		}
	}
	if _, err := ParsePublicKey([]byte("nope")); err == nil {
		t.Error("ParsePublicKey accepted garbage")
	}
	if id := KeyID(pub); !strings.HasPrefix(id, "ed25519:") || len(id) != len("ed25519:")+16 {
		t.Errorf("KeyID = %q", id)
	}
}
