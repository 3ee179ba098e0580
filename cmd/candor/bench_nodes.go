package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/candor-iot/candor/internal/bench"
)

// nodesFlags are the bench flags of the several-nodes comparison
// (bench.RunNodes).
type nodesFlags struct {
	store, postgresURL, nats string
	nodes                    int
	skipSingle               bool
}

func addNodesFlags(fs *flag.FlagSet) *nodesFlags {
	nf := &nodesFlags{}
	fs.StringVar(&nf.store, "store", "", "`postgres`: instead, run --nodes candor serve processes on a fresh PostgreSQL database and one NATS deployment, next to one SQLite hub")
	fs.IntVar(&nf.nodes, "nodes", 3, "with --store postgres, how many hub nodes")
	fs.StringVar(&nf.postgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "with --store postgres, a loopback server and a role that may create (and drop) the bench's database")
	fs.StringVar(&nf.nats, "nats", "nats://127.0.0.1:4222", "with --store postgres, the loopback NATS JetStream server the nodes share")
	fs.BoolVar(&nf.skipSingle, "skip-single", false, "with --store postgres, do not measure the single SQLite hub")
	return nf
}

// wanted reports whether the several-nodes comparison was asked for, and
// refuses its flags without --store postgres.
func (nf *nodesFlags) wanted(fs *flag.FlagSet) (bool, error) {
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "nodes", "postgres-url", "nats", "skip-single":
			if nf.store == "" && err == nil {
				err = fmt.Errorf("--%s needs --store postgres", f.Name)
			}
		}
	})
	return nf.store != "", err
}

// runNodesBench runs bench.RunNodes with the devices, duration, window,
// payload and hub flags of the bench flags.
func runNodesBench(ctx context.Context, o bench.Options, nf *nodesFlags) error {
	if nf.store != "postgres" {
		return fmt.Errorf("--store %q: the bench knows only --store postgres (the single-node bench uses SQLite without the flag)", nf.store)
	}
	if nf.nodes < 1 {
		return errors.New("--nodes must be at least 1")
	}
	start := time.Now()
	_, err := bench.RunNodes(ctx, bench.NodesOptions{Nodes: nf.nodes, Devices: o.Devices, Duration: o.Duration, Window: o.Window,
		PayloadBytes: o.PayloadBytes, Postgres: nf.postgresURL, NATS: nf.nats, SkipSingle: nf.skipSingle,
		HubFlags: o.HubFlags, JSONPath: o.JSONPath})
	fmt.Fprintf(os.Stderr, "bench: finished in %s\n", time.Since(start).Round(time.Second))
	return err
}
