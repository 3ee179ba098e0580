package broker

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestPublishesDrain: drain returns at once with nothing under way, and
// otherwise only after each publish under way when it began has exited,
// also across several drains in turn (each makes the other counter
// current). The publish exits only once the drain has made the other
// counter current, so a drain that did not wait would return first.
func TestPublishesDrain(t *testing.T) {
	var p publishes
	p.drain()
	for round := range 4 {
		var exited atomic.Bool
		e := p.enter()
		done := make(chan bool)
		go func() {
			p.drain()
			done <- exited.Load()
		}()
		for p.cur.Load() == e {
			runtime.Gosched()
		}
		exited.Store(true)
		p.exit(e)
		if !<-done {
			t.Fatalf("round %d: drain returned while a publish that entered before it was under way", round)
		}
	}
}
