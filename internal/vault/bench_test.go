package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/store"
)

// reading100 is a 100-byte JSON reading, the size PERFORMANCE.md uses.
var reading100 = []byte(`{"celsius":21.5,"humidity":40.2,"battery":87,"rssi":-61,"fw":"1.4.2","seq":123456,"pad":"xxxxxxxxx"}`)

func init() {
	if len(reading100) != 100 {
		panic(fmt.Sprintf("reading100 is %d bytes", len(reading100)))
	}
}

var benchAAD = AppendReadingAAD(nil, "dev_0123456789abcdef", "temperature", t0)

// benchVault returns a vault with one prepared owner of the given mode.
func benchVault(b *testing.B, mode Mode, opts ...func(*Options)) (*Vault, string, *age.X25519Identity) {
	b.Helper()
	e := newEnv(b)
	v := e.vault(b, opts...)
	person := newIdentity(b)
	mustEnroll(b, v, "acc_bench", Settings{Mode: mode, Recipient: person.Recipient().String()})
	if err := v.Prepare(b.Context(), "acc_bench"); err != nil {
		b.Fatal(err)
	}
	return v, "acc_bench", person
}

// BenchmarkSeal is the per-reading cost of encryption at rest on the ingest
// path (target ≤ 1µs, no allocation with a reused buffer).
func BenchmarkSeal(b *testing.B) {
	b.Run("baseline-aes-gcm", func(b *testing.B) {
		// Raw AES-256-GCM with a counter nonce: the floor the vault adds to.
		blk, _ := aes.NewCipher(make([]byte, 32))
		a, _ := cipher.NewGCM(blk)
		buf := make([]byte, 0, 256)
		var n [12]byte
		b.SetBytes(int64(len(reading100)))
		b.ReportAllocs()
		for b.Loop() {
			n[11]++
			buf = a.Seal(buf[:0], n[:], reading100, benchAAD)
		}
	})
	for _, mode := range []Mode{HubAssisted, UserHeld} {
		b.Run(string(mode)+"/Seal", func(b *testing.B) {
			v, owner, _ := benchVault(b, mode)
			b.SetBytes(int64(len(reading100)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Seal(owner, reading100, benchAAD); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(mode)+"/AppendSeal", func(b *testing.B) {
			// User-held: default epochs (10k readings / 1 min), so the
			// epoch changes, key erasure and timers are in the figure.
			v, owner, _ := benchVault(b, mode)
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(reading100)))
			b.ReportAllocs()
			var err error
			for b.Loop() {
				if buf, err = v.AppendSeal(buf[:0], owner, reading100, benchAAD); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(mode)+"/AppendSeal-parallel", func(b *testing.B) {
			// Many publishers of one household at once.
			v, owner, _ := benchVault(b, mode)
			b.SetBytes(int64(len(reading100)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, 256)
				var err error
				for pb.Next() {
					if buf, err = v.AppendSeal(buf[:0], owner, reading100, benchAAD); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkOpen is the cost of reading history back.
func BenchmarkOpen(b *testing.B) {
	b.Run("hub-assisted/current-key", func(b *testing.B) {
		v, owner, _ := benchVault(b, HubAssisted)
		ct, _ := v.Seal(owner, reading100, benchAAD)
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		var err error
		for b.Loop() {
			if buf, err = v.AppendOpen(buf[:0], owner, ct, benchAAD); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hub-assisted/retired-key", func(b *testing.B) {
		v, owner, _ := benchVault(b, HubAssisted)
		ct, _ := v.Seal(owner, reading100, benchAAD)
		if _, err := v.Rotate(b.Context(), owner); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		var err error
		for b.Loop() {
			if buf, err = v.AppendOpen(buf[:0], owner, ct, benchAAD); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("user-held/hub-refuses", func(b *testing.B) {
		// What a dashboard pays to learn it cannot read a user-held reading.
		v, owner, _ := benchVault(b, UserHeld, userEpoch(1, time.Hour))
		ct, _ := v.Seal(owner, reading100, benchAAD)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Open(owner, ct, benchAAD); !errors.Is(err, ErrUserHeld) {
				b.Fatal(err)
			}
		}
	})
	b.Run("user-held/identity-export", func(b *testing.B) {
		// An export: readings in order across many epochs (100 readings
		// per epoch here, 1000 epochs), with the person's identity.
		v, owner, person := benchVault(b, UserHeld, userEpoch(100, time.Hour))
		const n = 100_000
		cts := make([][]byte, n)
		for i := range cts {
			cts[i], _ = v.Seal(owner, reading100, benchAAD)
		}
		op, err := v.Unlock(owner, person)
		if err != nil {
			b.Fatal(err)
		}
		defer op.Close()
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if buf, err = op.AppendOpen(buf[:0], cts[i%n], benchAAD); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("user-held/OpenWithIdentity-one-shot", func(b *testing.B) {
		// One reading with the identity: an age unwrap each time.
		v, owner, person := benchVault(b, UserHeld)
		ct, _ := v.Seal(owner, reading100, benchAAD)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.OpenWithIdentity(owner, ct, benchAAD, person); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWrap is the public-key cost, paid per data key (at start-up,
// rotation, a change of setting), never per reading.
func BenchmarkWrap(b *testing.B) {
	person, hub := newIdentity(b), newIdentity(b)
	root := secret{1}
	payload := encodePayload(&root, "acc_bench", KeyID{1})
	b.Run("age-1-recipient", func(b *testing.B) { // user-held
		rs := []age.Recipient{person.Recipient()}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := wrap(payload, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("age-2-recipients", func(b *testing.B) { // hub-assisted with a person
		rs := []age.Recipient{person.Recipient(), hub.Recipient()}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := wrap(payload, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("age-unwrap", func(b *testing.B) {
		w, _ := wrap(payload, []age.Recipient{person.Recipient(), hub.Recipient()})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unwrapChainKey(w, hub, "acc_bench", KeyID{1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-key-stored", func(b *testing.B) {
		// Rotate: random key, age wrap to person and hub, durable store
		// write (synchronous=FULL).
		v, owner, _ := benchVault(b, HubAssisted)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Rotate(b.Context(), owner); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEpochKey is the cost of one epoch's key on the opening side:
// 33 HMACs down the epoch tree and an AES-GCM key setup.
func BenchmarkEpochKey(b *testing.B) {
	ck := secret{1}
	d := newDeriver(&ck)
	b.ReportAllocs()
	var e uint32
	for b.Loop() {
		e += 0x9E3779B9 // far apart: no path sharing, no cache hits
		if _, err := d.cipher(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShredAfter1MReadings shows that crypto-shredding does not grow
// with history. Setup (untimed): one owner with 1,000,000 readings, stored
// in the readings table of the same SQLite file, and one with 1,000, both
// with 10 data keys. Each is shredded once and reported as a metric (the
// cost is a durable commit, so the figures move with the disk); every
// one of the million readings then fails with ErrShredded. The timed loop
// shreds fresh one-key owners in the same (large) database.
func BenchmarkShredAfter1MReadings(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	v := e.vault(b)
	person := newIdentity(b)
	type owner struct {
		id       string
		readings int
		arena    []byte // all sealed readings, back to back
		size     int
	}
	owners := []*owner{{id: "acc_million", readings: 1_000_000}, {id: "acc_thousand", readings: 1_000}}
	const keysPerOwner = 10
	seal := func(o *owner) {
		mustEnroll(b, v, o.id, Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
		o.size = len(reading100) + Overhead
		o.arena = make([]byte, 0, o.readings*o.size)
		batch := make([]store.Reading, 0, 10_000)
		for i := range o.readings {
			if i > 0 && i%(o.readings/keysPerOwner) == 0 {
				if _, err := v.Rotate(ctx, o.id); err != nil {
					b.Fatal(err)
				}
			}
			ts := t0.Add(time.Duration(i) * time.Millisecond)
			aad := AppendReadingAAD(nil, "dev_"+o.id, "power", ts)
			start := len(o.arena)
			var err error
			if o.arena, err = v.AppendSeal(o.arena, o.id, reading100, aad); err != nil {
				b.Fatal(err)
			}
			batch = append(batch, store.Reading{DeviceID: "dev_" + o.id, Stream: "power", Time: ts, Payload: o.arena[start:]})
			if len(batch) == cap(batch) || i == o.readings-1 {
				if err := e.st.AppendReadings(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if ks := storedKeys(b, e.st, o.id); len(ks) != keysPerOwner {
			b.Fatalf("%s has %d keys, want %d", o.id, len(ks), keysPerOwner)
		}
	}
	setup := time.Now()
	for _, o := range owners {
		seal(o)
	}
	if n, err := e.st.CountReadings(ctx, "dev_acc_million"); err != nil || n != 1_000_000 {
		b.Fatalf("stored readings: %d, %v", n, err)
	}
	b.Logf("setup: sealed and stored %d readings in %v", 1_001_000, time.Since(setup).Round(time.Millisecond))

	// Start both measurements from the same state: an unrelated shred
	// first checkpoints and truncates the WAL the setup left behind.
	mustEnroll(b, v, "acc_warmup", Settings{Mode: HubAssisted})
	if err := v.Shred(ctx, "acc_warmup"); err != nil {
		b.Fatal(err)
	}
	var metrics []func() // reported after the loop: ResetTimer drops metrics
	for _, o := range owners {
		start := time.Now()
		if err := v.Shred(ctx, o.id); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		metrics = append(metrics, func() {
			b.ReportMetric(float64(d.Nanoseconds()), fmt.Sprintf("ns-shred-%d-readings", o.readings))
		})
		b.Logf("shred %s (%d readings, %d keys): %v", o.id, o.readings, keysPerOwner, d)
	}
	// Every sealed reading is now unreadable, in memory and as stored.
	verify := time.Now()
	for _, o := range owners {
		for i := range o.readings {
			ct := o.arena[i*o.size : (i+1)*o.size]
			if _, err := v.Open(o.id, ct, nil); !errors.Is(err, ErrShredded) {
				b.Fatalf("reading %d of %s after shredding: %v", i, o.id, err)
			}
		}
	}
	stored, err := e.st.Readings(ctx, store.ReadingQuery{DeviceID: "dev_acc_million", Limit: 1000})
	if err != nil || len(stored) != 1000 {
		b.Fatal(err)
	}
	for _, r := range stored {
		aad := AppendReadingAAD(nil, r.DeviceID, r.Stream, r.Time)
		if _, err := v.Open("acc_million", r.Payload, aad); !errors.Is(err, ErrShredded) {
			b.Fatalf("stored reading %d after shredding: %v", r.Seq, err)
		}
	}
	b.Logf("all %d readings fail with ErrShredded (checked in %v)", 1_001_000, time.Since(verify).Round(time.Millisecond))
	// A fresh vault on the same store agrees (restart).
	v2, err := New(ctx, e.st, Options{Hub: e.hub})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := v2.Open("acc_million", owners[0].arena[:owners[0].size], nil); !errors.Is(err, ErrShredded) {
		b.Fatalf("after restart: %v", err)
	}
	v2.Close()

	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		id := fmt.Sprintf("acc_fresh_%d", n)
		n++
		mustEnroll(b, v, id, Settings{Mode: HubAssisted})
		b.StartTimer()
		if err := v.Shred(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	for _, m := range metrics {
		m()
	}
}
