package identity

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// goodPassword passes every rule of credential.CheckPassword for the
// usernames used in these tests.
const (
	goodPassword  = "correct horse battery staple"
	otherPassword = "violet tugboat under moonlight"
	thirdPassword = "seven quiet orchards in fog"
)

// openStore opens a fresh SQLite store in a temporary directory.
func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	return openStoreAt(t, sqlitetest.Path(t))
}

func openStoreAt(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newService returns a Service over a fresh SQLite store.
func newService(t *testing.T) (*Service, *sqlite.DB) {
	t.Helper()
	db := openStore(t)
	return New(db, Options{}), db
}

// newHousehold creates a household directly in the store.
func newHousehold(t *testing.T, db *sqlite.DB, id string) string {
	t.Helper()
	if err := db.CreateHousehold(t.Context(), store.Household{ID: id, Name: "Home " + id, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatalf("create household %s: %v", id, err)
	}
	return id
}

// fakeClock is a settable clock for s.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ctx returns a context bounded by the test's deadline.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// revocations records OnRevoke callbacks.
type revocations struct {
	mu  sync.Mutex
	ids []string
}

func (r *revocations) record(id string) {
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
}

func (r *revocations) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}
