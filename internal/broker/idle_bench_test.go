package broker

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

// connectPacket encodes a 3.1.1 CONNECT with a user name and password.
func connectPacket(clientID, user, pass string) []byte {
	str := func(b []byte, s string) []byte { return append(append(b, byte(len(s)>>8), byte(len(s))), s...) }
	body := str(nil, "MQTT")
	body = append(body, 4, 0xc2, 0x03, 0x84) // level 4, user+pass+clean, keep-alive 900 s
	body = str(body, clientID)
	body = str(body, user)
	body = str(body, pass)
	pk := []byte{typeConnect << 4}
	for n := len(body); ; {
		b := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			b |= 0x80
		}
		pk = append(pk, b)
		if n == 0 {
			break
		}
	}
	return append(pk, body...)
}

// BenchmarkIdleConnection measures what one idle, logged-in device
// connection costs the broker: the Go heap and goroutine stacks it holds
// after collections, per connection (the clients are plain sockets with
// no goroutines of their own).
//
//	go test -run '^$' -bench IdleConnection -benchtime 2000x ./internal/broker/
func BenchmarkIdleConnection(b *testing.B) {
	auth := &fakeAuth{secrets: map[string]string{devA: secretA}}
	br, err := New(Config{TCPAddr: "127.0.0.1:0"}, auth, &fakeIngester{})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.ResetTimer()
	addr := br.Addr("tcp")
	measureIdle(b, func() (net.Conn, error) { return net.Dial("tcp", addr) }, b.N)
}

// BenchmarkIdleConnectionTLS is BenchmarkIdleConnection over TLS: what a
// TLS connection's buffers add while it is idle.
//
//	go test -run '^$' -bench IdleConnectionTLS -benchtime 2000x ./internal/broker/
func BenchmarkIdleConnectionTLS(b *testing.B) {
	cert, pool := testCert(b)
	auth := &fakeAuth{secrets: map[string]string{devA: secretA}}
	br, err := New(Config{TLSAddr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}, auth, &fakeIngester{})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.ResetTimer()
	addr := br.Addr("tls")
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	measureIdle(b, func() (net.Conn, error) { return tls.Dial("tcp", addr, cfg) }, b.N)
}

func measureIdle(b *testing.B, dial func() (net.Conn, error), n int) {
	settle := func() runtime.MemStats {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		time.Sleep(100 * time.Millisecond)
		runtime.ReadMemStats(&ms)
		return ms
	}
	before := settle()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	pk := connectPacket("", devA, secretA)
	for range n {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(pk); err != nil {
			b.Fatal(err)
		}
		var ack [4]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil || ack[3] != 0 {
			b.Fatalf("connack %v: %v", ack, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	after := settle()
	if path := os.Getenv("CANDOR_IDLE_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stack-B/conn")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(n), "heap-B/conn")
}
