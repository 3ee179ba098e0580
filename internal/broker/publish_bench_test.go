package broker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/store"
)

// leanIngester accepts every reading at once, with nothing recorded, so a
// benchmark of the broker measures the broker: mochi's read loop, the
// policy hook and the PUBACK path, not the fake.
type leanIngester struct{ t ingest.Ticket }

func (l *leanIngester) Submit(context.Context, string, string, []byte, bool) error { return nil }
func (l *leanIngester) Enqueue(context.Context, string, string, []byte) (ingest.Ticket, error) {
	return l.t, nil
}
func (l *leanIngester) Vet(context.Context, string, string, []byte) error { return nil }
func (l *leanIngester) Refuse(string, error)                              {}
func (l *leanIngester) Count(string, store.DeviceCounters)                {}

// BenchmarkPublishQoS1 measures the broker's own cost per QoS 1 reading
// (mochi's read loop, the policy hook, the acknowledgement queue and the
// PUBACK write), with an ingester that accepts at once: 4 devices over
// loopback, 16 readings in flight each, as the hub bench's devices send.
// allocs/op and cpu-ns/op count the whole process (the clients too) per
// reading.
//
//	go test -run '^$' -bench PublishQoS1 -benchmem ./internal/broker/
func BenchmarkPublishQoS1(b *testing.B) {
	benchPublish(b, &leanIngester{t: ingest.Completed(nil)}, 16)
}

// discardStore commits every batch at once and keeps nothing.
type discardStore struct{}

func (discardStore) AppendReadings(context.Context, []store.Reading) error { return nil }
func (discardStore) AddDeviceCounters(context.Context, map[string]store.DeviceCounters) error {
	return nil
}
func (discardStore) AddViolations(context.Context, []store.ViolationCount) error { return nil }

// BenchmarkPublishQoS1Commit is BenchmarkPublishQoS1 through a real ingest
// pipeline (no manifests, a store that keeps nothing), so each PUBACK
// waits for its batch's commit as in the hub. window=1 is a paced device:
// one reading in flight, each commit holding about one reading of each
// connection, so the per-reading wake-ups of the acknowledgement path
// show.
func BenchmarkPublishQoS1Commit(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			in := ingest.New(discardStore{}, ingest.Options{})
			defer in.Close()
			benchPublish(b, in, window)
		})
	}
}

func benchPublish(b *testing.B, in Ingester, window int) {
	const devices = 4
	secrets := map[string]string{}
	for i := range devices {
		secrets[fmt.Sprintf("dev_bench_%d", i)] = fmt.Sprintf("secret-of-bench-device-%d", i)
	}
	br, err := New(Config{TCPAddr: "127.0.0.1:0"}, &fakeAuth{secrets: secrets}, in)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	payload := []byte(`{"temperature_c":21.37,"humidity_pct":48.2,"battery_v":3.71,"rssi_dbm":-67,"seq":1234567}` + strings.Repeat(" ", 10))
	conns := make([]net.Conn, devices)
	for i := range conns {
		id := fmt.Sprintf("dev_bench_%d", i)
		c, err := net.Dial("tcp", br.Addr("tcp"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(connectPacket("", id, secrets[id])); err != nil {
			b.Fatal(err)
		}
		var ack [4]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil || ack[3] != 0 {
			b.Fatalf("connack %v: %v", ack, err)
		}
		conns[i] = c
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	var wg sync.WaitGroup
	for i, c := range conns {
		n := b.N / devices
		if i < b.N%devices {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publishWindowed(c, fmt.Sprintf("candor/dev_bench_%d/telemetry", i), payload, n, window); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	// The process's CPU time, clients included: wall time per reading
	// mostly measures the machine's other load.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishWindowed sends n QoS 1 readings on c with up to window of them
// unacknowledged, and reads every PUBACK.
func publishWindowed(c net.Conn, topic string, payload []byte, n, window int) error {
	errc := make(chan error, 1)
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	go func() {
		r := bufio.NewReader(c)
		var ack [4]byte
		for i := range n {
			if _, err := io.ReadFull(r, ack[:]); err != nil {
				errc <- fmt.Errorf("puback %d of %d: %w", i, n, err)
				return
			}
			if ack[0] != 0x40 {
				errc <- fmt.Errorf("got packet type %#x, want a PUBACK", ack[0])
				return
			}
			credit <- struct{}{}
		}
		errc <- nil
	}()
	pk := mqtttest.Publish(4, topic, payload, 1, 0, false)
	at := len(pk) - len(payload) - 2 // the packet id
	for i := range n {
		<-credit
		id := uint16(i%65535 + 1)
		pk[at], pk[at+1] = byte(id>>8), byte(id)
		if _, err := c.Write(pk); err != nil {
			return err
		}
	}
	return <-errc
}

// withoutPacketRead is the policy hook as it was before it answered
// unroutable publishes in OnPacketRead.
type withoutPacketRead struct{ *hook }

func (w withoutPacketRead) Provides(b byte) bool { return b != mqtt.OnPacketRead && w.hook.Provides(b) }

// BenchmarkPacketReadHook measures what the policy hook's OnPacketRead
// (answering a device's publish mochi would drop unanswered) adds to
// every packet a device sends: mochi's OnPacketRead dispatch for a
// reading with the hook providing it, against the same hooks without.
//
//	go test -run '^$' -bench PacketReadHook ./internal/broker/
func BenchmarkPacketReadHook(b *testing.B) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7,
		TopicName: ReadingTopic(devA, "temperature"), Payload: []byte(`{"c":21.5}`)}
	cl := &mqtt.Client{}
	for _, tc := range []struct {
		name string
		h    mqtt.Hook
	}{
		{"without", withoutPacketRead{newHook(nil, nil, nil, nil)}},
		{"with", newHook(nil, nil, nil, nil)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hs := &mqtt.Hooks{Log: slog.New(slog.DiscardHandler)}
			for _, h := range []mqtt.Hook{tc.h, &connackCodes{}} {
				if err := hs.Add(h, nil); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, err := hs.OnPacketRead(cl, pk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// withoutPacketProcessed is the policy hook as it was before it provided
// OnPacketProcessed (flushBeforeEnd).
type withoutPacketProcessed struct{ *hook }

func (w withoutPacketProcessed) Provides(b byte) bool {
	return b != mqtt.OnPacketProcessed && w.hook.Provides(b)
}

// BenchmarkPacketProcessedHook measures what the policy hook's
// OnPacketProcessed (flushing the PUBACKs the read loop holds before a
// packet mochi could not process ends the connection) adds to every
// packet a device sends: mochi's dispatch after a reading processed
// without error, with the hook providing it, against the same hooks
// without.
//
//	go test -run '^$' -bench PacketProcessedHook -benchmem ./internal/broker/
func BenchmarkPacketProcessedHook(b *testing.B) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7,
		TopicName: ReadingTopic(devA, "temperature"), Payload: []byte(`{"c":21.5}`)}
	cl := &mqtt.Client{}
	for _, tc := range []struct {
		name string
		h    mqtt.Hook
	}{
		{"without", withoutPacketProcessed{newHook(nil, nil, nil, nil)}},
		{"with", newHook(nil, nil, nil, nil)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hs := &mqtt.Hooks{Log: slog.New(slog.DiscardHandler)}
			for _, h := range []mqtt.Hook{tc.h, &connackCodes{}} {
				if err := hs.Add(h, nil); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				hs.OnPacketProcessed(cl, pk, nil)
			}
		})
	}
}
