// Package clustertest gives tests the NATS server the machine runs and a
// deployment name of their own on it, so tests running at once never hear
// each other, and deletes what the deployment left in JetStream. Only
// tests import it.
//
// The server is the one CANDOR_TEST_NATS names, by default
// nats://127.0.0.1:4222. When it cannot be reached the test is skipped
// with the reason, or fails in CI (package testenv).
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/testenv"
)

// EnvURL is the environment variable naming the server tests use.
const EnvURL = "CANDOR_TEST_NATS"

// DefaultURL is the server tests use when EnvURL is unset.
const DefaultURL = "nats://127.0.0.1:4222"

// URL returns the test NATS server's URL after checking that it accepts
// connections.
func URL(tb testing.TB) string {
	tb.Helper()
	s := os.Getenv(EnvURL)
	if s == "" {
		s = DefaultURL
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		tb.Fatalf("%s is not a nats:// URL", EnvURL)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		testenv.Missing(tb, "NATS at %s is not reachable (%v): start it (nats-server -js -a 127.0.0.1 -p 4222) or set %s", u.Host, err, EnvURL)
		return ""
	}
	_ = c.Close()
	return s
}

// Deployment is a deployment name no other test uses on the server at
// url; every subject of package cluster is under candor.<name>. The
// deployment's log stream is deleted when tb ends.
func Deployment(tb testing.TB, url string) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			tb.Errorf("delete the log stream of %s: %v", name, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			tb.Errorf("delete the log stream of %s: %v", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, cluster.StreamName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			tb.Errorf("delete the log stream of %s: %v", name, err)
		}
	})
	return name
}
