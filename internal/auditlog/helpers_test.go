package auditlog

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/auditlog/verify"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testKey is one key for the whole test binary: key generation is cheap,
// but a fixed name keeps failures readable.
var testKey = func() *Key {
	k, err := GenerateKey("candor.test/audit")
	if err != nil {
		panic(err)
	}
	return k
}()

func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	l, err := Open(context.Background(), dir, testKey, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

func newLog(t testing.TB) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	t.Cleanup(func() { l.Close() })
	return l, dir
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// event returns a valid, distinct event for index i, cycling through the
// kinds of event the hub logs.
func event(i int) Event {
	ev := kinds[i%len(kinds)]
	ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
	d := map[string]string{"n": fmt.Sprint(i)}
	for k, v := range ev.Detail {
		d[k] = v
	}
	ev.Detail = d
	return ev
}

var kinds = allKinds()

// allKinds is one event of every kind the issue lists.
func allKinds() []Event {
	hh := "hh_7f3a"
	return []Event{
		{Actor: Actor{Kind: ActorPerson, ID: "acc_alex"}, Action: ActionReadingsRead, Household: hh,
			Subject: Subject{Device: "dev_meter", Stream: "power", From: t0.Add(-time.Hour), To: t0}, Purpose: "dashboard",
			Detail: map[string]string{"readings": "120"}},
		{Actor: Actor{Kind: ActorHub}, Action: ActionReadingsForward, Household: hh,
			Subject: Subject{Device: "dev_meter", Stream: "power", Recipient: "rcp_energy_coop"}, Purpose: "forward:energy-coop",
			Detail: map[string]string{"readings": "1", "consent": "cns_12"}},
		{Actor: Actor{Kind: ActorPerson, ID: "acc_alex"}, Action: ActionConsentChange, Household: hh,
			Subject: Subject{Recipient: "rcp_energy_coop", Stream: "power"}, Purpose: "consent withdrawn",
			Detail: map[string]string{"consent": "cns_12", "state": "withdrawn"}},
		{Actor: Actor{Kind: ActorPerson, ID: "acc_sam"}, Action: ActionDataDelete, Household: hh,
			Subject: Subject{Device: "dev_cam", From: t0.Add(-48 * time.Hour), To: t0}, Purpose: "user request",
			Detail: map[string]string{"readings": "5402"}},
		{Actor: Actor{Kind: ActorHub}, Action: ActionDataShred, Household: hh,
			Subject: Subject{Device: "dev_cam"}, Purpose: "retention",
			Detail: map[string]string{"key": "dek_44"}},
		{Actor: Actor{Kind: ActorToken, ID: "tok_9"}, Action: ActionManifestChange, Household: hh,
			Subject: Subject{Device: "dev_thermo"}, Purpose: "firmware update",
			Detail: map[string]string{"manifest_version": "3"}},
		{Actor: Actor{Kind: ActorPerson, ID: "acc_alex"}, Action: ActionCredentialCreate, Household: hh,
			Subject: Subject{Device: "dev_door"}, Detail: map[string]string{"credential": "cred_1"}},
		{Actor: Actor{Kind: ActorOperator}, Action: ActionCredentialRotate, Household: hh,
			Subject: Subject{Device: "dev_door"}, Detail: map[string]string{"credential": "cred_2", "previous": "cred_1"}},
		{Actor: Actor{Kind: ActorPerson, ID: "acc_alex"}, Action: ActionCredentialRevoke, Household: hh,
			Subject: Subject{Device: "dev_door"}, Purpose: "lost device"},
		{Actor: Actor{Kind: ActorPerson, ID: "acc_alex"}, Action: ActionAccountCreate, Household: hh,
			Subject: Subject{Account: "acc_sam"}, Detail: map[string]string{"role": "member"}},
		{Actor: Actor{Kind: ActorOperator}, Action: ActionHouseholdCreate, Household: "hh_new"},
		{Actor: Actor{Kind: ActorPerson, ID: "acc_sam"}, Action: ActionAccountLogin, Household: hh,
			Subject: Subject{Account: "acc_sam"}, Detail: map[string]string{"session": "ses_5"}},
		{Actor: Actor{Kind: ActorDevice, ID: "dev_cam"}, Action: ActionSecurityFinding, Household: hh,
			Subject: Subject{Device: "dev_cam"}, Detail: map[string]string{"finding": "acl_denied", "count": "50"}},
		{Actor: Actor{Kind: ActorHub}, Action: ActionDeviceQuarantine, Household: hh,
			Subject: Subject{Device: "dev_cam"}, Purpose: "security policy", Detail: map[string]string{"finding": "acl_denied"}},
		{Actor: Actor{Kind: ActorRecipient, ID: "rcp_energy_coop"}, Action: "readings.receive", Household: hh,
			Subject: Subject{Stream: "power"}},
	}
}

func appendN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		idx, err := l.Append(context.Background(), event(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		if idx != uint64(i) {
			t.Fatalf("Append(%d) got index %d", i, idx)
		}
	}
}

// crashClose stops the log the way a crash would after the last Append
// returned: every acknowledged batch is on disk, but no final derived sync
// or checkpoint is written.
func crashClose(l *Log) {
	l.mu.Lock()
	l.closed = true
	l.space.Broadcast()
	l.mu.Unlock()
	signal(l.kick)
	<-l.done
	l.closeFiles()
	l.closeOnce.Do(func() {})
}

// refRoot is an independent RFC 6962 Merkle tree hash (section 2.1.1),
// written from the RFC rather than with the library under test.
func refRoot(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return leaves[0]
	default:
		k := 1 << (bits.Len(uint(n-1)) - 1) // largest power of two < n
		h := sha256.New()
		h.Write([]byte{1})
		h.Write(refRoot(leaves[:k]))
		h.Write(refRoot(leaves[k:]))
		return h.Sum(nil)
	}
}

func leafHash(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

// records reads the raw records of a closed log's entries file.
func records(t testing.TB, dir string) ([]byte, []logformat.Record) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, logformat.EntriesFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []logformat.Record
	off := len(logformat.FileHeader)
	for off < len(b) {
		r, n, err := logformat.DecodeRecord(b[off:], int64(off))
		if err != nil {
			t.Fatalf("decode record at %d: %v", off, err)
		}
		r.Payload = append([]byte(nil), r.Payload...)
		recs = append(recs, r)
		off += n
	}
	return b, recs
}

func writeEntries(t testing.TB, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, logformat.EntriesFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func checkpointOf(t testing.TB, l *Log) verify.Checkpoint {
	t.Helper()
	cp, err := verify.ParseCheckpoint(l.Checkpoint().Signed, l.VerifierKey())
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v", err)
	}
	return cp
}
