package sqlite

import (
	"database/sql/driver"
	"path/filepath"
	"testing"

	"github.com/candor-iot/candor/internal/store"
)

// The writer connection is replaced by database/sql, not by the store
// (after an interrupted statement modernc's ResetSession reports it bad),
// while another process appends: the new connection's data_version says
// nothing about the old one's and here equals it, so only knowing that
// the connection is new keeps the other process's seq from being handed
// out again. (The reviewer's test of the session 6 store review.)
func TestSeqAfterWriterReplacedTwoWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	a, b := openPath(t, path), openPath(t, path)
	a.stopMerger()
	b.stopMerger()
	one := func(dev string) []store.Reading {
		return []store.Reading{{DeviceID: dev, Stream: "s", Time: t0, Payload: []byte(`{}`)}}
	}
	ra := one("d1")
	if err := a.AppendReadings(ctx, ra); err != nil {
		t.Fatal(err)
	}
	before := a.seq.at
	// database/sql discards the writer connection, as it does one that
	// an interrupted statement left behind.
	conn, err := a.writer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
	// The other process appends and merges (as a deletion or its merger
	// would), so the seq it took is in no stage to collide with.
	rb := one("d2")
	if err := b.AppendReadings(ctx, rb); err != nil {
		t.Fatal(err)
	}
	if _, err := b.mergeStaged(ctx, 0); err != nil {
		t.Fatal(err)
	}
	ra2 := one("d3")
	if err := a.AppendReadings(ctx, ra2); err != nil {
		t.Fatalf("a's append after the drop: %v", err)
	}
	t.Logf("a: %d then %d; b: %d; a's writer at %+v, then %+v", ra[0].Seq, ra2[0].Seq, rb[0].Seq, before, a.seq.at)
	if ra2[0].Seq == rb[0].Seq {
		t.Errorf("seq %d handed out twice (b's d2 and a's d3)", rb[0].Seq)
	}
	if want := rb[0].Seq + 1; ra2[0].Seq != want {
		t.Errorf("a's append after b's took seq %d, want %d", ra2[0].Seq, want)
	}
	if a.seq.at.conn == before.conn {
		t.Errorf("the writer's new connection was not counted (%d)", before.conn)
	}
}
