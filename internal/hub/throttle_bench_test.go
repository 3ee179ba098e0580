package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/config"
)

// BenchmarkCredentialFlood measures what a person and a new device wait
// while another address floods the MQTT listener with CONNECTs for device
// ids that do not exist, each of which costs a credential check unless it
// is throttled:
//
//   - login: one API login (POST /api/v1/login) from 127.0.0.1;
//   - first-connect: a device added just before connects for the first
//     time (MQTT 3.1.1) from 127.0.0.1.
//
// ns/op is that latency. The flood comes from 127.0.0.2 (Linux routes all
// of 127/8 to the loopback interface), floodConns connections at a time,
// and is bounded in count and time. Run with
//
//	go test -run '^$' -bench CredentialFlood -benchtime 10x ./internal/hub/
func BenchmarkCredentialFlood(b *testing.B) {
	for _, what := range []string{"login", "first-connect"} {
		for _, flooded := range []bool{false, true} {
			name := what + "/quiet"
			if flooded {
				name = what + "/flood"
			}
			b.Run(name, func(b *testing.B) {
				h, dir := benchHub(b)
				op := benchLogin(b, h)
				if what == "first-connect" {
					op = benchFirstConnect(b, h, dir)
				}
				if flooded {
					flood := startFlood(b, h.MQTTAddr())
					defer flood.stop()
					defer func() { b.ReportMetric(flood.rate(), "flood-connects/s") }()
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					op()
				}
				b.StopTimer()
			})
		}
	}
}

const (
	floodConns = 100
	floodMax   = 50000
	floodTime  = 2 * time.Minute
)

func benchHub(b *testing.B) (*Hub, string) {
	b.Helper()
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := Start(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = h.Close(ctx)
	})
	body, _ := json.Marshal(map[string]string{"setup_token": h.SetupToken(), "username": "alex", "password": goodPassword})
	resp, err := http.Post(h.URL()+"/api/v1/setup", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("setup: %d", resp.StatusCode)
	}
	return h, dir
}

func benchLogin(b *testing.B, h *Hub) func() {
	body, _ := json.Marshal(map[string]string{"username": "alex", "password": goodPassword})
	c := &http.Client{Timeout: 30 * time.Second}
	return func() {
		resp, err := c.Post(h.URL()+"/api/v1/login", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("login during the flood: %d", resp.StatusCode)
		}
	}
}

func benchFirstConnect(b *testing.B, h *Hub, dir string) func() {
	sock := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(dir, SocketName))
		}}}
	n := 0
	return func() {
		b.StopTimer()
		n++
		body, _ := json.Marshal(map[string]string{"name": fmt.Sprintf("Meter %d", n), "type": "smart-meter"})
		resp, err := sock.Post("http://candor/api/v1/devices", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var out struct {
			Device struct{ ID string } `json:"device"`
			Secret string              `json:"secret"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || out.Secret == "" {
			b.Fatalf("add device: %d %v", resp.StatusCode, err)
		}
		b.StartTimer()
		if code, err := connectRaw(nil, h.MQTTAddr(), out.Device.ID, out.Secret); err != nil || code != 0 {
			b.Fatalf("first connect during the flood: CONNACK %d, %v", code, err)
		}
	}
}

// flood keeps floodConns CONNECTs with unknown device ids in flight.
type flood struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	n       atomic.Int64
	started time.Time
	stopped atomic.Int64 // UnixNano
}

func startFlood(b *testing.B, addr string) *flood {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), floodTime)
	f := &flood{cancel: cancel, started: time.Now()}
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if c, err := (&net.Dialer{LocalAddr: src}).Dial("tcp", addr); err != nil {
		cancel()
		b.Skipf("cannot send from 127.0.0.2: %v", err)
	} else {
		c.Close()
	}
	for w := range floodConns {
		f.wg.Go(func() {
			for i := 0; ctx.Err() == nil && f.n.Load() < floodMax; i++ {
				id := fmt.Sprintf("dev_nobody%d_%d", w, i)
				if _, err := connectRaw(src, addr, id, "not-a-secret-"+id); err == nil {
					f.n.Add(1)
				}
			}
		})
	}
	// The measurement starts once the flood is under way.
	deadline := time.Now().Add(30 * time.Second)
	for f.n.Load() < floodConns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	return f
}

func (f *flood) stop() {
	if f.stopped.Load() == 0 {
		f.stopped.Store(time.Now().UnixNano())
	}
	f.cancel()
	f.wg.Wait()
}

func (f *flood) rate() float64 {
	end := time.Now()
	if s := f.stopped.Load(); s != 0 {
		end = time.Unix(0, s)
	}
	return float64(f.n.Load()) / end.Sub(f.started).Seconds()
}

// connectRaw sends an MQTT 3.1.1 CONNECT from src (any local address when
// nil) and returns the CONNACK's return code.
func connectRaw(src *net.TCPAddr, addr, user, pass string) (byte, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = src
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 0x04, 0xC2, 0x00, 0x3C) // level 4; username, password, clean session; keep alive 60 s
	body = append(body, str(user)...)                   // client id
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	pk := []byte{0x10}
	for n := len(body); ; n >>= 7 { // remaining length, 7 bits a byte
		if n < 0x80 {
			pk = append(pk, byte(n))
			break
		}
		pk = append(pk, byte(n&0x7F|0x80))
	}
	if _, err := conn.Write(append(pk, body...)); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return 0, err
	}
	if ack[0] != 0x20 {
		return 0, fmt.Errorf("not a CONNACK: % x", ack)
	}
	return ack[3], nil
}
