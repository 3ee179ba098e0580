package ingest

import (
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

// FlagRateExceeded is the violation reason recorded (without refusing the
// reading) when a stream runs far above its declared message rate: a
// sign of a misbehaving or captured device, counted for the owner and for
// the abuse monitoring that builds on it.
const FlagRateExceeded = "rate_exceeded"

// rateFactor is how far above the declared rate counts as "far outside".
const rateFactor = 3

type rateKey struct{ device, stream string }

type rateState struct {
	windowStart time.Time
	count       float64
	flagged     bool
}

type rateTable struct {
	mu sync.Mutex
	m  map[rateKey]*rateState
}

// observeRate counts a reading in its stream's one-minute window and flags
// the stream once per window when it exceeds rateFactor × the declared
// rate. It reads metadata only (counts), never contents. now is the
// reading's arrival, read once per reading by Enqueue.
func (p *Pipeline) observeRate(deviceID string, s *manifest.Stream, now time.Time) {
	if s.MaxPerMinute <= 0 {
		return
	}
	k := rateKey{deviceID, s.Name}
	p.rates.mu.Lock()
	st := p.rates.m[k]
	if st == nil {
		st = &rateState{windowStart: now}
		p.rates.m[k] = st
	}
	if now.Sub(st.windowStart) >= time.Minute {
		st.windowStart, st.count, st.flagged = now, 0, false
	}
	st.count++
	flag := !st.flagged && st.count > rateFactor*s.MaxPerMinute
	if flag {
		st.flagged = true
	}
	p.rates.mu.Unlock()
	if flag {
		p.flagged.WithLabelValues(FlagRateExceeded).Inc()
		p.recordViolation(deviceID, s.Name, "", FlagRateExceeded)
		p.log.Warn("stream far above its declared rate", "device", deviceID, "stream", s.Name, "declared_per_minute", s.MaxPerMinute)
	}
}
