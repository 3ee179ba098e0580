package hub

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// When every commit fails (here triggers that refuse inserts into the
// readings tables, as a full disk refuses the write), /readyz answers 503,
// readings are refused without being acknowledged, and the log stays a
// few lines however many readings arrive; the first commit that succeeds
// makes the hub ready again.
func TestReadyzFollowsFailingCommits(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	id, secret := th.addDevice("Meter", "smart-meter")
	ready := func() int {
		t.Helper()
		code, _, _ := call(t, http.DefaultClient, "GET", th.URL()+"/readyz", "", nil)
		return code
	}
	ingestOnce := func(watts int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", th.URL()+"/api/v1/ingest/power", strings.NewReader(fmt.Sprintf(`{"watts": %d.918273}`, watts)))
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if code := ready(); code != 200 {
		t.Fatalf("/readyz of a fresh hub: %d", code)
	}

	// A second connection to the hub's database file makes every insert
	// into readings fail, as SQLite does on a full disk.
	// It waits for the hub's own writes (the store's merger and spare
	// rows write beside ingest) as the hub waits for it.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(th.dir, DBName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Both tables readings are written to: small commits go to the
	// staging table first (internal/store/sqlite/stage.go).
	for _, table := range []string{"readings", "readings_stage"} {
		if _, err := db.Exec(`CREATE TRIGGER disk_full_` + table + ` BEFORE INSERT ON ` + table + `
			BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
			t.Fatal(err)
		}
	}
	const refused = 60
	for i := range refused {
		resp := ingestOnce(1000 + i)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("reading %d while commits fail: %d (Retry-After %q), want 503 with Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	c, _, err := v5(t, th.MQTTAddr(), id, id, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 20 {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/power", QoS: 1, Payload: fmt.Appendf(nil, `{"watts": %d.918273}`, i)})
		if err == nil && resp != nil && resp.ReasonCode < 0x80 {
			t.Fatalf("MQTT reading %d acknowledged as stored while commits fail", i)
		}
	}
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while every commit fails: %d, want 503", code)
	}
	logs := th.logs.String()
	if n := strings.Count(logs, "level=ERROR"); n > 2 {
		t.Errorf("%d ERROR lines for %d refused readings, want at most 2:\n%s", n, refused+20, logs)
	}
	// Every reading's value ends in .918273: long enough that no timing,
	// port or id in the log holds it by chance.
	if strings.Contains(logs, "918273") {
		t.Error("the log carries reading contents")
	}

	for _, table := range []string{"readings", "readings_stage"} {
		if _, err := db.Exec(`DROP TRIGGER disk_full_` + table); err != nil {
			t.Fatal(err)
		}
	}
	if resp := ingestOnce(7); resp.StatusCode != http.StatusCreated {
		t.Fatalf("reading after the disk has room again: %d, want 201", resp.StatusCode)
	}
	if code := ready(); code != 200 {
		t.Errorf("/readyz after a commit succeeded: %d, want 200", code)
	}
}
