// Package privfile writes and reads small private files, such as the
// hub's keys, so that a crash never leaves a half-written file and a file
// other users could read or change is refused rather than trusted.
//
// A write goes to a temporary file in the same directory, created with
// the final mode, synced, and then linked (WriteNew) or renamed (Replace)
// into place; the directory is synced so the new name survives a power
// cut. Readers therefore see the old file or the complete new one.
package privfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrExposed marks a private file whose mode lets group or others read or
// change it. Errors wrapping it tell the user to chmod 600 the file.
var ErrExposed = errors.New("file is readable or writable by other users")

// ErrTooLarge marks a file larger than the caller's limit.
var ErrTooLarge = errors.New("file too large")

// WriteNew creates path with data and mode perm, or fails wrapping
// fs.ErrExist if path exists: an existing file, for example a key another
// process created at the same moment, is never replaced. On any error path
// is either untouched or absent, and no temporary file is left behind.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// Replace writes data to path with mode perm, replacing any existing file
// in one step (rename). On error path keeps its old content.
func Replace(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// Read reads a private file of at most limit bytes. It refuses a file
// that group or others may read or write (ErrExposed), as ssh does with
// keys: such a secret may already be known or replaced. A missing file is
// an error wrapping fs.ErrNotExist. The error never contains the content.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// Windows has no group and other permission bits to check.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o: %w; chmod 600 it", path, fi.Mode().Perm(), ErrExposed)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: over %d bytes: %w", path, limit, ErrTooLarge)
	}
	return data, nil
}

// LoadOrCreate reads the private file at path (see Read) or, when there is
// none, writes the content create returns with mode 0600 (see WriteNew).
// If another process creates the file first, its content is returned
// instead. created reports whether this call wrote the file.
func LoadOrCreate(path string, limit int64, create func() ([]byte, error)) (data []byte, created bool, err error) {
	data, err = Read(path, limit)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, false, err
	}
	if data, err = create(); err != nil {
		return nil, false, err
	}
	err = WriteNew(path, data, 0o600)
	if errors.Is(err, fs.ErrExist) {
		data, err = Read(path, limit)
		return data, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// writeTemp writes data to a new temporary file next to path, with mode
// perm set before any byte is written, and syncs it. It returns the
// temporary file's name; on error nothing is left behind.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; Chmod sets perm exactly, whatever
	// the umask, before the content exists.
	werr := f.Chmod(perm)
	if werr == nil {
		_, werr = f.Write(data)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", path, werr)
	}
	return f.Name(), nil
}

// SyncDir makes a directory's new or renamed entries durable, as after
// creating a file that must survive a power cut. Windows cannot sync a
// directory; there it does nothing.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
