package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/candor-iot/candor/internal/cluster/clustertest"
	"github.com/candor-iot/candor/internal/hub"
	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// serveNode starts `candor serve` as one node of a deployment and returns
// the process and its MQTT address once the banner is printed.
func serveNode(t *testing.T, dir, dbURL, natsURL, deployment string) (*exec.Cmd, string) {
	t.Helper()
	return serveHub(t, dir, "--store", dbURL, "--nats", natsURL, "--deployment", deployment)
}

func tempDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "candor") // short: the control socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestKillOneOfThreeNodesLosesNoAcknowledgedReading runs three `candor
// serve` processes on one PostgreSQL database and one NATS deployment. A
// device publishes at QoS 1 to node A from eight goroutines at once, as
// fast as it is acknowledged; A is killed with SIGKILL; the device connects to node B and goes on. Every
// reading acknowledged by A or B is then read back through node C, and
// the transparency logs of the surviving nodes verify offline.
func TestKillOneOfThreeNodesLosesNoAcknowledgedReading(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	natsURL := clustertest.URL(t)
	dep := clustertest.Deployment(t, natsURL)

	dirs := []string{tempDataDir(t), tempDataDir(t), tempDataDir(t)}
	srvA, addrA := serveNode(t, dirs[0], dbURL, natsURL, dep)
	for _, dir := range dirs[1:] {
		for _, name := range hub.SharedKeyFiles {
			b, err := os.ReadFile(filepath.Join(dirs[0], name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, addrB := serveNode(t, dirs[1], dbURL, natsURL, dep)
	serveNode(t, dirs[2], dbURL, natsURL, dep)

	// The device is added through C, over C's control socket.
	out, stderr, code := run(t, "", "device", "add", "Kitchen", "--type", "thermostat", "--data", dirs[2], "--json")
	if code != 0 {
		t.Fatalf("device add through C: %d %s", code, stderr)
	}
	var added struct {
		Device struct{ ID string } `json:"device"`
		Secret string              `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("device add --json: %v", err)
	}
	id := added.Device.ID

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	connect := func(addr string) *paho.Client {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, UsernameFlag: true, Username: id,
			PasswordFlag: true, Password: []byte(added.Secret), KeepAlive: 30, CleanStart: true}); err != nil {
			t.Fatalf("connect to %s: %v", addr, err)
		}
		return c
	}
	// Each reading carries its number in celsius (-20.00, -19.99, …).
	value := func(i int) string { return fmt.Sprintf("%.2f", float64(i)/100-20) }
	var (
		mu    sync.Mutex
		acked []string
	)
	// publish sends the readings numbered from, from+step, … below to
	// until one is not acknowledged (the node is gone).
	publish := func(ctx context.Context, c *paho.Client, from, step, to int, ackedOne func()) {
		for i := from; i < to; i += step {
			resp, err := c.Publish(ctx, &paho.Publish{Topic: "candor/" + id + "/temperature", QoS: 1,
				Payload: []byte(`{"celsius":` + value(i) + `}`)})
			if err != nil || resp.ReasonCode >= 0x80 {
				return
			}
			mu.Lock()
			acked = append(acked, value(i))
			mu.Unlock()
			ackedOne()
		}
	}
	// Load: eight publishers share the device's connection to A, so up
	// to eight QoS 1 readings are in flight when A is killed.
	const onA, workers = 6000, 8
	var (
		wg       sync.WaitGroup
		ackCount atomic.Int64
	)
	enough := make(chan struct{})
	var once sync.Once
	cA := connect(addrA)
	ctxA := untilLost(ctx, cA)
	for w := range workers {
		wg.Go(func() {
			publish(ctxA, cA, w, workers, onA, func() {
				if ackCount.Add(1) == 200 {
					once.Do(func() { close(enough) })
				}
			})
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-enough:
	case <-allDone:
		t.Fatalf("publishing to A stopped after %d acknowledged readings, before the kill", ackCount.Load())
	}
	if err := srvA.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-allDone
	_ = srvA.Wait()
	beforeKill := len(acked)
	if beforeKill >= onA {
		t.Fatal("every reading was acknowledged before the kill; nothing was in flight")
	}
	// The device reconnects to B and carries on.
	cB := connect(addrB)
	publish(ctx, cB, onA, 1, onA+100, func() {})
	if len(acked) != beforeKill+100 {
		t.Fatalf("node B acknowledged %d of 100 readings after A was killed", len(acked)-beforeKill)
	}
	_ = cB.Disconnect(&paho.Disconnect{})

	have := storedCelsius(t, id, dirs[2])
	var lost []string
	for _, v := range acked {
		if !have[v] {
			lost = append(lost, v)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged readings lost after SIGKILL of node A (first: celsius %s)", len(lost), len(acked), lost[0])
	}
	t.Logf("%d readings acknowledged by A before SIGKILL, %d by B after; %d distinct stored, read through C", beforeKill, len(acked)-beforeKill, len(have))

	// Node A starts again on its data directory. If the kill tore its copy
	// of the log, its repair makes the copy differ from the deployment's
	// and A rebuilds it from the stream; either way A catches up.
	serveNode(t, dirs[0], dbURL, natsURL, dep)

	// One log: every node's copy verifies offline against the one log key.
	key, _, code := run(t, "", "log", "key", "--data", dirs[1])
	if code != 0 {
		t.Fatal("log key")
	}
	for i, dir := range dirs {
		export, stderr, code := run(t, "", "log", "export", "--data", dir)
		if code != 0 {
			t.Fatalf("log export of node %d: %d %s", i, code, stderr)
		}
		f := filepath.Join(t.TempDir(), "log.jsonl")
		if err := os.WriteFile(f, []byte(export), 0o600); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := run(t, "", "log", "verify", "--key", strings.TrimSpace(key), "--export", f)
		if code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("log verify of node %d's copy: %d %q %s", i, code, out, stderr)
		}
		t.Logf("node %d: %s", i, strings.TrimSpace(out))
	}
}
