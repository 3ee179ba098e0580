package privfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// entries lists a directory, so a test can tell that no temporary file was
// left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteNewAndReplaceSetTheMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	for _, perm := range []fs.FileMode{0o600, 0o400, 0o644} {
		for name, write := range map[string]func(string, []byte, fs.FileMode) error{"WriteNew": WriteNew, "Replace": Replace} {
			t.Run(fmt.Sprintf("%s/%04o", name, perm), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "key")
				if err := write(path, []byte("secret"), perm); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != perm {
					t.Errorf("mode %04o, want %04o", fi.Mode().Perm(), perm)
				}
				if b, _ := os.ReadFile(path); string(b) != "secret" {
					t.Errorf("content %q", b)
				}
				if got := entries(t, filepath.Dir(path)); len(got) != 1 {
					t.Errorf("directory holds %v, want only the file", got)
				}
			})
		}
	}
}

func TestFailedWriteLeavesNoPartialFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the path to write
		write   func(string, []byte, fs.FileMode) error
		wantErr error
		check   func(t *testing.T, path string) // the state left at path
	}{{
		name: "WriteNew over an existing file",
		prepare: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "key")
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		},
		write:   WriteNew,
		wantErr: fs.ErrExist,
		check: func(t *testing.T, path string) {
			if b, err := os.ReadFile(path); err != nil || string(b) != "old" {
				t.Errorf("existing file changed: %q, %v", b, err)
			}
		},
	}, {
		name: "Replace onto a directory",
		prepare: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "key")
			if err := os.MkdirAll(filepath.Join(path, "inside"), 0o700); err != nil {
				t.Fatal(err)
			}
			return path
		},
		write: Replace,
		check: func(t *testing.T, path string) {
			if _, err := os.Stat(filepath.Join(path, "inside")); err != nil {
				t.Errorf("what was at the path changed: %v", err)
			}
		},
	}, {
		name: "WriteNew in a missing directory",
		prepare: func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "key")
		},
		write:   WriteNew,
		wantErr: fs.ErrNotExist,
		check: func(t *testing.T, path string) {
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file appeared: %v", err)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.prepare(t, dir)
			before := entries(t, dir)
			err := tt.write(path, []byte("new"), 0o600)
			if err == nil {
				t.Fatal("write succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want one wrapping %v", err, tt.wantErr)
			}
			tt.check(t, path)
			if after := entries(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("directory went from %v to %v: a temporary file was left", before, after)
			}
		})
	}
}

func TestReplaceChangesContentInOneStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cert")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Replace(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Read(path, 100)
	if err != nil || string(b) != "new" {
		t.Fatalf("after Replace: %q, %v", b, err)
	}
}

func TestReadRefusesFilesOthersCanReach(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	tests := []struct {
		perm    fs.FileMode
		size    int
		wantErr error
	}{
		{perm: 0o600, size: 10},
		{perm: 0o400, size: 10},
		{perm: 0o600, size: 11, wantErr: ErrTooLarge},
		{perm: 0o644, size: 10, wantErr: ErrExposed},
		{perm: 0o640, size: 10, wantErr: ErrExposed},
		{perm: 0o620, size: 10, wantErr: ErrExposed},
		{perm: 0o602, size: 10, wantErr: ErrExposed},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o/%d", tt.perm, tt.size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			content := bytes.Repeat([]byte("k"), tt.size)
			if err := WriteNew(path, content, tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := Read(path, 10)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), content) {
				t.Errorf("the error shows the secret: %v", err)
			}
			if err == nil && !bytes.Equal(got, content) {
				t.Errorf("read %q", got)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	calls := 0
	create := func() ([]byte, error) { calls++; return fmt.Appendf(nil, "key %d", calls), nil }

	first, created, err := LoadOrCreate(path, 100, create)
	if err != nil || !created || string(first) != "key 1" {
		t.Fatalf("first call: %q, created %v, %v", first, created, err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("file: %v, %v", fi, err)
	}
	again, created, err := LoadOrCreate(path, 100, create)
	if err != nil || created || string(again) != "key 1" || calls != 1 {
		t.Fatalf("second call: %q, created %v, %v, create called %d times", again, created, err, calls)
	}

	failing := filepath.Join(t.TempDir(), "key")
	boom := errors.New("no entropy")
	if _, _, err := LoadOrCreate(failing, 100, func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("create's error: %v", err)
	}
	if _, err := os.Stat(failing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was written although create failed: %v", err)
	}
}

func TestLoadOrCreateExposedFileIsNotReplaced(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreate(path, 100, func() ([]byte, error) { return []byte("new"), nil })
	if !errors.Is(err, ErrExposed) {
		t.Fatalf("error %v, want ErrExposed", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("the file was replaced: %q", b)
	}
}

// Two processes starting on one data directory race to create the key:
// all must end up with the one that was written.
func TestLoadOrCreateConcurrentCallersAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	const n = 8
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], _, errs[i] = LoadOrCreate(path, 100, func() ([]byte, error) { return fmt.Appendf(nil, "key %d", i), nil })
		})
	}
	wg.Wait()
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil || !bytes.Equal(got[i], onDisk) {
			t.Errorf("caller %d: %q, %v; the file holds %q", i, got[i], errs[i], onDisk)
		}
	}
}
