// Package forward delivers readings to the recipients people agreed to
// share them with: the energy supplier a smart meter's manifest names, say.
// A household owner sets where each recipient receives (an HTTPS
// endpoint); each reading whose consent for that recipient is on is sent
// there, signed by the hub, and every delivery is recorded in the
// transparency log.
//
// It serves clause 2B of the IoT Good Practice paper (data goes only where
// the person said, to whom the label names, and they can see that it did):
// consent is checked when a reading arrives and again just before it is
// sent, so switching a recipient off stops the very next reading, even one
// already queued.
//
// # Delivery
//
// Delivery is best effort and at most once: readings wait in a bounded
// in-memory queue per endpoint (DefaultQueue), go out in batches (up to
// DefaultBatch readings, or what gathered in a second), and a batch that
// fails three times, or arrives to a full queue, is dropped and counted.
// Forwarding never holds up storage or the device's acknowledgement, and
// never stores a reading the person did not want kept on the hub.
//
// # The request
//
//	POST <url>
//	Content-Type: application/json
//	Candor-Timestamp: <unix seconds>
//	Candor-Signature: ed25519=<base64 signature of "<timestamp>.<body>">
//
//	{"recipient": "...", "readings": [{"device_id": "...", "stream": "...",
//	  "time": "RFC 3339", "payload": {...}}]}
//
// The recipient checks the signature with the hub's forwarding key
// (GET /api/v1/forward/key) and refuses stale timestamps.
package forward

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/store"
)

// Defaults of Options.
const (
	DefaultQueue = 1000
	DefaultBatch = 100
	attempts     = 3
)

// Store is what forwarding needs from storage.
type Store interface {
	Device(ctx context.Context, id string) (store.Device, error)
	RecipientEndpoints(ctx context.Context, householdID string) ([]store.RecipientEndpoint, error)
}

// Consent answers whether a stream may go to a recipient now.
type Consent interface {
	Allowed(deviceID, stream string) consent.Decision
}

// Options configure a Forwarder.
type Options struct {
	Store   Store
	Consent Consent
	Key     ed25519.PrivateKey // signs every request
	Log     auditlog.Recorder  // optional: records every delivery
	Logger  *slog.Logger
	Client  *http.Client // default: 10 s timeout, no redirects
	Queue   int          // per endpoint; default DefaultQueue
	Batch   int          // default DefaultBatch
	Linger  time.Duration
	// Backoff is the wait before the second attempt, doubled for the
	// third. Default one second.
	Backoff time.Duration
}

// Forwarder delivers readings. It is safe for concurrent use.
type Forwarder struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	endpoints map[string]map[string]*endpoint // household → recipient → endpoint
	loaded    map[string]bool                 // households whose endpoints are loaded
	homes     sync.Map                        // device id → household id
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Stats are an endpoint's delivery counts since the hub started.
type Stats struct {
	Delivered int64  `json:"delivered"`
	Dropped   int64  `json:"dropped"`
	Queued    int    `json:"queued"`
	LastError string `json:"last_error,omitempty"`
}

type item struct {
	DeviceID string          `json:"device_id"`
	Stream   string          `json:"stream"`
	Time     time.Time       `json:"time"`
	Payload  json.RawMessage `json:"payload"`
}

type endpoint struct {
	e     store.RecipientEndpoint
	q     chan item
	done  chan struct{}
	stop  context.CancelFunc
	sent  atomic.Int64
	lost  atomic.Int64
	errMu sync.Mutex
	err   string
}

// New returns a Forwarder. Close it to stop delivering.
func New(opts Options) *Forwarder {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Linger <= 0 {
		opts.Linger = time.Second
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout: 10 * time.Second,
			// A recipient that moves says so to its owner, not to the hub:
			// following redirects would send people's data where nobody
			// configured it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Forwarder{opts: opts, log: opts.Logger, endpoints: map[string]map[string]*endpoint{},
		loaded: map[string]bool{}, ctx: ctx, cancel: cancel}
}

// CheckURL says whether u may receive people's data: https, or http to a
// loopback address (a recipient running on the hub's own machine).
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return fmt.Errorf("url: %q is not an absolute URL", u)
	}
	if p.User != nil {
		return errors.New("url: must not contain a user name or password")
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		host := p.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return errors.New("url: plain http is allowed only to this machine (127.0.0.1, ::1, localhost); use https")
	}
	return fmt.Errorf("url: scheme %q is not https", p.Scheme)
}

// Forward queues a reading for the recipients its consent allows. It never
// blocks: a full queue drops the reading and counts it.
func (f *Forwarder) Forward(ctx context.Context, deviceID, stream string, t time.Time, payload []byte, recipients []string) {
	if len(recipients) == 0 {
		return
	}
	hh, err := f.household(ctx, deviceID)
	if err != nil {
		return
	}
	eps := f.endpointsOf(ctx, hh)
	for _, r := range recipients {
		ep := eps[r]
		if ep == nil {
			continue // the household has not said where this recipient receives
		}
		it := item{DeviceID: deviceID, Stream: stream, Time: t.UTC(), Payload: append(json.RawMessage(nil), payload...)}
		select {
		case ep.q <- it:
		default:
			ep.lost.Add(1)
		}
	}
}

func (f *Forwarder) household(ctx context.Context, deviceID string) (string, error) {
	if hh, ok := f.homes.Load(deviceID); ok {
		return hh.(string), nil
	}
	d, err := f.opts.Store.Device(ctx, deviceID)
	if err != nil {
		return "", err
	}
	f.homes.Store(deviceID, d.HouseholdID)
	return d.HouseholdID, nil
}

// endpointsOf returns the household's endpoints, loading them once.
func (f *Forwarder) endpointsOf(ctx context.Context, hh string) map[string]*endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded[hh] {
		if err := f.reloadLocked(ctx, hh); err != nil {
			f.log.Error("load recipient endpoints", "household", hh, "err", err)
			return nil
		}
	}
	return f.endpoints[hh]
}

// Reload re-reads a household's endpoints after a change: new ones start,
// removed ones stop (what they had queued is dropped), changed URLs apply
// to the next batch.
func (f *Forwarder) Reload(ctx context.Context, householdID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadLocked(ctx, householdID)
}

func (f *Forwarder) reloadLocked(ctx context.Context, hh string) error {
	list, err := f.opts.Store.RecipientEndpoints(ctx, hh)
	if err != nil {
		return err
	}
	cur := f.endpoints[hh]
	next := map[string]*endpoint{}
	for _, e := range list {
		if ep := cur[e.Recipient]; ep != nil && ep.e.URL == e.URL {
			next[e.Recipient] = ep
			continue
		}
		next[e.Recipient] = f.start(e)
	}
	for name, ep := range cur {
		if next[name] != ep {
			ep.stop()
		}
	}
	f.endpoints[hh] = next
	f.loaded[hh] = true
	return nil
}

// Stats reports a household's endpoints' counts by recipient.
func (f *Forwarder) Stats(householdID string) map[string]Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Stats{}
	for name, ep := range f.endpoints[householdID] {
		ep.errMu.Lock()
		out[name] = Stats{Delivered: ep.sent.Load(), Dropped: ep.lost.Load(), Queued: len(ep.q), LastError: ep.err}
		ep.errMu.Unlock()
	}
	return out
}

// Close stops every endpoint. What is still queued is dropped.
func (f *Forwarder) Close() {
	f.cancel()
	f.wg.Wait()
}

func (f *Forwarder) start(e store.RecipientEndpoint) *endpoint {
	ctx, cancel := context.WithCancel(f.ctx)
	ep := &endpoint{e: e, q: make(chan item, f.opts.Queue), done: make(chan struct{}), stop: cancel}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(ep.done)
		f.run(ctx, ep)
	}()
	return ep
}

// run gathers batches and delivers them until ctx ends.
func (f *Forwarder) run(ctx context.Context, ep *endpoint) {
	batch := make([]item, 0, f.opts.Batch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case it := <-ep.q:
			batch = append(batch, it)
		}
		linger := time.NewTimer(f.opts.Linger)
	gather:
		for len(batch) < f.opts.Batch {
			select {
			case it := <-ep.q:
				batch = append(batch, it)
			case <-linger.C:
				break gather
			case <-ctx.Done():
				linger.Stop()
				return
			}
		}
		linger.Stop()
		f.deliver(ctx, ep, batch)
	}
}

// deliver sends what consent still allows, and records it.
func (f *Forwarder) deliver(ctx context.Context, ep *endpoint, batch []item) {
	// Consent again, now: a switch turned off while the reading waited
	// keeps it from leaving.
	keep := batch[:0]
	for _, it := range batch {
		if slices.Contains(f.opts.Consent.Allowed(it.DeviceID, it.Stream).Recipients, ep.e.Recipient) {
			keep = append(keep, it)
		}
	}
	if len(keep) == 0 {
		return
	}
	body, err := json.Marshal(struct {
		Recipient string `json:"recipient"`
		Readings  []item `json:"readings"`
	}{ep.e.Recipient, keep})
	if err != nil {
		ep.lost.Add(int64(len(keep)))
		return
	}
	wait := f.opts.Backoff
	for attempt := 1; ; attempt++ {
		err = f.post(ctx, ep.e.URL, body)
		if err == nil {
			break
		}
		if attempt == attempts || ctx.Err() != nil {
			ep.lost.Add(int64(len(keep)))
			ep.errMu.Lock()
			ep.err = err.Error()
			ep.errMu.Unlock()
			f.log.Warn("forwarding failed; readings dropped", "household", ep.e.HouseholdID, "readings", len(keep), "err", err)
			return
		}
		select {
		case <-ctx.Done():
			ep.lost.Add(int64(len(keep)))
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	ep.sent.Add(int64(len(keep)))
	ep.errMu.Lock()
	ep.err = ""
	ep.errMu.Unlock()
	f.record(ctx, ep, keep)
}

func (f *Forwarder) post(ctx context.Context, u string, body []byte) error {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	msg := make([]byte, 0, len(ts)+1+len(body))
	msg = append(append(append(msg, ts...), '.'), body...)
	sig := ed25519.Sign(f.opts.Key, msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Candor-Timestamp", ts)
	req.Header.Set("Candor-Signature", "ed25519="+base64.StdEncoding.EncodeToString(sig))
	resp, err := f.opts.Client.Do(req)
	if err != nil {
		// The URL may carry a token in its query: name the host only.
		host := u
		if p, perr := url.Parse(u); perr == nil {
			host = p.Host
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("recipient answered %s", resp.Status)
	}
	return nil
}

// record logs one entry per device and stream of a delivered batch.
func (f *Forwarder) record(ctx context.Context, ep *endpoint, batch []item) {
	if f.opts.Log == nil {
		return
	}
	type key struct{ device, stream string }
	type span struct {
		n        int
		from, to time.Time
	}
	spans := map[key]*span{}
	var order []key
	for _, it := range batch {
		k := key{it.DeviceID, it.Stream}
		sp := spans[k]
		if sp == nil {
			sp = &span{from: it.Time, to: it.Time}
			spans[k] = sp
			order = append(order, k)
		}
		sp.n++
		if it.Time.Before(sp.from) {
			sp.from = it.Time
		}
		if it.Time.After(sp.to) {
			sp.to = it.Time
		}
	}
	for _, k := range order {
		sp := spans[k]
		ev := auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub, ID: "forward"}, Action: auditlog.ActionReadingsForward,
			Household: ep.e.HouseholdID, Subject: auditlog.Subject{Device: k.device, Stream: k.stream, From: sp.from, To: sp.to},
			Purpose: "sent to a recipient the person agreed to", Detail: map[string]string{"recipient": ep.e.Recipient, "readings": strconv.Itoa(sp.n)}}
		if err := f.opts.Log.Record(context.WithoutCancel(ctx), ev); err != nil {
			f.log.Error("record forwarding in the transparency log", "household", ep.e.HouseholdID, "err", err)
		}
	}
}

// Verify checks a request the way a recipient should: the signature over
// "<timestamp>.<body>" with the hub's key, and a timestamp within maxAge.
func Verify(pub ed25519.PublicKey, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("forward: bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxAge || d < -maxAge {
		return errors.New("forward: stale timestamp")
	}
	const prefix = "ed25519="
	if len(signature) <= len(prefix) || signature[:len(prefix)] != prefix {
		return errors.New("forward: bad signature header")
	}
	sig, err := base64.StdEncoding.DecodeString(signature[len(prefix):])
	if err != nil {
		return errors.New("forward: bad signature encoding")
	}
	msg := append(append([]byte(timestamp), '.'), body...)
	if !ed25519.Verify(pub, msg, sig) {
		return errors.New("forward: signature does not verify")
	}
	return nil
}

// PublicKey is the key recipients verify requests with.
func (f *Forwarder) PublicKey() ed25519.PublicKey { return f.opts.Key.Public().(ed25519.PublicKey) }
