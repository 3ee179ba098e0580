package vault

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// LoadOrCreateHubIdentity loads the hub's own age X25519 identity from
// path, or generates one and writes it there (mode 0600, never replacing
// an existing file). Hub-assisted data keys are wrapped to it, so:
//   - whoever holds this file and the database can read hub-assisted
//     history: keep it out of backups that leave the machine, or back it
//     up separately;
//   - losing it makes hub-assisted history unreadable by the hub (ErrLocked);
//     a person who had a recipient can still open it with their identity.
//
// The file has the format of age-keygen, so the age command line tool
// can use it too. A file that group or others can read or write is
// refused, as ssh does.
func LoadOrCreateHubIdentity(path string) (*age.X25519Identity, error) {
	id, err := loadHubIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	id, err = age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("vault: generate hub key: %w", err)
	}
	content := fmt.Sprintf("# Candor hub vault key: unwraps hub-assisted data keys. Keep it secret.\n# created: %s\n# public key: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err := writeNewFile(path, []byte(content), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
			return loadHubIdentity(path)
		}
		return nil, err
	}
	return id, nil
}

func loadHubIdentity(path string) (*age.X25519Identity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vault: hub key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("vault: hub key %s: mode %v lets other users read or change it; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault: hub key: %w", err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(b)))
	if err != nil {
		// Never echo the file: it is the secret.
		return nil, fmt.Errorf("vault: hub key %s: not an age identity file", path)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("vault: hub key %s: holds %d identities, want 1", path, len(ids))
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("vault: hub key %s: only an age X25519 identity is supported", path)
	}
	return id, nil
}

// writeNewFile writes data to a new file at path durably (temporary file,
// sync, link into place, sync the directory): a crash never leaves a
// half-written key, and an existing file is never replaced.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("vault: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	werr := tmp.Chmod(perm)
	if werr == nil {
		_, werr = tmp.Write(data)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("vault: write %s: %w", path, werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("vault: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
