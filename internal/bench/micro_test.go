package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/broker"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// Micro-benchmarks of the hot path, through exported APIs only. Those that
// exist elsewhere are not repeated here: the policy check and group commit
// (BenchmarkCheck, BenchmarkSubmitWait in internal/ingest) and the SQLite
// batch append (BenchmarkAppendReadings in internal/store/sqlite). The
// broker's topic and ACL functions (publishStream, subscribeAllowed) are
// unexported; they are measured here only as part of
// BenchmarkBrokerQoS1NoStore.

var benchPayload = AppendPayload(nil, 1700000000000000000, 123456, 100)

// BenchmarkEncodePublish is the lean client's PUBLISH encoding of a
// 100-byte reading, including making the reading.
func BenchmarkEncodePublish(b *testing.B) {
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	var scratch, payload []byte
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		payload = AppendPayload(payload[:0], time.Now().UnixNano(), i, 100)
		scratch = AppendPublish(scratch[:0], "candor/dev_0123456789abcdef/bench_qos1", payload, 1, uint16(i%16)+1)
		_, _ = w.Write(scratch)
		i++
	}
	b.SetBytes(int64(len(scratch)))
}

// okAuth accepts any device whose secret is "secret".
type okAuth struct{}

func (okAuth) AuthenticateDevice(_ context.Context, _ identity.Origin, id, secret string) (store.Device, error) {
	if secret != "secret" {
		return store.Device{}, fmt.Errorf("bad secret")
	}
	return store.Device{ID: id}, nil
}

// nopIngest accepts every reading without storing it.
type nopIngest struct{ n atomic.Int64 }

func (i *nopIngest) Submit(context.Context, string, string, []byte, bool) error {
	i.n.Add(1)
	return nil
}
func (i *nopIngest) Enqueue(context.Context, string, string, []byte) (ingest.Ticket, error) {
	i.n.Add(1)
	return ingest.Completed(nil), nil
}
func (*nopIngest) Refuse(string, error)               {}
func (*nopIngest) Count(string, store.DeviceCounters) {}

func (*nopIngest) Vet(context.Context, string, string, []byte) error { return nil }

// BenchmarkBrokerQoS1NoStore is Candor's MQTT broker (mochi with Candor's
// policy hook: authentication, namespace ACL, topic parsing) acknowledging
// QoS 1 publishes from one lean client over loopback TCP, with an ingester
// that keeps nothing: the broker's share of the cost per reading.
func BenchmarkBrokerQoS1NoStore(b *testing.B) {
	in := &nopIngest{}
	br, err := newTestBroker(in)
	if err != nil {
		b.Skipf("Candor's broker cannot be built from its exported API here: %v", err)
	}
	defer br.Close()
	ctx := context.Background()
	c, err := Dial(ctx, br.Addr("tcp"), ConnectOptions{ClientID: "dev_1", Username: "dev_1", Password: "secret", KeepAlive: 60, Window: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Publish("candor/dev_1/bench_qos1", benchPayload, 1); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.WaitAcks(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if in.n.Load() < int64(b.N) {
		b.Fatalf("ingester saw %d readings, want %d", in.n.Load(), b.N)
	}
}

func newTestBroker(in *nopIngest) (*broker.Broker, error) {
	br, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0"}, okAuth{}, in)
	if err != nil {
		return nil, err
	}
	if err := br.Start(); err != nil {
		return nil, err
	}
	return br, nil
}

// BenchmarkManifestCheck is the data manifest check of one bench reading
// (fastjson parse and the compiled per-stream checker), the part of the
// policy path that enforces data manifests.
func BenchmarkManifestCheck(b *testing.B) {
	doc, err := benchManifest(100, []string{"bench_qos1"}, "P1D")
	if err != nil {
		b.Fatal(err)
	}
	m, err := manifest.Parse("bench.json", doc)
	if err != nil {
		b.Fatal(err)
	}
	c := manifest.Compile(m)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, v := c.Check("bench_qos1", benchPayload, false); v != nil {
			b.Fatal(v)
		}
	}
}
