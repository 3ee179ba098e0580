package broker

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// publishes counts the hub's publishes under way (Broker.publish), so that
// a connection taking a session over can wait for those that may store a
// message in the session it is about to copy (awaitHandover, resumeGate in
// packetid.go). mochi looks the client up once per publish and stores the
// message in that client's session; one stored after a takeover copied the
// session is in a session no connection reads. Two counters in turn, as in
// read-copy-update: a publish counts itself in the current one, and drain
// makes the other current and waits until the one it left is empty, so it
// waits only for publishes that began before it.
type publishes struct {
	cur  atomic.Uint32 // its low bit picks the counter
	n    [2]atomic.Int64
	flip sync.Mutex // one drain at a time
	_    [32]byte   // to 64 bytes, a cache line of its own: written twice per publish
}

// enter counts a publish in; exit(the returned value) counts it out.
func (p *publishes) enter() uint32 {
	for {
		e := p.cur.Load()
		p.n[e&1].Add(1)
		if p.cur.Load() == e {
			return e
		}
		p.n[e&1].Add(-1) // a drain made the other current meanwhile
	}
}

func (p *publishes) exit(e uint32) { p.n[e&1].Add(-1) }

// drain waits until every publish that entered before it was called has
// exited. A publish can take as long as a write to a client that does not
// read (writeTimeout): the wait backs off from yields to sleeps.
func (p *publishes) drain() {
	p.flip.Lock()
	defer p.flip.Unlock()
	e := p.cur.Load()
	// The other counter, about to be current, holds none but publishes a
	// former drain already waited for, or ones that counted themselves in
	// it and are about to count themselves out (enter).
	await(&p.n[(e+1)&1])
	p.cur.Store(e + 1)
	await(&p.n[e&1])
}

func await(n *atomic.Int64) {
	for i := 0; n.Load() > 0; i++ {
		if i < 64 {
			runtime.Gosched()
		} else {
			time.Sleep(min(time.Duration(i-63)*50*time.Microsecond, time.Millisecond))
		}
	}
}

// handoverLocks are locks by client id: a connection that may resume a
// session holds its id's from OnSessionEstablish until its gate opens
// (closeGate, openGate), so that of two connections under one id taking
// the session over at once, the second finds the first and waits for its
// gate and publishes (awaitHandover) instead of copying a session whose
// gate is closed. By the exact id, so that no client can hold up another's
// connect (striped by a hash, a client could choose an id that shares a
// stripe with another's: found in review); an entry lives while a
// connection holds or waits for it.
type handoverLocks struct {
	mu sync.Mutex
	m  map[string]*handoverLock
}

type handoverLock struct {
	sync.Mutex
	refs int // holders and waiters, under handoverLocks.mu
}

// acquire takes clientID's lock; waiting, if set, is called first when it
// has to wait (tests). The returned function lets go of it (once).
func (l *handoverLocks) acquire(clientID string, waiting func()) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*handoverLock{}
	}
	h := l.m[clientID]
	if h == nil {
		h = &handoverLock{}
		l.m[clientID] = h
	}
	h.refs++
	l.mu.Unlock()
	if !h.TryLock() {
		if waiting != nil {
			waiting()
		}
		h.Lock()
	}
	return func() {
		h.Unlock()
		l.mu.Lock()
		if h.refs--; h.refs == 0 {
			delete(l.m, clientID)
		}
		l.mu.Unlock()
	}
}
