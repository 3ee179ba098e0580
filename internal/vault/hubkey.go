package vault

import (
	"bytes"
	"fmt"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/privfile"
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
	b, _, err := privfile.LoadOrCreate(path, hubKeyMaxBytes, func() ([]byte, error) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, fmt.Errorf("vault: generate hub key: %w", err)
		}
		return fmt.Appendf(nil, "# Candor hub vault key: unwraps hub-assisted data keys. Keep it secret.\n# created: %s\n# public key: %s\n%s\n",
			time.Now().UTC().Format(time.RFC3339), id.Recipient(), id), nil
	})
	if err != nil {
		return nil, fmt.Errorf("vault: hub key: %w", err)
	}
	return parseHubIdentity(path, b)
}

// hubKeyMaxBytes bounds the key file read: an age identity file with its
// comments is well under a kilobyte.
const hubKeyMaxBytes = 64 << 10

func parseHubIdentity(path string, b []byte) (*age.X25519Identity, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(b))
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
