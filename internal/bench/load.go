package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is one phase of publishing load: every client publishes to its
// topic as fast as its window allows, for Duration.
type loadSpec struct {
	Addr         string
	Clients      []ConnectOptions
	Topics       []string // one per client
	QoS          byte
	Duration     time.Duration
	PayloadBytes int
	// Rate, when positive, paces the load to about that many messages a
	// second in total (each client sends every len(Clients)/Rate seconds
	// and flushes each message); otherwise clients send at full speed.
	Rate float64
	// MaxPerClient, when positive, ends a client's load after that many
	// messages even if Duration has not passed.
	MaxPerClient int64
	// DrainTimeout bounds the wait for the last acknowledgements.
	DrainTimeout time.Duration
	// OnStart, if set, runs after every client connected, just before
	// the load starts (to sample the broker's CPU time).
	OnStart func()
}

// loadResult is what the publishers saw.
type loadResult struct {
	Start   time.Time
	SendEnd time.Time // the last publisher stopped sending
	End     time.Time // the last publisher had every acknowledgement (QoS 1) or had flushed (QoS 0)
	Sent    []int64   // per client
	Acked   []int64   // per client (QoS 1)
	AckLat  Histogram // client-observed PUBACK latency (QoS 1)
	// SockLat is the PUBACK latency at the client socket (see Conn);
	// SockUnstamped counts PUBACKs left out of it for want of a kernel
	// receive time, SockNA is why a connection measured none.
	SockLat       Histogram
	SockUnstamped int64
	SockNA        string
	LoadCPU       time.Duration // this process's CPU time during the load
}

// addSocket adds a connection's PUBACK latencies at the client socket.
func (r *loadResult) addSocket(h *Histogram, unstamped int64, unavailable string) {
	if h != nil {
		r.SockLat.Merge(h)
	}
	r.SockUnstamped += unstamped
	if unavailable != "" && r.SockNA == "" {
		r.SockNA = unavailable
	}
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// runLoad connects every client, runs the load for s.Duration, waits for
// outstanding acknowledgements and disconnects. Any client error fails the
// phase, named by client id.
func runLoad(ctx context.Context, s loadSpec) (*loadResult, error) {
	n := len(s.Clients)
	conns := make([]*Conn, n)
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}
	err := parallel(ctx, n, 16, func(i int) error {
		c, err := Dial(ctx, s.Addr, s.Clients[i])
		conns[i] = c
		return err
	})
	if err != nil {
		closeAll()
		return nil, err
	}

	// A watchdog closes every connection if the phase overruns its bound,
	// which unblocks any publisher stuck writing to a broker that stopped
	// reading.
	bound := s.Duration + s.DrainTimeout + time.Minute
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	allDone := make(chan struct{})
	go func() {
		select {
		case <-wctx.Done():
			closeAll()
		case <-allDone:
		}
	}()

	res := &loadResult{Sent: make([]int64, n), Acked: make([]int64, n)}
	errs := make([]error, n)
	sendEnd := make([]time.Time, n)
	end := make([]time.Time, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			deadline := res.Start.Add(s.Duration).UnixNano()
			topic := s.Topics[i]
			payload := make([]byte, 0, max(s.PayloadBytes, MinPayloadBytes)+32)
			var (
				seq      uint64
				err      error
				interval int64 // ns between this client's messages when paced
				next     int64
			)
			if s.Rate > 0 {
				interval = int64(float64(n) / s.Rate * float64(time.Second))
				// Stagger the clients so the paced load is smooth.
				next = res.Start.UnixNano() + interval*int64(i)/int64(n)
			}
			for s.MaxPerClient <= 0 || int64(seq) < s.MaxPerClient {
				now := time.Now().UnixNano()
				if interval > 0 {
					if next >= deadline {
						break
					}
					if d := next - now; d > 0 {
						time.Sleep(time.Duration(d))
						now = time.Now().UnixNano()
					}
					next += interval
				}
				if now >= deadline {
					break
				}
				// now is the client-observed latency's start, kept where
				// it has always been so the figures before and after
				// compare. Between it and the write(2): paced, building the
				// payload (about 0.1 µs), taking a free packet id (the
				// window is seldom full at 100 msg/s a connection), an
				// uncontended lock and a copy, then Flush: about a µs with
				// no wait, so only a preemption in that span adds generator
				// time. At full speed PublishAt can wait there for a free
				// id (which the reader frees only when it runs) and the
				// message for the window to fill before it is written.
				// The latency at the client socket starts right before the
				// write(2) instead (stampWriter), so none of that counts.
				payload = AppendPayload(payload[:0], now, seq, s.PayloadBytes)
				if err = c.PublishAt(topic, payload, s.QoS, now); err != nil {
					break
				}
				if interval > 0 {
					if err = c.Flush(); err != nil {
						break
					}
				}
				seq++
			}
			res.Sent[i] = int64(seq)
			sendEnd[i] = time.Now()
			if err == nil {
				if s.QoS == 1 {
					dctx, dcancel := context.WithTimeout(wctx, s.DrainTimeout)
					err = c.WaitAcks(dctx)
					dcancel()
				} else {
					err = c.Flush()
				}
			}
			end[i] = time.Now()
			if derr := c.Disconnect(); err == nil && derr != nil {
				err = derr
			}
			res.Acked[i] = c.Acked()
			if err != nil {
				errs[i] = fmt.Errorf("client %s: %w", s.Clients[i].ClientID, err)
			}
		}()
	}
	if s.OnStart != nil {
		s.OnStart()
	}
	cpu0 := selfCPU()
	res.Start = time.Now()
	close(start)
	wg.Wait()
	close(allDone)
	res.LoadCPU = selfCPU() - cpu0
	res.SendEnd, res.End = latest(sendEnd), latest(end)
	for _, c := range conns {
		res.AckLat.Merge(c.AckLatency())
		res.addSocket(c.SocketAckLatency())
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("QoS %d load: %w", s.QoS, err)
	}
	return res, nil
}

func latest(ts []time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// parallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error; after an error no new calls start.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		first  error
		wg     sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// sink is the reference broker's consumer: one subscriber that counts the
// readings delivered to it and how long each took from its send time.
type sink struct {
	conn  *Conn
	count atomic.Int64
	last  atomic.Int64 // Unix ns of the last delivery
	lat   Histogram    // reader goroutine only; read after close
}

// startSink connects a subscriber to filter at qos.
func startSink(ctx context.Context, addr, clientID, filter string, qos byte) (*sink, error) {
	s := &sink{}
	c, err := Dial(ctx, addr, ConnectOptions{
		ClientID:  clientID,
		KeepAlive: keepAlive,
		OnMessage: func(_, payload []byte) {
			now := time.Now().UnixNano()
			if t, ok := SentNanos(payload); ok {
				s.lat.Record(now - t)
			}
			s.count.Add(1)
			s.last.Store(now)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s.conn = c
	if err := c.Subscribe(ctx, filter, qos); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("sink: %w", err)
	}
	return s, nil
}

// waitFor polls get until it reaches want, stops growing for stall, or
// timeout passes, and returns the last value seen and when it last grew.
func waitFor(ctx context.Context, want int64, stall, timeout time.Duration, get func() (int64, error)) (int64, time.Time, error) {
	deadline := time.Now().Add(timeout)
	var (
		last      int64 = -1
		grewAt          = time.Now()
		tick            = 20 * time.Millisecond
		lastError error
	)
	for {
		v, err := get()
		now := time.Now()
		if err != nil {
			lastError = err
		} else if v != last {
			last, grewAt = v, now
		}
		if last >= want || now.Sub(grewAt) > stall || now.After(deadline) || ctx.Err() != nil {
			if last < 0 {
				return 0, grewAt, lastError
			}
			return last, grewAt, nil
		}
		time.Sleep(tick)
	}
}

// idleSpec is the connection-scale phase: open many connections that stay
// idle, and see how many fit and what each costs the broker.
type idleSpec struct {
	Addr    string
	Clients []ConnectOptions
	// Topics, if set, gives each client a topic to publish one QoS 1
	// reading of PayloadBytes to once connected, waiting for its PUBACK,
	// as a device that reports now and then does between its sleeps.
	Topics       []string
	PayloadBytes int
	PID          int // the broker's process (0: not measured)
	Timeout      time.Duration
	// GoMem, if set, reads a Go broker's heap and stack bytes in use and
	// its goroutine count.
	GoMem func() (goMem, error)
	// AtIdle, if set, is called while the connections are open, after
	// they were measured.
	AtIdle func(pid int)
}

// IdleResult is the outcome of the connection-scale phase.
type IdleResult struct {
	Attempted      int     `json:"attempted"`
	Connected      int     `json:"connected"`
	FirstError     string  `json:"first_error,omitempty"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectsPerSec float64 `json:"connects_per_sec"`
	RSSBeforeMiB   float64 `json:"rss_before_mib,omitempty"`
	RSSAfterMiB    float64 `json:"rss_after_mib,omitempty"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib,omitempty"`
	// GoMemPerConnKiB is, for Candor, the growth of the Go heap and
	// stacks in use per connection (go_memstats_heap_inuse_bytes +
	// go_memstats_stack_inuse_bytes): RSS alone understates it when the
	// heap reuses memory freed earlier (by argon2id, for instance).
	GoMemPerConnKiB float64 `json:"go_mem_per_conn_kib,omitempty"`
	// GoHeapPerConnKiB and GoStackPerConnKiB split GoMemPerConnKiB: heap
	// objects (buffers, maps, the client) and goroutine stacks.
	GoHeapPerConnKiB  float64 `json:"go_heap_per_conn_kib,omitempty"`
	GoStackPerConnKiB float64 `json:"go_stack_per_conn_kib,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
}

// goMem is a Go broker's memory in use, from its metrics.
type goMem struct {
	Heap, Stack, Goroutines float64
}

// idleWorkers is how many idle connections are opened at once: each waits
// for a synced commit of its reading, so more at once fill each commit.
const idleWorkers = 128

// runIdle opens the idle connections (idleWorkers at a time; each sends its one
// reading if Topics is set), measures the broker's
// resident memory before and after, and closes them again. Connection
// failures are counted, not fatal: how many fit is the result.
func runIdle(ctx context.Context, s idleSpec) IdleResult {
	r := IdleResult{Attempted: len(s.Clients)}
	var before procSample
	if s.PID > 0 {
		before, _ = readProc(s.PID)
	}
	var mem0 goMem
	var memErr error
	if s.GoMem != nil {
		mem0, memErr = s.GoMem()
	}
	cctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	conns := make([]*Conn, len(s.Clients))
	var (
		mu    sync.Mutex
		first error
	)
	t0 := time.Now()
	_ = parallel(cctx, len(s.Clients), idleWorkers, func(i int) error {
		fail := func(err error) error {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			return nil
		}
		c, err := Dial(cctx, s.Addr, s.Clients[i])
		if err != nil {
			return fail(err)
		}
		if s.Topics != nil {
			payload := AppendPayload(nil, time.Now().UnixNano(), 0, s.PayloadBytes)
			err := c.Publish(s.Topics[i], payload, 1)
			if err == nil {
				err = c.WaitAcks(cctx)
			}
			if err != nil {
				_ = c.Close()
				return fail(fmt.Errorf("idle connection %d: one QoS 1 reading: %w", i, err))
			}
		}
		conns[i] = c
		return nil
	})
	r.ConnectSeconds = time.Since(t0).Seconds()
	for _, c := range conns {
		if c != nil {
			r.Connected++
		}
	}
	if first != nil {
		r.FirstError = first.Error()
	} else if cctx.Err() != nil && r.Connected < r.Attempted {
		r.FirstError = fmt.Sprintf("stopped after %s: %v", s.Timeout, cctx.Err())
	}
	if r.ConnectSeconds > 0 {
		r.ConnectsPerSec = float64(r.Connected) / r.ConnectSeconds
	}
	if s.PID > 0 && r.Connected > 0 {
		// Give the broker a moment to finish setting up the last sessions.
		time.Sleep(500 * time.Millisecond)
		if after, err := readProc(s.PID); err == nil {
			r.RSSBeforeMiB = mib(before.RSS)
			r.RSSAfterMiB = mib(after.RSS)
			r.RSSPerConnKiB = float64(after.RSS-before.RSS) / 1024 / float64(r.Connected)
		}
	}
	if s.GoMem != nil && memErr == nil && r.Connected > 0 {
		if mem1, err := s.GoMem(); err == nil {
			per := func(a, b float64) float64 { return (b - a) / 1024 / float64(r.Connected) }
			r.GoHeapPerConnKiB = per(mem0.Heap, mem1.Heap)
			r.GoStackPerConnKiB = per(mem0.Stack, mem1.Stack)
			r.GoMemPerConnKiB = r.GoHeapPerConnKiB + r.GoStackPerConnKiB
			r.GoroutinesPerConn = (mem1.Goroutines - mem0.Goroutines) / float64(r.Connected)
		}
	}
	if s.AtIdle != nil && r.Connected > 0 {
		s.AtIdle(s.PID)
	}
	_ = parallel(context.Background(), len(conns), 32, func(i int) error {
		if conns[i] != nil {
			_ = conns[i].Disconnect()
		}
		return nil
	})
	return r
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
