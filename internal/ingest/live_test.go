package ingest

import (
	"context"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
)

// thermostatManifests answers every device with the thermostat template.
type thermostatManifests struct{ e *catalog.Entry }

func newThermostatManifests(t *testing.T) thermostatManifests {
	t.Helper()
	ts, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	m := ts["thermostat"]
	if m == nil {
		t.Fatal("no thermostat template")
	}
	return thermostatManifests{&catalog.Entry{Version: 1, Manifest: m, Checker: manifest.Compile(m)}}
}

func (m thermostatManifests) ForDevice(context.Context, string) (*catalog.Entry, error) {
	return m.e, nil
}

// recordingApps stands in for the apps service: it records what it was
// handed and wants every stream.
type recordingApps struct {
	mu  sync.Mutex
	got []string
}

func (a *recordingApps) Wants(string, string) bool { return true }
func (a *recordingApps) Deliver(device, stream string, payload []byte) {
	a.mu.Lock()
	a.got = append(a.got, device+"/"+stream+" "+string(payload))
	a.mu.Unlock()
}

func (a *recordingApps) delivered() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

// Apps get a reading only after the batch holding it is committed, and
// never when that commit fails: an app must not see a reading the store
// then loses.
func TestAppsGetOnlyCommittedReadings(t *testing.T) {
	tests := []struct {
		name      string
		appendErr error
		want      int
	}{
		{"commit succeeds", nil, 1},
		{"commit fails", errFakeStore, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStore()
			fs.gate = make(chan struct{})
			fs.entered = make(chan int, 1)
			fs.setAppendErr(tc.appendErr)
			apps := &recordingApps{}
			p := newPipeline(t, fs, Options{Manifests: newThermostatManifests(t), Apps: apps})
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			tk, err := p.Enqueue(ctx, "dev_1", "temperature", []byte(`{"celsius":21.5}`))
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			// The batch is in the store's hands but not committed: the app
			// has nothing yet. Delivery happens on the commit path, before
			// the waiters are released, so no sleep is needed to know.
			select {
			case <-fs.entered:
			case <-ctx.Done():
				t.Fatal("the batch never reached the store")
			}
			if got := apps.delivered(); len(got) != 0 {
				t.Fatalf("delivered before the commit: %q", got)
			}
			close(fs.gate)
			werr := tk.Wait(ctx)
			if (werr == nil) != (tc.appendErr == nil) {
				t.Fatalf("Wait = %v", werr)
			}
			got := apps.delivered()
			if len(got) != tc.want {
				t.Fatalf("delivered %q, want %d reading(s)", got, tc.want)
			}
			if tc.want == 1 && got[0] != `dev_1/temperature {"celsius":21.5}` {
				t.Errorf("delivered %q", got[0])
			}
		})
	}
}

// A reading the manifest refuses is never handed to apps.
func TestAppsNeverGetRefusedReadings(t *testing.T) {
	apps := &recordingApps{}
	p := newPipeline(t, newFakeStore(), Options{Manifests: newThermostatManifests(t), Apps: apps})
	if err := p.Submit(t.Context(), "dev_1", "temperature", []byte(`{"celsius":21,"where":"kitchen"}`), true); err == nil {
		t.Fatal("an undeclared field was accepted")
	}
	if err := p.Submit(t.Context(), "dev_1", "temperature", []byte(`{"celsius":22}`), true); err != nil {
		t.Fatal(err)
	}
	if got := apps.delivered(); len(got) != 1 || got[0] != `dev_1/temperature {"celsius":22}` {
		t.Errorf("delivered %q, want only the accepted reading", got)
	}
}
