package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

type countingAppender struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *countingAppender) AppendReadings(_ context.Context, rs []store.Reading) error {
	time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
	c.mu.Lock()
	for _, r := range rs {
		c.seen[string(r.Payload)]++
	}
	c.mu.Unlock()
	return nil
}

// Many devices, several submitters per device, random cancellations:
// every add returns, every accepted row is written exactly once.
func TestBatcherCancellationsLoseNothing(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Millisecond} {
		st := &countingAppender{seen: map[string]int{}}
		b := newBatcher(st, 8, wait, 0, nil)
		var accepted sync.Map
		var wg sync.WaitGroup
		var done atomic.Int64
		for d := range 30 {
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 200 {
						ctx, cancel := context.Background(), func() {}
						if rand.IntN(4) == 0 {
							ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rand.IntN(200))*time.Microsecond)
						}
						p := fmt.Sprintf("d%d-g%d-%d", d, g, i)
						bt, row, err := b.add(ctx, store.Reading{DeviceID: fmt.Sprint("d", d), Payload: []byte(p)}, nil)
						cancel()
						if err == nil {
							accepted.Store(p, true)
							if i%7 == 0 {
								_ = bt.wait(context.Background(), row)
							}
						}
						done.Add(1)
					}
				}()
			}
		}
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(60 * time.Second):
			t.Fatalf("submitters stuck: %d of %d adds returned", done.Load(), 30*3*200)
		}
		b.close()
		n := 0
		accepted.Range(func(k, _ any) bool {
			n++
			if c := st.seen[k.(string)]; c != 1 {
				t.Errorf("%s written %d times", k, c)
			}
			return true
		})
		if len(st.seen) != n {
			t.Errorf("%d written, %d accepted", len(st.seen), n)
		}
	}
}
