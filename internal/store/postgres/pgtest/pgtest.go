// Package pgtest gives tests a database of their own on a real PostgreSQL
// server: each call creates one with a unique name and drops it when the
// test ends. Only tests import it.
//
// The server is the one CANDOR_TEST_POSTGRES names (a postgres:// URL of
// a role that may create databases), by default the local server at
// 127.0.0.1:5432 as user postgres. When it cannot be reached the test is
// skipped with the reason, or fails in CI (package testenv).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/testenv"
)

// EnvURL is the environment variable naming the server tests use.
const EnvURL = "CANDOR_TEST_POSTGRES"

// DefaultURL is the server tests use when EnvURL is unset: the machine's
// own PostgreSQL with trust authentication on loopback.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the URL of the server's maintenance database tests connect
// to for creating and dropping their databases.
func AdminURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database with a unique name, drops it
// (closing any connection left to it) when tb ends, and returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := AdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Missing(tb, "PostgreSQL at %s is not reachable (%v): start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set %s",
			redact(admin), err, EnvURL)
		return ""
	}
	defer conn.Close(context.Background())

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "candor_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create test database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("%s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// redact drops the password from a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
