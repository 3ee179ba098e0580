package auditlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/auditlog/verify"
)

// The life of the log in a hub: open it at start-up (refusing to run on a
// tampered log), append events, serve checkpoints and proofs, and let a
// person verify an export of their entries offline.
func Example() {
	ctx := context.Background()
	dataDir, _ := os.MkdirTemp("", "candor-example-")
	defer os.RemoveAll(dataDir)
	dir := filepath.Join(dataDir, "audit")

	// Hub start.
	key, err := auditlog.LoadOrCreateKey(dir, "")
	if err != nil {
		log.Fatal(err)
	}
	alog, err := auditlog.Open(ctx, dir, key, auditlog.Options{})
	if errors.Is(err, auditlog.ErrTampered) {
		log.Fatalf("refusing to start: %v", err) // names the first altered entry
	}
	if err != nil {
		log.Fatal(err)
	}
	defer alog.Close()

	// Per event, before the action's result is returned to anyone.
	idx, err := alog.Append(ctx, auditlog.Event{
		Actor:     auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_alex"},
		Action:    auditlog.ActionReadingsRead,
		Household: "hh_1",
		Subject:   auditlog.Subject{Device: "dev_meter", Stream: "power"},
		Purpose:   "dashboard",
		Detail:    map[string]string{"readings": "120"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// API: the signed checkpoint and an inclusion proof for the entry.
	cp := alog.Checkpoint()
	proof, _ := alog.InclusionProof(ctx, idx, cp.Size)
	entry, _ := alog.Entry(ctx, idx)

	// A client, knowing only the hub's public verifier key.
	vkey := alog.VerifierKey()
	checked, err := verify.ParseCheckpoint(cp.Signed, vkey)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("included:", verify.Inclusion(checked, idx, entry.Data, proof) == nil)

	// A person's export, verified offline.
	var export bytes.Buffer
	if _, err := alog.Export(ctx, &export, auditlog.ExportOptions{Person: "acc_alex"}); err != nil {
		log.Fatal(err)
	}
	rep, err := verify.Export(ctx, &export, vkey, verify.ExportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("export entries verified:", rep.Entries)
	// Output:
	// included: true
	// export entries verified: 1
}
