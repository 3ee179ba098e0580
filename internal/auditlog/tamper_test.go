package auditlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/auditlog/verify"
)

// rebuild re-encodes records (with fresh checksums) after the file header.
func rebuild(recs []logformat.Record) []byte {
	b := append([]byte(nil), logformat.FileHeader...)
	for _, r := range recs {
		b = logformat.AppendRecord(b, r.Index, r.Payload)
	}
	return b
}

// editedPayload is entry k's event with one detail changed, re-encoded
// canonically: a forger's edit, not a flipped bit.
func editedPayload(t *testing.T, p []byte) []byte {
	ev, err := ParseEvent(p)
	if err != nil {
		t.Fatal(err)
	}
	ev.Purpose = "nothing to see here"
	return ev.appendCanonical(nil)
}

// Each case tampers with entry k of a closed 40-entry log. Open (full
// check) and the offline verifier must both refuse and name k as the first
// altered index. "naive" edits leave the record checksums or indices wrong;
// "forged" ones recompute them, so only the Merkle tree can tell.
func TestTamperingIsDetectedAtTheFirstBadIndex(t *testing.T) {
	const n, k = 40, 17
	cases := []struct {
		name   string
		tamper func(t *testing.T, b []byte, recs []logformat.Record) []byte
	}{
		{"edit one byte (naive)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			b[recs[k].Offset+logformat.RecordHeaderSize+5] ^= 0x01
			return b
		}},
		{"edit one header byte (naive)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			b[recs[k].Offset+12] ^= 0x80 // inside the index field
			return b
		}},
		{"edit event (forged checksum)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			recs[k].Payload = editedPayload(t, recs[k].Payload)
			return rebuild(recs)
		}},
		{"delete entry (naive)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			return append(append([]byte(nil), b[:recs[k].Offset]...), b[recs[k+1].Offset:]...)
		}},
		{"delete entry (forged renumbering)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			recs = append(recs[:k:k], recs[k+1:]...)
			for i := range recs {
				recs[i].Index = uint64(i)
			}
			return rebuild(recs)
		}},
		{"swap entries k and k+1 (naive)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			recs[k], recs[k+1] = recs[k+1], recs[k]
			out := append([]byte(nil), logformat.FileHeader...)
			for _, r := range recs { // keep their original (now wrong) indices
				out = logformat.AppendRecord(out, r.Index, r.Payload)
			}
			return out
		}},
		{"swap entries k and k+1 (forged renumbering)", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			recs[k].Payload, recs[k+1].Payload = recs[k+1].Payload, recs[k].Payload
			return rebuild(recs)
		}},
		{"insert a forged entry", func(t *testing.T, b []byte, recs []logformat.Record) []byte {
			forged := logformat.Record{Payload: editedPayload(t, recs[k].Payload)}
			recs = append(recs[:k:k], append([]logformat.Record{forged}, recs[k:]...)...)
			for i := range recs {
				recs[i].Index = uint64(i)
			}
			return rebuild(recs)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, dir := newLog(t)
			appendN(t, l, 0, n)
			l.Close()
			b, recs := records(t, dir)
			writeEntries(t, dir, c.tamper(t, b, recs))
			before, _ := os.ReadFile(filepath.Join(dir, logformat.EntriesFile))

			_, err := Open(context.Background(), dir, testKey, Options{Logger: quiet})
			checkTamper(t, "Open", err, k, true)
			_, err = verify.Dir(context.Background(), dir, testKey.VerifierKey())
			checkTamper(t, "verify.Dir", err, k, true)

			// Open changed nothing: the evidence is as found.
			after, _ := os.ReadFile(filepath.Join(dir, logformat.EntriesFile))
			if !bytes.Equal(before, after) {
				t.Fatal("Open modified a tampered entries file")
			}
		})
	}
}

func checkTamper(t *testing.T, who string, err error, k uint64, exact bool) {
	t.Helper()
	var te *TamperError
	if !errors.As(err, &te) || !errors.Is(err, ErrTampered) {
		t.Fatalf("%s: got %v, want a TamperError", who, err)
	}
	if te.Index != k || te.Exact != exact {
		t.Fatalf("%s: index %d (exact %v), want %d (exact %v): %v", who, te.Index, te.Exact, k, exact, err)
	}
	t.Logf("%s: %v", who, err)
}

// A forger who also rewrites the stored leaf hash is still caught (the
// signed root does not match) but the exact index is no longer knowable.
func TestTamperingWithStoredHashesToo(t *testing.T) {
	const n, k = 40, 9
	l, dir := newLog(t)
	appendN(t, l, 0, n)
	l.Close()
	_, recs := records(t, dir)
	recs[k].Payload = editedPayload(t, recs[k].Payload)
	writeEntries(t, dir, rebuild(recs))
	lf, err := os.OpenFile(filepath.Join(dir, logformat.LevelFile(0)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	lf.WriteAt(leafHash(recs[k].Payload), k*32)
	lf.Close()
	_, err = Open(context.Background(), dir, testKey, Options{Logger: quiet})
	checkTamper(t, "Open", err, 0, false)
	_, err = verify.Dir(context.Background(), dir, testKey.VerifierKey())
	checkTamper(t, "verify.Dir", err, 0, false)
}

// Truncating into the signed entries is tampering, never "repair".
func TestTruncatingSignedEntriesIsTampering(t *testing.T) {
	const n = 12
	l, dir := newLog(t)
	appendN(t, l, 0, n)
	l.Close()
	b, recs := records(t, dir)
	writeEntries(t, dir, b[:recs[n-1].Offset+7])
	_, err := Open(context.Background(), dir, testKey, Options{Logger: quiet})
	checkTamper(t, "Open", err, n-1, true)
	writeEntries(t, dir, b[:recs[n-3].Offset])
	_, err = verify.Dir(context.Background(), dir, testKey.VerifierKey())
	checkTamper(t, "verify.Dir", err, n-3, true)
}

// The tail check (CheckTail) re-verifies only what changed since the
// derived files were last flushed; an older edited entry is then caught
// when read, or by Verify.
func TestTailCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 0, 50)
	l.Close() // flushes derived files: synced = 50
	l = openLog(t, dir, Options{SyncDerivedEvery: 1 << 62})
	appendN(t, l, 50, 50)
	crashClose(l) // synced stays 50, checkpoint signs 100
	_, pristine := records(t, dir)
	edited := func(k int) []byte {
		recs := append([]logformat.Record(nil), pristine...)
		recs[k].Payload = editedPayload(t, recs[k].Payload)
		return rebuild(recs)
	}

	// An edit after the synced point: the tail check finds it and names it.
	writeEntries(t, dir, edited(70))
	_, err := Open(ctx, dir, testKey, Options{Check: CheckTail, Logger: quiet})
	checkTamper(t, "Open(CheckTail)", err, 70, true)

	// A same-length edit before it: Open(CheckTail) does not re-read it
	// (one that changed the length would shift the synced offset and be
	// caught at Open), but reads and Verify do.
	recs := append([]logformat.Record(nil), pristine...)
	recs[20].Payload = bytes.Replace(recs[20].Payload, []byte(`"n":"20"`), []byte(`"n":"21"`), 1)
	writeEntries(t, dir, rebuild(recs))
	l = openLog(t, dir, Options{Check: CheckTail})
	defer l.Close()
	if r := l.Recovery(); r.Check != CheckTail || r.RebuiltFrom != 50 {
		t.Fatalf("recovery %v, want tail check rebuilding from 50", r)
	}
	_, err = l.Entry(ctx, 20)
	checkTamper(t, "Entry", err, 20, true)
	_, err = l.Verify(ctx)
	checkTamper(t, "Verify", err, 20, true)
	if _, err := l.Entry(ctx, 21); err != nil {
		t.Fatalf("intact entry 21: %v", err)
	}
}

// appendRaw appends hand-made records to a closed log's entries file, as
// if a crash had hit after they were written but before they were signed.
func appendRaw(t *testing.T, dir string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, logformat.EntriesFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailIsRepairedAndReported(t *testing.T) {
	ctx := context.Background()
	const n = 10
	rec := func(i int) []byte {
		ev := event(i)
		return logformat.AppendRecord(nil, uint64(i), ev.appendCanonical(nil))
	}
	cases := []struct {
		name      string
		tail      []byte
		adopted   uint64
		truncated bool
	}{
		{"garbage after the last record", []byte("\x00\x00\x01\x00garbage!garbage!garbage"), 0, true},
		{"zeros (a hole from a lost write)", make([]byte, 4096), 0, true},
		{"record cut mid-header", rec(n)[:9], 0, true},
		{"record cut mid-payload", rec(n)[:40], 0, true},
		{"complete unsigned records, then a cut one", append(append(rec(n), rec(n+1)...), rec(n + 2)[:30]...), 2, true},
		{"complete unsigned records only", append(rec(n), rec(n+1)...), 2, false},
		{"record with a bad checksum", func() []byte { r := rec(n); r[len(r)-1] ^= 1; return r }(), 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, dir := newLog(t)
			appendN(t, l, 0, n)
			saved := checkpointOf(t, l)
			l.Close()
			appendRaw(t, dir, c.tail)

			// The offline verifier accepts it (nothing signed is touched)
			// and reports the torn bytes.
			rep, err := verify.Dir(ctx, dir, testKey.VerifierKey())
			if err != nil {
				t.Fatalf("verify.Dir: %v", err)
			}
			if (rep.Damaged != nil) != c.truncated || rep.Unsigned != c.adopted {
				t.Fatalf("verify.Dir report: damaged %v, unsigned %d", rep.Damaged, rep.Unsigned)
			}

			l = openLog(t, dir, Options{})
			defer l.Close()
			r := l.Recovery()
			if (r.Truncated != nil) != c.truncated || r.Adopted != c.adopted || r.CheckpointSize != n {
				t.Fatalf("recovery %v", r)
			}
			if c.truncated && r.Truncated.Index != n+c.adopted {
				t.Fatalf("truncated at index %d, want %d", r.Truncated.Index, n+c.adopted)
			}
			t.Log(r)
			// The repair is recorded in the log itself...
			want := n + c.adopted + 1
			if l.Size() != want {
				t.Fatalf("size %d, want %d", l.Size(), want)
			}
			last, err := l.Entry(ctx, want-1)
			if err != nil || last.Event.Action != ActionAuditRecover {
				t.Fatalf("last entry %+v, %v", last.Event, err)
			}
			// ...and the log is still an extension of the saved checkpoint.
			now := checkpointOf(t, l)
			p, err := l.ConsistencyProof(ctx, saved.Size, now.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := verify.Consistency(saved, now, p); err != nil {
				t.Fatal(err)
			}
			// Appends continue after the repaired tail.
			if _, err := l.Append(ctx, event(99)); err != nil {
				t.Fatal(err)
			}
			l.Close()
			if _, err := verify.Dir(ctx, dir, testKey.VerifierKey()); err != nil {
				t.Fatalf("after repair: %v", err)
			}
		})
	}
}

func TestTornOrMissingCheckpointSlot(t *testing.T) {
	ctx := context.Background()
	l, dir := newLog(t)
	appendN(t, l, 0, 5)
	l.Close()
	// Tear the newer slot: the other one still holds a valid checkpoint.
	st0, _ := os.ReadFile(filepath.Join(dir, logformat.StateFiles[0]))
	st1, _ := os.ReadFile(filepath.Join(dir, logformat.StateFiles[1]))
	newer := logformat.StateFiles[0]
	if s0, _ := logformat.ParseState(st0); s0.Seq < mustState(t, st1).Seq {
		newer = logformat.StateFiles[1]
	}
	p := filepath.Join(dir, newer)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o600)
	l = openLog(t, dir, Options{})
	if l.Size() != 5 {
		t.Fatalf("size %d after a torn checkpoint slot", l.Size())
	}
	l.Close()

	// No valid checkpoint at all, with entries present: refuse.
	for _, name := range logformat.StateFiles {
		os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o600)
	}
	if _, err := Open(ctx, dir, testKey, Options{Logger: quiet}); !errors.Is(err, verify.ErrCheckpoint) {
		t.Fatalf("Open without a valid checkpoint: %v", err)
	}
	for _, name := range logformat.StateFiles {
		os.Remove(filepath.Join(dir, name))
	}
	if _, err := Open(ctx, dir, testKey, Options{Logger: quiet}); !errors.Is(err, verify.ErrCheckpoint) {
		t.Fatalf("Open with deleted checkpoints: %v", err)
	}
}

func mustState(t *testing.T, b []byte) logformat.State {
	s, err := logformat.ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Derived files are rebuilt from the entries when they are damaged or
// missing; that is repair of a cache, not tampering.
func TestDerivedFilesAreRebuilt(t *testing.T) {
	l, dir := newLog(t)
	appendN(t, l, 0, 70)
	want := checkpointOf(t, l)
	l.Close()
	// Damage a higher-level node and the offsets, delete another level.
	f, _ := os.OpenFile(filepath.Join(dir, logformat.LevelFile(2)), os.O_RDWR, 0)
	f.WriteAt(bytes.Repeat([]byte{0xee}, 32), 3*32)
	f.Close()
	f, _ = os.OpenFile(filepath.Join(dir, logformat.OffsetsFile), os.O_RDWR, 0)
	var junk [8]byte
	binary.BigEndian.PutUint64(junk[:], 12345)
	f.WriteAt(junk[:], 8*33)
	f.Close()
	os.Remove(filepath.Join(dir, logformat.LevelFile(4)))
	os.WriteFile(filepath.Join(dir, logformat.LevelFile(0)), nil, 0o600)
	checkRebuilt(t, dir, want)
}

// Damage to one inner node alone, below the synced point, is found by the
// full check too (it is not on any compact range the root check reads).
func TestDamagedInnerNodeIsRebuilt(t *testing.T) {
	l, dir := newLog(t)
	appendN(t, l, 0, 70)
	want := checkpointOf(t, l)
	l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, logformat.LevelFile(2)), os.O_RDWR, 0)
	f.WriteAt(bytes.Repeat([]byte{0xee}, 32), 3*32)
	f.Close()
	checkRebuilt(t, dir, want)
}

func checkRebuilt(t *testing.T, dir string, want verify.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	l := openLog(t, dir, Options{})
	defer l.Close()
	if r := l.Recovery(); r.RebuiltFrom != 0 || r.Repaired() {
		t.Fatalf("recovery %v, want derived files rebuilt from 0 and no repair", r)
	}
	got := checkpointOf(t, l)
	if got.Size != want.Size || !bytes.Equal(got.Root, want.Root) {
		t.Fatal("root changed by rebuilding derived files")
	}
	for i := range 70 {
		p, err := l.InclusionProof(ctx, uint64(i), 70)
		if err != nil {
			t.Fatal(err)
		}
		e, err := l.Entry(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.Inclusion(got, uint64(i), e.Data, p); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

func TestExportVerifiesOffline(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t)
	appendN(t, l, 0, 30)
	old := checkpointOf(t, l)
	appendN(t, l, 30, 45)

	var full bytes.Buffer
	sum, err := l.Export(ctx, &full, ExportOptions{})
	if err != nil || !sum.Complete || sum.Entries != 75 {
		t.Fatalf("export: %+v, %v", sum, err)
	}
	rep, err := verify.Export(ctx, bytes.NewReader(full.Bytes()), l.VerifierKey(), verify.ExportOptions{Trusted: &old})
	if err != nil || rep.Entries != 75 || !rep.ConsistentWithTrusted {
		t.Fatalf("verify complete export: %+v, %v", rep, err)
	}

	// A person's export: their entries only, each with a proof, plus a
	// consistency proof from the checkpoint they saved last time.
	var mine bytes.Buffer
	sum, err = l.Export(ctx, &mine, ExportOptions{Person: "acc_sam", ConsistencyFrom: old.Size})
	if err != nil || sum.Complete || sum.Entries == 0 {
		t.Fatalf("person export: %+v, %v", sum, err)
	}
	var indices []uint64
	rep, err = verify.Export(ctx, bytes.NewReader(mine.Bytes()), l.VerifierKey(), verify.ExportOptions{
		Trusted: &old,
		OnEntry: func(i uint64, leaf []byte) error {
			ev, err := ParseEvent(leaf)
			if err != nil {
				return err
			}
			if ev.Actor.ID != "acc_sam" && ev.Subject.Account != "acc_sam" {
				t.Errorf("entry %d is not about acc_sam: %+v", i, ev)
			}
			indices = append(indices, i)
			return nil
		},
	})
	if err != nil || !rep.ConsistentWithTrusted || uint64(len(indices)) != sum.Entries {
		t.Fatalf("verify person export: %+v, %v", rep, err)
	}
	// Pretty-printing an export (a person opening it in an editor) does not
	// break it: the leaf data is the canonical form of each event.
	pretty := reformat(t, mine.Bytes())
	if _, err := verify.Export(ctx, bytes.NewReader(pretty), l.VerifierKey(), verify.ExportOptions{}); err != nil {
		t.Fatalf("reformatted export: %v", err)
	}

	var hh bytes.Buffer
	if _, err := l.Export(ctx, &hh, ExportOptions{Household: "hh_new"}); err != nil {
		t.Fatal(err)
	}
	rep, err = verify.Export(ctx, &hh, l.VerifierKey(), verify.ExportOptions{})
	if err != nil || rep.Entries != 5 || rep.Filter["household"] != "hh_new" {
		t.Fatalf("household export: %+v, %v", rep, err)
	}
}

// reformat re-serialises every line of an export with spaces after the
// separators and with keys reordered (via a map).
func reformat(t *testing.T, export []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(bytes.TrimSpace(export), []byte("\n")) {
		var m map[string]any
		if err := jsonUnmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		b, _ := jsonMarshalIndent(m)
		out.Write(bytes.ReplaceAll(b, []byte("\n"), nil))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func TestTamperedExportNamesTheFirstBadIndex(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t)
	appendN(t, l, 0, 25)
	var buf bytes.Buffer
	if _, err := l.Export(ctx, &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") // header, 25 entries, end
	const k = 11
	entry := func(i int) int { return i + 1 }
	join := func(ls []string) string { return strings.Join(ls, "\n") + "\n" }
	cases := []struct {
		name  string
		lines func() []string
		index uint64
		exact bool
	}{
		{"edit an event", func() []string {
			ls := append([]string(nil), lines...)
			ls[entry(k)] = strings.Replace(ls[entry(k)], `"n":"11"`, `"n":"12"`, 1)
			return ls
		}, k, true},
		{"delete an entry line", func() []string {
			ls := append([]string(nil), lines...)
			return append(ls[:entry(k)], ls[entry(k)+1:]...)
		}, k, true},
		{"swap two entry lines", func() []string {
			ls := append([]string(nil), lines...)
			ls[entry(k)], ls[entry(k+1)] = ls[entry(k+1)], ls[entry(k)]
			return ls
		}, k, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify.Export(ctx, strings.NewReader(join(c.lines())), l.VerifierKey(), verify.ExportOptions{})
			checkTamper(t, "verify.Export", err, c.index, c.exact)
		})
	}
	// Cut short: no end line.
	_, err := verify.Export(ctx, strings.NewReader(join(lines[:len(lines)-1])), l.VerifierKey(), verify.ExportOptions{})
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("export without its end line: %v", err)
	}
	// A different log's checkpoint as the trusted one: refused.
	otherKey, _ := GenerateKey("candor.test/other")
	other, err := Open(ctx, t.TempDir(), otherKey, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	appendN(t, other, 0, 3)
	ocp := checkpointOf(t, other)
	if _, err := verify.Export(ctx, strings.NewReader(buf.String()), l.VerifierKey(), verify.ExportOptions{Trusted: &ocp}); err == nil {
		t.Fatal("export verified against another log's checkpoint")
	}
	// A rewritten history: same key, a different first entry.
	forkDir := t.TempDir()
	fork := openLog(t, forkDir, Options{})
	for i := 1; i <= 3; i++ {
		if _, err := fork.Append(ctx, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	fcp := checkpointOf(t, fork)
	fork.Close()
	if _, err := verify.Export(ctx, strings.NewReader(buf.String()), l.VerifierKey(), verify.ExportOptions{Trusted: &fcp}); !errors.Is(err, ErrTampered) {
		t.Fatalf("forked history accepted: %v", err)
	}
}
