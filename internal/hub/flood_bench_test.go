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
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/config"
)

// floodConnects is the size of the unauthenticated flood.
const floodConnects = 5000

// firstConnects is how many devices BenchmarkConnectUnderFlood/first
// adds before the flood, so at most that many iterations.
const firstConnects = 20

// BenchmarkConnectUnderFlood measures how long a device takes to connect
// (dial to CONNACK) while 5,000 unauthenticated connections arrive from
// another address in a burst: half never send CONNECT, half log in with
// unknown names (each costs a slow hash unless refused first).
//
//   - known: a device whose secret was verified before (so cached)
//     connects, once per iteration;
//   - first: a device added before the flood connects for the first time
//     (its secret needs the slow hash), a different one per iteration.
//
// in-flood-frac says how many connects happened while the flood was being
// handled. Run it with a fixed count: -benchtime=20x.
func BenchmarkConnectUnderFlood(b *testing.B) {
	b.Run("known", func(b *testing.B) { benchConnectUnderFlood(b, false) })
	b.Run("first", func(b *testing.B) { benchConnectUnderFlood(b, true) })
}

func benchConnectUnderFlood(b *testing.B, first bool) {
	dir, err := os.MkdirTemp("", "candor")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir, cfg.MQTTAddr, cfg.HTTPAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := Start(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	type cred struct{ id, secret string }
	var devs []cred
	for range map[bool]int{false: 1, true: firstConnects}[first] {
		id, secret := benchAddDevice(b, filepath.Join(dir, SocketName))
		devs = append(devs, cred{id, secret})
	}
	addr := h.MQTTAddr()
	known := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)} // the device's own address on the LAN
	// login returns the time from dialling to the CONNACK, and the part
	// of it spent in the TCP handshake (the kernel's accept queue).
	login := func(d cred) (total, dial time.Duration) {
		start := time.Now()
		c := mqtttest.Dial(b, addr, known)
		dial = time.Since(start)
		c.Send(mqtttest.Connect{Version: 5, ClientID: d.id, Username: d.id, Password: d.secret, KeepAlive: 30}.Encode())
		if ack := c.Expect(mqtttest.CONNACK); ack.ReasonCode(5) != 0 {
			b.Fatalf("device refused: % x", ack.Raw)
		}
		total = time.Since(start)
		c.Send(mqtttest.Disconnect())
		c.Close()
		return total, dial
	}
	if !first {
		login(devs[0]) // the slow hash once; from now on the secret is cached
	}

	// The flood is a burst: every stranger dials at once, as a botnet
	// scanning the LAN would, rather than waiting for the hub's answers.
	var dialed, done atomic.Int64
	var wg sync.WaitGroup
	for i := range floodConnects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stranger(ctx, addr, i%2 == 0, &dialed, i)
			done.Add(1)
		}()
	}
	for dialed.Load() < floodConnects/2 {
		time.Sleep(time.Millisecond) // measure once the burst is under way
	}
	b.ResetTimer()
	var lat, dials []time.Duration
	inFlood := 0
	for n := 0; b.Loop(); n++ {
		d := devs[0]
		if first {
			if n >= len(devs) {
				b.Fatalf("at most %d iterations: use -benchtime=%dx", len(devs), len(devs))
			}
			d = devs[n]
		}
		total, dial := login(d)
		lat, dials = append(lat, total), append(dials, dial)
		if done.Load() < floodConnects {
			inFlood++
		}
	}
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(inFlood)/float64(len(lat)), "in-flood-frac")
	slices.Sort(lat)
	slices.Sort(dials)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p95 := (len(lat)*95+99)/100 - 1
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[p95]), "p95-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(dials[p95]), "dial-p95-ms")
}

// stranger is one unauthenticated connection of the flood: silent, or a
// CONNECT with an unknown name. It ends when the hub closes it or answers,
// or after 10 s.
func stranger(ctx context.Context, addr string, silent bool, dialed *atomic.Int64, i int) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	dialed.Add(1)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if !silent {
		name := fmt.Sprintf("dev_stranger%d", i)
		_, _ = c.Write(mqtttest.Connect{Version: 4, ClientID: name, Username: name, Password: "guess-guess-guess", KeepAlive: 30}.Encode())
	}
	var buf [64]byte
	_, _ = c.Read(buf[:])
}

// benchAddDevice adds a device through the operator socket.
func benchAddDevice(b *testing.B, sock string) (id, secret string) {
	cl := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	body, _ := json.Marshal(map[string]string{"name": "Hall", "type": "thermostat"})
	resp, err := cl.Post("http://candor/api/v1/devices", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Device struct{ ID string } `json:"device"`
		Secret string              `json:"secret"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("add device: %d %v", resp.StatusCode, err)
	}
	return out.Device.ID, out.Secret
}
