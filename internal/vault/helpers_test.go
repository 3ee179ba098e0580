package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// env is a hub under test: a real SQLite file and a hub key.
type env struct {
	path string
	st   *sqlite.DB
	hub  *age.X25519Identity
}

func newEnv(t testing.TB) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "candor.db")
	hub, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{path: path, hub: hub}
	e.st = openStore(t, path)
	return e
}

func openStore(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	sqlitetest.Ensure(t, path) // a copy of a migrated store, unless reopening
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// vault opens a Vault on the env's store with the hub key.
func (e *env) vault(t testing.TB, opts ...func(*Options)) *Vault {
	t.Helper()
	o := Options{Hub: e.hub}
	for _, f := range opts {
		f(&o)
	}
	v, err := New(context.Background(), e.st, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// restart closes the store and vault and opens both again from the file,
// as after a process restart.
func (e *env) restart(t testing.TB, old *Vault, opts ...func(*Options)) *Vault {
	t.Helper()
	old.Close()
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	e.st = openStore(t, e.path)
	return e.vault(t, opts...)
}

func userEpoch(readings uint64, d time.Duration) func(*Options) {
	return func(o *Options) { o.UserHeldEpoch = Epoch{Readings: readings, Duration: d} }
}

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustEnroll(t testing.TB, v *Vault, owner string, s Settings) Enrollment {
	t.Helper()
	en, err := v.Enroll(context.Background(), owner, s)
	if err != nil {
		t.Fatalf("Enroll(%q, %+v): %v", owner, s, err)
	}
	return en
}

var t0 = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// aadOf is the additional data of reading i of a test device.
func aadOf(i int) []byte {
	return AppendReadingAAD(nil, "dev_1", "temperature", t0.Add(time.Duration(i)*time.Second))
}

func payloadOf(i int) []byte { return fmt.Appendf(nil, `{"celsius":%d.5,"i":%d}`, 20+i%5, i) }

type sealed struct {
	ct  []byte
	aad []byte
	pt  []byte
}

func sealN(t testing.TB, v *Vault, owner string, from, n int) []sealed {
	t.Helper()
	out := make([]sealed, n)
	for k := range n {
		i := from + k
		s := sealed{aad: aadOf(i), pt: payloadOf(i)}
		ct, err := v.Seal(owner, s.pt, s.aad)
		if err != nil {
			t.Fatalf("Seal #%d for %q: %v", i, owner, err)
		}
		s.ct = ct
		out[k] = s
	}
	return out
}

func mustOpen(t testing.TB, v *Vault, owner string, s sealed) {
	t.Helper()
	pt, err := v.Open(owner, s.ct, s.aad)
	if err != nil {
		t.Fatalf("Open for %q: %v", owner, err)
	}
	if !bytes.Equal(pt, s.pt) {
		t.Fatalf("Open for %q = %q, want %q", owner, pt, s.pt)
	}
}

func wantOpenErr(t testing.TB, v *Vault, owner string, s sealed, want error) {
	t.Helper()
	pt, err := v.Open(owner, s.ct, s.aad)
	if !errors.Is(err, want) {
		t.Fatalf("Open for %q = %q, %v; want %v", owner, pt, err, want)
	}
}

func mustOpenWith(t testing.TB, v *Vault, owner string, s sealed, id age.Identity) {
	t.Helper()
	pt, err := v.OpenWithIdentity(owner, s.ct, s.aad, id)
	if err != nil {
		t.Fatalf("OpenWithIdentity for %q: %v", owner, err)
	}
	if !bytes.Equal(pt, s.pt) {
		t.Fatalf("OpenWithIdentity for %q = %q, want %q", owner, pt, s.pt)
	}
}

func headerOf(t testing.TB, ct []byte) Header {
	t.Helper()
	h, err := ParseHeader(ct)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func storedKeys(t testing.TB, st store.KeyStore, owner string) []store.KeyRecord {
	t.Helper()
	ks, err := st.Keys(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// dbBytes returns the database file and its WAL and shared-memory files,
// concatenated: everything SQLite keeps on disk.
func dbBytes(t testing.TB, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// keysOf unwraps a stored key row with id and returns R, CK, the leaf of
// epoch 0 and MK_0.
func keysOf(t testing.TB, rec store.KeyRecord, id age.Identity) (root, ck, leaf0, mk0 secret) {
	t.Helper()
	kid, err := ParseKeyID(rec.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := unwrap(rec.Wrapped, id)
	if err != nil {
		t.Fatalf("unwrap key %s: %v", rec.KeyID, err)
	}
	root, err = decodePayload(p, rec.OwnerID, kid)
	if err != nil {
		t.Fatal(err)
	}
	ck = chainKey(&root, rec.OwnerID, kid)
	leaf0 = newDeriver(&ck).leaf(0)
	mk0 = epochKey(&leaf0)
	return root, ck, leaf0, mk0
}
