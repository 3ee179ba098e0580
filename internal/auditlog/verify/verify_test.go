package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// These tests build logs by hand (with the RFC 6962 hasher and note),
// deliberately without the writer, so the verifier is checked against the
// specification rather than against the code it is meant to audit.

type handLog struct {
	signer note.Signer
	vkey   string
	leaves [][]byte
}

func newHandLog(t testing.TB, n int) *handLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, "candor.test/verify")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	h := &handLog{signer: s, vkey: vkey}
	for i := range n {
		h.leaves = append(h.leaves, fmt.Appendf(nil, `{"action":"readings.read","n":"%d"}`, i))
	}
	return h
}

func (h *handLog) root(size int) []byte {
	r := rangeFactory.NewEmptyRange(0)
	for _, l := range h.leaves[:size] {
		r.Append(LeafHash(l), nil)
	}
	if size == 0 {
		return EmptyRoot()
	}
	root, _ := r.GetRootHash(nil)
	return root
}

func (h *handLog) checkpoint(t testing.TB, size int) []byte {
	text := logformat.Checkpoint{Origin: "candor.test/verify", Size: uint64(size), Root: h.root(size)}.Marshal()
	b, err := note.Sign(&note.Note{Text: text}, h.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inclusion computes an inclusion proof naively from the leaves.
func (h *handLog) inclusion(index, size int) [][]byte {
	nodes, _ := proof.Inclusion(uint64(index), uint64(size))
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		sub := &handLog{leaves: h.leaves[begin:end]}
		hashes[i] = sub.root(int(end - begin))
	}
	p, _ := nodes.Rehash(hashes, hasher.HashChildren)
	return p
}

func (h *handLog) export(t testing.TB, size int, complete bool, pick func(int) bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.Encode(logformat.ExportHeader{Kind: "header", Format: logformat.ExportFormat, Checkpoint: string(h.checkpoint(t, size)), Complete: complete})
	n := 0
	for i := range size {
		if !complete && !pick(i) {
			continue
		}
		e := logformat.ExportEntry{Kind: "entry", Index: uint64(i), LeafHash: LeafHash(h.leaves[i]), Event: h.leaves[i]}
		if !complete {
			e.Proof = h.inclusion(i, size)
		}
		enc.Encode(e)
		n++
	}
	enc.Encode(logformat.ExportEnd{Kind: "end", Entries: uint64(n)})
	return b.String()
}

func TestParseCheckpoint(t *testing.T) {
	h := newHandLog(t, 5)
	cp, err := ParseCheckpoint(h.checkpoint(t, 5), h.vkey)
	if err != nil || cp.Size != 5 || !bytes.Equal(cp.Root, h.root(5)) {
		t.Fatalf("%+v %v", cp, err)
	}
	other := newHandLog(t, 5)
	if _, err := ParseCheckpoint(h.checkpoint(t, 5), other.vkey); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("other key: %v", err)
	}
	signed := h.checkpoint(t, 5)
	forged := bytes.Replace(signed, []byte("\n5\n"), []byte("\n6\n"), 1)
	if _, err := ParseCheckpoint(forged, h.vkey); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("edited checkpoint: %v", err)
	}
	// A note signed by the key but whose origin is another name.
	text := logformat.Checkpoint{Origin: "someone.else", Size: 1, Root: h.root(1)}.Marshal()
	b, _ := note.Sign(&note.Note{Text: text}, h.signer)
	if _, err := ParseCheckpoint(b, h.vkey); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("wrong origin: %v", err)
	}
	if _, err := ParseCheckpoint(signed, "not a key"); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("bad verifier key: %v", err)
	}
}

func TestExportHandBuilt(t *testing.T) {
	ctx := context.Background()
	h := newHandLog(t, 33)
	if _, err := Export(ctx, strings.NewReader(h.export(t, 33, true, nil)), h.vkey, ExportOptions{}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	odd := func(i int) bool { return i%2 == 1 }
	rep, err := Export(ctx, strings.NewReader(h.export(t, 33, false, odd)), h.vkey, ExportOptions{})
	if err != nil || rep.Entries != 16 {
		t.Fatalf("selection: %+v %v", rep, err)
	}
	// Trusted older checkpoint, complete export: the old root is recomputed.
	old, _ := ParseCheckpoint(h.checkpoint(t, 20), h.vkey)
	rep, err = Export(ctx, strings.NewReader(h.export(t, 33, true, nil)), h.vkey, ExportOptions{Trusted: &old})
	if err != nil || !rep.ConsistentWithTrusted {
		t.Fatalf("trusted: %+v %v", rep, err)
	}
	// A "newer" export that is smaller than the trusted checkpoint: rollback.
	big, _ := ParseCheckpoint(h.checkpoint(t, 33), h.vkey)
	if _, err := Export(ctx, strings.NewReader(h.export(t, 20, true, nil)), h.vkey, ExportOptions{Trusted: &big}); !errors.Is(err, ErrTampered) {
		t.Fatalf("rollback: %v", err)
	}
	// A selection without a consistency proof cannot show consistency.
	if _, err := Export(ctx, strings.NewReader(h.export(t, 33, false, odd)), h.vkey, ExportOptions{Trusted: &old}); err == nil {
		t.Fatal("selection without a consistency proof claimed consistency")
	}
	// A selection entry whose proof does not match.
	sel := h.export(t, 33, false, odd)
	sel = strings.Replace(sel, `"n":"7"`, `"n":"8"`, 1)
	var te *TamperError
	if _, err := Export(ctx, strings.NewReader(sel), h.vkey, ExportOptions{}); !errors.As(err, &te) || te.Index != 7 {
		t.Fatalf("edited selection: %v", err)
	}
}

func TestConsistencyAndInclusion(t *testing.T) {
	h := newHandLog(t, 64)
	for size := 1; size <= 64; size++ {
		cp := Checkpoint{Origin: "o", Size: uint64(size), Root: h.root(size)}
		for i := range size {
			if err := Inclusion(cp, uint64(i), h.leaves[i], h.inclusion(i, size)); err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, size, err)
			}
		}
		if err := Inclusion(cp, uint64(size), h.leaves[0], nil); !errors.Is(err, ErrTampered) {
			t.Fatalf("index beyond size: %v", err)
		}
	}
	a := Checkpoint{Origin: "o", Size: 10, Root: h.root(10)}
	b := Checkpoint{Origin: "p", Size: 10, Root: h.root(10)}
	if err := Consistency(a, b, nil); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("different origins: %v", err)
	}
	c := Checkpoint{Origin: "o", Size: 9, Root: h.root(9)}
	if err := Consistency(a, c, nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("shrinking log: %v", err)
	}
}

// FuzzExport: the export verifier never panics on any input.
func FuzzExport(f *testing.F) {
	h := newHandLog(f, 9)
	f.Add([]byte(h.export(f, 9, true, nil)))
	f.Add([]byte(h.export(f, 9, false, func(i int) bool { return i%3 == 0 })))
	f.Add([]byte(`{"kind":"header","format":"candor-auditlog-export/1","checkpoint":"x\n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		Export(context.Background(), bytes.NewReader(b), h.vkey, ExportOptions{})
	})
}
