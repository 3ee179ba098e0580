package forward

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

const supplier = "Your energy supplier"

// switches is consent as the forwarder sees it: recipients on per stream.
// (A stand-in for consent.Service, which has its own tests.)
type switches struct {
	mu sync.Mutex
	on map[string][]string // stream → recipients
	// asked, if set, receives the recipients of every decision handed
	// out: a barrier for tests that must know consent was checked.
	asked chan []string
}

func (s *switches) Allowed(_, stream string) consent.Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := consent.Decision{Resolved: true, Collect: true, Recipients: s.on[stream]}
	if s.asked != nil {
		select {
		case s.asked <- d.Recipients:
		default:
		}
	}
	return d
}

func (s *switches) set(stream string, recipients ...string) {
	s.mu.Lock()
	s.on[stream] = recipients
	s.mu.Unlock()
}

type events struct {
	mu  sync.Mutex
	evs []auditlog.Event
}

func (e *events) Record(_ context.Context, ev auditlog.Event) error {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	return nil
}

// recipient is a real HTTP server that checks every request's signature.
type recipient struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []item
	bad    atomic.Int64
	status atomic.Int64
	calls  atomic.Int64
}

func newRecipient(t *testing.T, pub ed25519.PublicKey) *recipient {
	r := &recipient{}
	r.status.Store(http.StatusNoContent)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.calls.Add(1)
		body, _ := io.ReadAll(req.Body)
		if err := Verify(pub, req.Header.Get("Candor-Timestamp"), req.Header.Get("Candor-Signature"), body, time.Now(), time.Minute); err != nil {
			r.bad.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var in struct {
			Recipient string `json:"recipient"`
			Readings  []item `json:"readings"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Recipient != supplier {
			r.bad.Add(1)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if st := int(r.status.Load()); st >= 300 {
			w.WriteHeader(st)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, in.Readings...)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recipient) received() []item {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]item(nil), r.got...)
}

type rig struct {
	db  *sqlite.DB
	sw  *switches
	ev  *events
	f   *Forwarder
	rcv *recipient
}

func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	if err := db.CreateHousehold(ctx, store.Household{ID: "h1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDevice(ctx, store.Device{ID: "meter", HouseholdID: "h1", Type: "smart-meter", SecretHash: "x", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	r := &rig{db: db, sw: &switches{on: map[string][]string{}}, ev: &events{}}
	r.rcv = newRecipient(t, pub)
	if err := db.PutRecipientEndpoint(ctx, store.RecipientEndpoint{HouseholdID: "h1", Recipient: supplier, URL: r.rcv.srv.URL, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Consent, opts.Key, opts.Log = db, r.sw, priv, r.ev
	if opts.Linger == 0 {
		opts.Linger = 10 * time.Millisecond
	}
	r.f = New(opts)
	t.Cleanup(r.f.Close)
	return r
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliversSignedAndLogged(t *testing.T) {
	r := newRig(t, Options{})
	ctx := t.Context()
	r.sw.set("power", supplier)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		r.f.Forward(ctx, "meter", "power", at.Add(time.Duration(i)*time.Second), []byte(`{"watts":12}`), []string{supplier})
	}
	// A recipient the household set no endpoint for gets nothing, silently.
	r.f.Forward(ctx, "meter", "power", at, []byte(`{"watts":1}`), []string{"Someone else"})
	waitUntil(t, "3 readings delivered", func() bool { return len(r.rcv.received()) == 3 })
	if r.rcv.bad.Load() != 0 {
		t.Errorf("%d requests failed the signature check", r.rcv.bad.Load())
	}
	got := r.rcv.received()
	if got[0].DeviceID != "meter" || got[0].Stream != "power" || string(got[0].Payload) != `{"watts":12}` || !got[0].Time.Equal(at) {
		t.Errorf("first reading %+v", got[0])
	}
	waitUntil(t, "the delivery logged", func() bool { r.ev.mu.Lock(); defer r.ev.mu.Unlock(); return len(r.ev.evs) > 0 })
	r.ev.mu.Lock()
	n := 0
	for _, ev := range r.ev.evs {
		if ev.Action != auditlog.ActionReadingsForward || ev.Subject.Device != "meter" || ev.Detail["recipient"] != supplier {
			t.Errorf("logged %+v", ev)
		}
		c, _ := json.Number(ev.Detail["readings"]).Int64()
		n += int(c)
	}
	r.ev.mu.Unlock()
	if n != 3 {
		t.Errorf("log entries count %d readings; want 3", n)
	}
	if st := r.f.Stats("h1")[supplier]; st.Delivered != 3 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestConsentOffStopsQueuedReadings switches the recipient off while a
// reading waits in the queue: it must not leave.
func TestConsentOffStopsQueuedReadings(t *testing.T) {
	r := newRig(t, Options{Linger: 300 * time.Millisecond, Batch: 10})
	r.sw.asked = make(chan []string, 10)
	ctx := t.Context()
	// The reading was handed over while the recipient was on (Forward is
	// given the recipients ingest decided on); the switch is off by the
	// time it would leave.
	r.sw.set("power")
	r.f.Forward(ctx, "meter", "power", time.Now(), []byte(`{"watts":1}`), []string{supplier})
	// Barrier: the forwarder checked consent for the lingering reading.
	select {
	case got := <-r.sw.asked:
		if len(got) != 0 {
			t.Fatalf("consent was checked as %v; the switch was off", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarder never checked consent before sending")
	}
	// Consent on again and a second reading: one endpoint delivers in
	// order, so once the second arrived, the first would have arrived
	// before it had it been sent.
	r.sw.set("power", supplier)
	r.f.Forward(ctx, "meter", "power", time.Now(), []byte(`{"watts":2}`), []string{supplier})
	waitUntil(t, "the reading sent after consent came back", func() bool { return len(r.rcv.received()) > 0 })
	if got := r.rcv.received(); len(got) != 1 || string(got[0].Payload) != `{"watts":2}` {
		t.Fatalf("received %+v; want only the reading sent after consent came back", got)
	}
	if calls := r.rcv.calls.Load(); calls != 1 {
		t.Errorf("the recipient was called %d times, want once", calls)
	}
}

func TestFailingRecipientDropsAndSaysWhy(t *testing.T) {
	r := newRig(t, Options{Backoff: time.Millisecond})
	r.rcv.status.Store(http.StatusServiceUnavailable)
	r.sw.set("power", supplier)
	r.f.Forward(t.Context(), "meter", "power", time.Now(), []byte(`{"watts":1}`), []string{supplier})
	waitUntil(t, "the batch dropped", func() bool { return r.f.Stats("h1")[supplier].Dropped == 1 })
	st := r.f.Stats("h1")[supplier]
	if r.rcv.calls.Load() != attempts || st.LastError == "" || st.Delivered != 0 {
		t.Errorf("calls %d, stats %+v; want %d attempts and the error kept", r.rcv.calls.Load(), st, attempts)
	}
}

func TestFullQueueDrops(t *testing.T) {
	r := newRig(t, Options{Queue: 2, Batch: 1, Linger: time.Hour})
	r.rcv.status.Store(http.StatusServiceUnavailable)
	r.sw.set("power", supplier)
	for range 20 {
		r.f.Forward(t.Context(), "meter", "power", time.Now(), []byte(`{}`), []string{supplier})
	}
	if st := r.f.Stats("h1")[supplier]; st.Dropped < 17 {
		t.Errorf("stats %+v; want most of 20 readings dropped by a queue of 2", st)
	}
}

func TestReloadStopsRemovedEndpoint(t *testing.T) {
	r := newRig(t, Options{})
	ctx := t.Context()
	r.sw.set("power", supplier)
	r.f.Forward(ctx, "meter", "power", time.Now(), []byte(`{}`), []string{supplier})
	waitUntil(t, "first delivery", func() bool { return len(r.rcv.received()) == 1 })
	if err := r.db.DeleteRecipientEndpoint(ctx, "h1", supplier); err != nil {
		t.Fatal(err)
	}
	r.f.mu.Lock()
	old := r.f.endpoints["h1"][supplier]
	r.f.mu.Unlock()
	if err := r.f.Reload(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	// Barrier: the removed endpoint's sender has ended. Forward queues
	// synchronously, so with no endpoint left nothing can deliver it.
	select {
	case <-old.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the removed endpoint's sender did not stop")
	}
	r.f.Forward(ctx, "meter", "power", time.Now(), []byte(`{}`), []string{supplier})
	if st, ok := r.f.Stats("h1")[supplier]; ok {
		t.Errorf("an endpoint for the removed recipient still exists: %+v", st)
	}
	if n := len(r.rcv.received()); n != 1 {
		t.Errorf("%d deliveries after the endpoint was removed; want still 1", n)
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://supplier.example/in", true},
		{"http://127.0.0.1:8080/in", true},
		{"http://localhost/in", true},
		{"http://[::1]/in", true},
		{"http://supplier.example/in", false},
		{"ftp://supplier.example/in", false},
		{"https://user:pw@supplier.example/in", false},
		{"/relative", false},
		{"", false},
	} {
		if err := CheckURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v; want ok=%v", tc.url, err, tc.ok)
		}
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	f := New(Options{Key: priv})
	defer f.Close()
	var gotTS, gotSig string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		gotTS, gotSig = req.Header.Get("Candor-Timestamp"), req.Header.Get("Candor-Signature")
		body, _ = io.ReadAll(req.Body)
	}))
	defer srv.Close()
	if err := f.post(t.Context(), srv.URL, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := Verify(pub, gotTS, gotSig, body, now, time.Minute); err != nil {
		t.Fatalf("genuine request: %v", err)
	}
	for name, check := range map[string]error{
		"body":      Verify(pub, gotTS, gotSig, []byte(`{"a":2}`), now, time.Minute),
		"timestamp": Verify(pub, "1", gotSig, body, now, time.Minute),
		"stale":     Verify(pub, gotTS, gotSig, body, now.Add(time.Hour), time.Minute),
		"signature": Verify(pub, gotTS, "ed25519=AAAA", body, now, time.Minute),
	} {
		if check == nil {
			t.Errorf("tampered %s verified", name)
		}
	}
}

func encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
