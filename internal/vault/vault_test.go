package vault

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/store"
)

func TestSealOpenHubAssisted(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	person := newIdentity(t)
	en := mustEnroll(t, v, "acc_alex", Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
	if en.Identity != "" || en.Recipient != person.Recipient().String() || en.KeyID == "" {
		t.Fatalf("enrollment: %+v", en)
	}
	rs := sealN(t, v, "acc_alex", 0, 100)
	for _, r := range rs {
		if len(r.ct) != len(r.pt)+Overhead {
			t.Fatalf("sealed %d bytes into %d, want +%d", len(r.pt), len(r.ct), Overhead)
		}
		if bytes.Contains(r.ct, r.pt) {
			t.Fatal("ciphertext contains the plaintext")
		}
		if h := headerOf(t, r.ct); h.KeyID.String() != en.KeyID {
			t.Fatalf("sealed under %s, want %s", h.KeyID, en.KeyID)
		}
		mustOpen(t, v, "acc_alex", r)
		mustOpenWith(t, v, "acc_alex", r, person) // the person's key opens it too
	}
	// Nonces never repeat.
	seen := map[Header]bool{}
	for _, r := range rs {
		h := headerOf(t, r.ct)
		if seen[h] {
			t.Fatalf("header %+v used twice", h)
		}
		seen[h] = true
	}
	// After a restart the hub still reads all history (hub copy).
	v = e.restart(t, v)
	for _, r := range rs {
		mustOpen(t, v, "acc_alex", r)
	}
	more := sealN(t, v, "acc_alex", 100, 5)
	if headerOf(t, more[0].ct).KeyID == headerOf(t, rs[0].ct).KeyID {
		t.Fatal("a restarted vault sealed under the previous process's key")
	}
	mustOpen(t, v, "acc_alex", more[4])
}

func TestHouseholdWithoutPerson(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	mustEnroll(t, v, "hh_home", Settings{Mode: HubAssisted})
	r := sealN(t, v, "hh_home", 0, 1)[0]
	mustOpen(t, v, "hh_home", r)
	v = e.restart(t, v)
	mustOpen(t, v, "hh_home", r)
	if _, err := v.Enroll(t.Context(), "hh_other", Settings{Mode: UserHeld}); err == nil {
		t.Fatal("user-held mode without a recipient was accepted")
	}
}

func TestUserHeldEpochs(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t, userEpoch(3, time.Hour))
	en := mustEnroll(t, v, "acc_sam", Settings{Mode: UserHeld, GenerateIdentity: true})
	person, err := ParseIdentity(en.Identity)
	if err != nil {
		t.Fatal(err)
	}
	rs := sealN(t, v, "acc_sam", 0, 2)
	// While the epoch lasts the hub can read what it sealed in it.
	mustOpen(t, v, "acc_sam", rs[0])
	mustOpen(t, v, "acc_sam", rs[1])
	// The third reading ends the epoch: its keys are erased at once.
	rs = append(rs, sealN(t, v, "acc_sam", 2, 1)...)
	for _, r := range rs {
		wantOpenErr(t, v, "acc_sam", r, ErrUserHeld)
	}
	// The next epoch is readable by the hub while it lasts, then not.
	rs = append(rs, sealN(t, v, "acc_sam", 3, 1)...)
	if h := headerOf(t, rs[3].ct); h.Epoch != 1 || h.Counter != 0 {
		t.Fatalf("fourth reading header %+v, want epoch 1 counter 0", h)
	}
	mustOpen(t, v, "acc_sam", rs[3])
	rs = append(rs, sealN(t, v, "acc_sam", 4, 19)...) // epochs 1…7; 7 not yet full
	for _, r := range rs[:len(rs)-2] {
		wantOpenErr(t, v, "acc_sam", r, ErrUserHeld)
	}
	// The person's identity opens everything, across epochs.
	op, err := v.Unlock("acc_sam", person)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		pt, err := op.Open(r.ct, r.aad)
		if err != nil || !bytes.Equal(pt, r.pt) {
			t.Fatalf("Opener: %q, %v", pt, err)
		}
	}
	op.Close()
	if _, err := op.Open(rs[0].ct, rs[0].aad); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Opener.Close: %v", err)
	}
	mustOpenWith(t, v, "acc_sam", rs[0], person)
	// Another identity opens nothing.
	other := newIdentity(t)
	if _, err := v.OpenWithIdentity("acc_sam", rs[0].ct, rs[0].aad, other); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("OpenWithIdentity with another identity: %v, want ErrWrongIdentity", err)
	}
	if _, err := v.OpenWithIdentity("acc_sam", rs[0].ct, rs[0].aad, e.hub); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("OpenWithIdentity with the hub's identity: %v, want ErrWrongIdentity", err)
	}
	// The error says why, honestly.
	_, err = v.Open("acc_sam", rs[0].ct, rs[0].aad)
	if !strings.Contains(err.Error(), "user-held") || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("ErrUserHeld text does not explain: %v", err)
	}
	// After a restart the hub reads nothing of a user-held owner, not
	// even what it sealed last.
	last := rs[len(rs)-1]
	mustOpen(t, v, "acc_sam", last)
	v = e.restart(t, v, userEpoch(3, time.Hour))
	wantOpenErr(t, v, "acc_sam", last, ErrUserHeld)
	mustOpenWith(t, v, "acc_sam", last, person)
}

func TestUserHeldEpochTimerErasesIdleKey(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t, userEpoch(1000, 50*time.Millisecond))
	person := newIdentity(t)
	mustEnroll(t, v, "acc_kim", Settings{Mode: UserHeld, Recipient: person.Recipient().String()})
	r := sealN(t, v, "acc_kim", 0, 1)[0]
	mustOpen(t, v, "acc_kim", r)
	// No further reading arrives: the timer alone must erase the key.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Open("acc_kim", r.ct, r.aad)
		if errors.Is(err, ErrUserHeld) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the epoch key was still in memory 5s after a 50ms epoch")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustOpenWith(t, v, "acc_kim", r, person)
	// The next reading starts a new epoch of the same key.
	r2 := sealN(t, v, "acc_kim", 1, 1)[0]
	if h1, h2 := headerOf(t, r.ct), headerOf(t, r2.ct); h1.KeyID != h2.KeyID || h2.Epoch != h1.Epoch+1 {
		t.Fatalf("headers %+v then %+v", h1, h2)
	}
	mustOpen(t, v, "acc_kim", r2)
}

func TestRecipients(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	ctx := t.Context()
	// Bring your own: nothing secret comes back.
	mine := newIdentity(t)
	en := mustEnroll(t, v, "acc_byo", Settings{Mode: UserHeld, Recipient: "  " + mine.Recipient().String() + "\n"})
	if en.Identity != "" || en.Recipient != mine.Recipient().String() {
		t.Fatalf("bring-your-own enrollment: %+v", en)
	}
	// Generated: the identity comes back once and is never stored.
	gen := mustEnroll(t, v, "acc_gen", Settings{Mode: HubAssisted, GenerateIdentity: true})
	if !strings.HasPrefix(gen.Identity, "AGE-SECRET-KEY-1") || !strings.HasPrefix(gen.Recipient, "age1") {
		t.Fatalf("generated enrollment: %+v", gen)
	}
	id, err := ParseIdentity(gen.Identity)
	if err != nil {
		t.Fatal(err)
	}
	if id.(*age.X25519Identity).Recipient().String() != gen.Recipient {
		t.Fatal("generated identity does not match its recipient")
	}
	r := sealN(t, v, "acc_gen", 0, 1)[0]
	mustOpenWith(t, v, "acc_gen", r, id)
	st, err := v.Status("acc_gen")
	if err != nil || st.Recipient != gen.Recipient || st.Mode != HubAssisted || len(st.Keys) != 1 || !st.Keys[0].InUse || !st.Keys[0].HubReadable {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if raw := dbBytes(t, e.path); bytes.Contains(raw, []byte(gen.Identity)) || bytes.Contains(raw, []byte(strings.ToLower(gen.Identity))) {
		t.Fatal("the generated identity was stored")
	}
	// Refusals name the problem and never echo a secret.
	for _, bad := range []string{"age1notarecipient", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG", gen.Identity} {
		_, err := v.Enroll(ctx, "acc_bad", Settings{Mode: UserHeld, Recipient: bad})
		if err == nil {
			t.Fatalf("recipient %.20q accepted", bad)
		}
		if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Fatalf("error echoes a secret: %v", err)
		}
	}
	if _, err := v.Enroll(ctx, "acc_bad", Settings{Mode: UserHeld, Recipient: mine.Recipient().String(), GenerateIdentity: true}); err == nil {
		t.Fatal("recipient and generated identity both accepted")
	}
	if _, err := ParseIdentity("AGE-SECRET-KEY-1NOPE"); err == nil || strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("ParseIdentity: %v", err)
	}
	if _, err := v.Seal("acc_bad", []byte(`{}`), nil); !errors.Is(err, ErrUnknownOwner) {
		t.Fatalf("Seal for a refused owner: %v, want ErrUnknownOwner", err)
	}
	// Enrolling again with the same settings changes nothing.
	again := mustEnroll(t, v, "acc_byo", Settings{Mode: UserHeld, Recipient: mine.Recipient().String()})
	if again.KeyID != en.KeyID {
		t.Fatalf("re-enrolling with the same settings started key %s, had %s", again.KeyID, en.KeyID)
	}
}

func TestRotation(t *testing.T) {
	for _, mode := range []Mode{HubAssisted, UserHeld} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t)
			v := e.vault(t)
			person := newIdentity(t)
			en := mustEnroll(t, v, "acc_a", Settings{Mode: mode, Recipient: person.Recipient().String()})
			old := sealN(t, v, "acc_a", 0, 10)
			newID, err := v.Rotate(t.Context(), "acc_a")
			if err != nil {
				t.Fatal(err)
			}
			if newID == en.KeyID {
				t.Fatal("Rotate kept the key")
			}
			fresh := sealN(t, v, "acc_a", 10, 10)
			for _, r := range fresh {
				if h := headerOf(t, r.ct); h.KeyID.String() != newID {
					t.Fatalf("after rotation sealed under %s, want %s", h.KeyID, newID)
				}
			}
			for _, r := range append(old, fresh...) {
				if mode == HubAssisted {
					mustOpen(t, v, "acc_a", r)
				}
				mustOpenWith(t, v, "acc_a", r, person)
			}
			ks := storedKeys(t, e.st, "acc_a")
			if len(ks) != 2 || ks[0].KeyID != en.KeyID || ks[0].RetiredAt.IsZero() || !ks[1].RetiredAt.IsZero() {
				t.Fatalf("stored keys: %+v", ks)
			}
			st, err := v.Status("acc_a")
			if err != nil || len(st.Keys) != 2 || !st.Keys[0].RetiredAt.Equal(ks[0].RetiredAt) || st.Keys[0].InUse || !st.Keys[1].InUse {
				t.Fatalf("status keys %+v, %v; stored %+v", st.Keys, err, ks)
			}
			// And after a restart.
			v = e.restart(t, v)
			for _, r := range append(old, fresh...) {
				if mode == HubAssisted {
					mustOpen(t, v, "acc_a", r)
				} else {
					wantOpenErr(t, v, "acc_a", r, ErrUserHeld)
				}
				mustOpenWith(t, v, "acc_a", r, person)
			}
		})
	}
}

func TestShred(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	ctx := t.Context()
	person := newIdentity(t)
	mustEnroll(t, v, "acc_gone", Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
	mustEnroll(t, v, "acc_held", Settings{Mode: UserHeld, Recipient: person.Recipient().String()})
	mustEnroll(t, v, "acc_stays", Settings{Mode: HubAssisted})
	gone := sealN(t, v, "acc_gone", 0, 50)
	if _, err := v.Rotate(ctx, "acc_gone"); err != nil {
		t.Fatal(err)
	}
	gone = append(gone, sealN(t, v, "acc_gone", 50, 50)...)
	held := sealN(t, v, "acc_held", 0, 10)
	stays := sealN(t, v, "acc_stays", 0, 10)
	var wrapped [][]byte
	for _, owner := range []string{"acc_gone", "acc_held"} {
		for _, k := range storedKeys(t, e.st, owner) {
			wrapped = append(wrapped, k.Wrapped)
		}
	}
	if len(wrapped) != 3 {
		t.Fatalf("%d keys before shredding, want 3", len(wrapped))
	}
	raw := dbBytes(t, e.path)
	for i, w := range wrapped {
		if !bytes.Contains(raw, w[len(w)-48:]) {
			t.Fatalf("wrapped key %d is not in the database files to begin with: the check below would prove nothing", i)
		}
	}

	for _, owner := range []string{"acc_gone", "acc_held"} {
		if err := v.Shred(ctx, owner); err != nil {
			t.Fatal(err)
		}
	}
	check := func(v *Vault) {
		t.Helper()
		for _, r := range gone {
			wantOpenErr(t, v, "acc_gone", r, ErrShredded)
			if _, err := v.OpenWithIdentity("acc_gone", r.ct, r.aad, person); !errors.Is(err, ErrShredded) {
				t.Fatalf("OpenWithIdentity after shredding: %v", err)
			}
		}
		for _, r := range held {
			wantOpenErr(t, v, "acc_held", r, ErrShredded)
		}
		if _, err := v.Seal("acc_gone", []byte(`{}`), nil); !errors.Is(err, ErrShredded) {
			t.Fatalf("Seal after shredding: %v", err)
		}
		if _, err := v.Enroll(ctx, "acc_gone", Settings{Mode: HubAssisted}); !errors.Is(err, ErrShredded) {
			t.Fatalf("Enroll after shredding: %v", err)
		}
		if _, err := v.Rotate(ctx, "acc_gone"); !errors.Is(err, ErrShredded) {
			t.Fatalf("Rotate after shredding: %v", err)
		}
		if st, err := v.Status("acc_gone"); err != nil || !st.Shredded || len(st.Keys) != 0 {
			t.Fatalf("status after shredding: %+v, %v", st, err)
		}
		for _, r := range stays {
			mustOpen(t, v, "acc_stays", r)
		}
	}
	check(v)
	if ks := storedKeys(t, e.st, "acc_gone"); len(ks) != 0 {
		t.Fatalf("keys left after shredding: %d", len(ks))
	}
	// The destroyed wrapped keys are gone from the file and its WAL, not
	// just unlinked from the table.
	raw = dbBytes(t, e.path)
	for i, w := range wrapped {
		if bytes.Contains(raw, w[len(w)-48:]) {
			t.Fatalf("wrapped key %d is still in the database files after shredding", i)
		}
	}
	// Shredding is final, also across a restart.
	v = e.restart(t, v)
	check(v)
	if err := v.Shred(ctx, "acc_gone"); err != nil {
		t.Fatalf("shredding twice: %v", err)
	}
	// An owner never enrolled can be shredded (account deleted before it
	// had keys) and can then never be enrolled.
	if err := v.Shred(ctx, "acc_never"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Enroll(ctx, "acc_never", Settings{Mode: HubAssisted}); !errors.Is(err, ErrShredded) {
		t.Fatalf("Enroll of a shredded id: %v", err)
	}
}

// TestShredCostIsPerKey shows why shredding does not grow with history:
// however many readings an owner has, it has the same few key rows, and
// shredding deletes only those. BenchmarkShredAfter1MReadings measures it.
func TestShredCostIsPerKey(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t, userEpoch(1000, time.Hour))
	person := newIdentity(t)
	for _, owner := range []string{"acc_few", "acc_many"} {
		mustEnroll(t, v, owner, Settings{Mode: UserHeld, Recipient: person.Recipient().String()})
	}
	sealN(t, v, "acc_few", 0, 10)
	many := sealN(t, v, "acc_many", 0, 100_000) // 100 epochs
	if h := headerOf(t, many[len(many)-1].ct); h.Epoch != 99 {
		t.Fatalf("last epoch %d, want 99", h.Epoch)
	}
	few, lots := storedKeys(t, e.st, "acc_few"), storedKeys(t, e.st, "acc_many")
	if len(few) != 1 || len(lots) != 1 {
		t.Fatalf("key rows: %d for 10 readings, %d for 100k readings; want 1 and 1", len(few), len(lots))
	}
	for _, owner := range []string{"acc_few", "acc_many"} {
		start := time.Now()
		if err := v.Shred(t.Context(), owner); err != nil {
			t.Fatal(err)
		}
		t.Logf("shred %s: %v", owner, time.Since(start))
	}
	wantOpenErr(t, v, "acc_many", many[0], ErrShredded)
	wantOpenErr(t, v, "acc_many", many[len(many)-1], ErrShredded)
}

func TestTampering(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted})
	r := sealN(t, v, "acc_a", 0, 1)[0]
	mustOpen(t, v, "acc_a", r)
	for i := range r.ct {
		for _, bit := range []byte{0x01, 0x80} {
			ct := bytes.Clone(r.ct)
			ct[i] ^= bit
			if pt, err := v.Open("acc_a", ct, r.aad); err == nil {
				t.Fatalf("flipping bit %#x of byte %d went unnoticed: %q", bit, i, pt)
			}
		}
	}
	// A reading's binding: another device, stream, time or seq fails.
	for _, aad := range [][]byte{
		AppendReadingAAD(nil, "dev_2", "temperature", t0),
		AppendReadingAAD(nil, "dev_1", "humidity", t0),
		AppendReadingAAD(nil, "dev_1", "temperature", t0.Add(time.Nanosecond)),
		nil,
		append(bytes.Clone(r.aad), 0),
	} {
		if _, err := v.Open("acc_a", r.ct, aad); !errors.Is(err, ErrAuth) {
			t.Fatalf("wrong aad: %v, want ErrAuth", err)
		}
	}
	// Two readings swapped between rows fail too (their aad differ).
	r2 := sealN(t, v, "acc_a", 1, 1)[0]
	if _, err := v.Open("acc_a", r2.ct, r.aad); !errors.Is(err, ErrAuth) {
		t.Fatalf("swapped reading: %v, want ErrAuth", err)
	}
	for _, n := range []int{0, 1, HeaderSize, Overhead - 1} {
		if _, err := v.Open("acc_a", r.ct[:n], r.aad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v, want ErrMalformed", n, err)
		}
	}
	if _, err := v.Open("acc_a", r.ct[:len(r.ct)-1], r.aad); !errors.Is(err, ErrAuth) {
		t.Fatalf("one byte short: %v, want ErrAuth", err)
	}
	if IsSealed([]byte(`{"celsius":21.5,"padding":"xxxxxxxxxxxxxxxxxxxxxxx"}`)) || !IsSealed(r.ct) {
		t.Fatal("IsSealed is wrong")
	}
	// AppendReadingAAD is unambiguous.
	if bytes.Equal(AppendReadingAAD(nil, "ab", "c", t0), AppendReadingAAD(nil, "a", "bc", t0)) {
		t.Fatal("AAD of different readings collide")
	}
}

func TestWrongOwner(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	ctx := t.Context()
	mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted})
	mustEnroll(t, v, "acc_b", Settings{Mode: HubAssisted})
	r := sealN(t, v, "acc_a", 0, 1)[0]
	wantOpenErr(t, v, "acc_b", r, ErrUnknownKey)
	wantOpenErr(t, v, "acc_nobody", r, ErrUnknownOwner)
	// Even a key row copied into the other owner's keys (someone with
	// write access to the database) opens nothing: owner and key id are
	// bound into the wrapped key and the key schedule.
	a := storedKeys(t, e.st, "acc_a")[0]
	moved := a
	moved.OwnerID, moved.RetiredAt = "acc_b", t0
	if err := e.st.PutKey(ctx, moved); err != nil {
		t.Fatal(err)
	}
	v = e.restart(t, v)
	wantOpenErr(t, v, "acc_b", r, ErrUnknownKey)
	mustOpen(t, v, "acc_a", r)
}

func TestNoPlaintextKeysStored(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t, userEpoch(2, time.Hour))
	person := newIdentity(t)
	mustEnroll(t, v, "acc_h", Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
	mustEnroll(t, v, "acc_u", Settings{Mode: UserHeld, Recipient: person.Recipient().String()})
	sealN(t, v, "acc_h", 0, 100)
	sealN(t, v, "acc_u", 0, 100)
	if _, err := v.Rotate(t.Context(), "acc_h"); err != nil {
		t.Fatal(err)
	}
	sealN(t, v, "acc_h", 100, 10)
	raw := dbBytes(t, e.path)
	n := 0
	for _, owner := range []string{"acc_h", "acc_u"} {
		for _, k := range storedKeys(t, e.st, owner) {
			root, ck, leaf0, mk0 := keysOf(t, k, person)
			for name, s := range map[string]secret{"data key R": root, "CK": ck, "leaf 0": leaf0, "MK_0": mk0} {
				if bytes.Contains(raw, s[:]) {
					t.Fatalf("%s of %s/%s is in the database files", name, owner, k.KeyID)
				}
			}
			if bytes.Contains(k.Wrapped, root[:]) {
				t.Fatal("wrapped key contains the key")
			}
			n++
		}
	}
	if n != 3 {
		t.Fatalf("checked %d keys, want 3", n)
	}
}

func TestSwitchModes(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t, userEpoch(5, time.Hour))
	ctx := t.Context()
	person := newIdentity(t)
	rcpt := person.Recipient().String()
	mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted, Recipient: rcpt})
	early := sealN(t, v, "acc_a", 0, 3)
	mustOpen(t, v, "acc_a", early[0])
	before := storedKeys(t, e.st, "acc_a")[0].Wrapped
	if !bytes.Contains(dbBytes(t, e.path), before[len(before)-48:]) {
		t.Fatal("the wrapped key is not in the database files to begin with")
	}

	// To user-held: the hub gives up its copy of the history.
	en := mustEnroll(t, v, "acc_a", Settings{Mode: UserHeld, Recipient: rcpt})
	if len(en.NotRewrapped) != 0 {
		t.Fatalf("not rewrapped: %v", en.NotRewrapped)
	}
	for _, r := range early {
		wantOpenErr(t, v, "acc_a", r, ErrUserHeld)
		mustOpenWith(t, v, "acc_a", r, person)
	}
	ks := storedKeys(t, e.st, "acc_a")
	if len(ks) != 2 || ks[0].Mode != UserHeld || bytes.Equal(ks[0].Wrapped, before) {
		t.Fatalf("keys after switching: %+v", ks)
	}
	if _, err := unwrap(ks[0].Wrapped, e.hub); err == nil {
		t.Fatal("the hub key still unwraps the rewrapped key")
	}
	if bytes.Contains(dbBytes(t, e.path), before[len(before)-48:]) {
		t.Fatal("the hub-readable wrapping is still in the database files")
	}
	st, _ := v.Status("acc_a")
	if !strings.Contains(st.HubCanRead, "at most the readings of the current epoch") || !strings.Contains(st.HubCanRead, "5 readings") {
		t.Fatalf("status does not say what the hub can read: %q", st.HubCanRead)
	}
	mid := sealN(t, v, "acc_a", 3, 10)
	v = e.restart(t, v, userEpoch(5, time.Hour))
	wantOpenErr(t, v, "acc_a", early[0], ErrUserHeld)

	// Back to hub-assisted: user-only keys stay so until the person
	// rewraps them with their identity.
	en = mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted, Recipient: rcpt})
	if len(en.NotRewrapped) != 2 {
		t.Fatalf("not rewrapped: %v, want both user-held keys", en.NotRewrapped)
	}
	wantOpenErr(t, v, "acc_a", mid[0], ErrUserHeld)
	st, _ = v.Status("acc_a")
	if !strings.Contains(st.HubCanRead, "2 of 3 keys are held by the person only") {
		t.Fatalf("status hides the exception: %q", st.HubCanRead)
	}
	if _, err := v.Rewrap(ctx, "acc_a", newIdentity(t)); err != nil {
		t.Fatal(err)
	}
	res, err := v.Rewrap(ctx, "acc_a", person)
	if err != nil || res.Keys != 2 || len(res.Skipped) != 0 {
		t.Fatalf("Rewrap: %+v, %v", res, err)
	}
	for _, r := range append(early, mid...) {
		mustOpen(t, v, "acc_a", r)
	}
	v = e.restart(t, v)
	for _, r := range append(early, mid...) {
		mustOpen(t, v, "acc_a", r)
	}
}

func TestRecipientChange(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	ctx := t.Context()
	id1, id2 := newIdentity(t), newIdentity(t)
	mustEnroll(t, v, "acc_a", Settings{Mode: UserHeld, Recipient: id1.Recipient().String()})
	r := sealN(t, v, "acc_a", 0, 1)[0]
	en := mustEnroll(t, v, "acc_a", Settings{Mode: UserHeld, Recipient: id2.Recipient().String()})
	if len(en.NotRewrapped) != 1 {
		t.Fatalf("not rewrapped: %v", en.NotRewrapped)
	}
	r2 := sealN(t, v, "acc_a", 1, 1)[0]
	mustOpenWith(t, v, "acc_a", r, id1)
	mustOpenWith(t, v, "acc_a", r2, id2)
	if _, err := v.OpenWithIdentity("acc_a", r.ct, r.aad, id2); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("new identity on old key before rewrap: %v", err)
	}
	// The person moves their history to the new key with the old one.
	res, err := v.Rewrap(ctx, "acc_a", id1)
	if err != nil || res.Keys != 1 {
		t.Fatalf("Rewrap: %+v, %v", res, err)
	}
	mustOpenWith(t, v, "acc_a", r, id2)
	if _, err := v.OpenWithIdentity("acc_a", r.ct, r.aad, id1); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("old identity after rewrap: %v", err)
	}
}

func TestLockedWithoutTheHubKey(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	person := newIdentity(t)
	mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
	r := sealN(t, v, "acc_a", 0, 1)[0]
	// The hub key file was lost and replaced by a new one.
	e.hub = newIdentity(t)
	v = e.restart(t, v)
	wantOpenErr(t, v, "acc_a", r, ErrLocked)
	mustOpenWith(t, v, "acc_a", r, person)
	// Without any hub key, hub-assisted cannot be chosen.
	v = e.restart(t, v, func(o *Options) { o.Hub = nil })
	wantOpenErr(t, v, "acc_a", r, ErrLocked)
	if _, err := v.Enroll(t.Context(), "acc_b", Settings{Mode: HubAssisted}); !errors.Is(err, ErrLocked) {
		t.Fatalf("hub-assisted without a hub key: %v", err)
	}
}

func TestClosed(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted})
	r := sealN(t, v, "acc_a", 0, 1)[0]
	v.Close()
	if _, err := v.Seal("acc_a", []byte(`{}`), nil); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	wantOpenErr(t, v, "acc_a", r, ErrClosed)
}

func TestConcurrent(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t, userEpoch(7, 20*time.Millisecond))
	ctx := t.Context()
	person := newIdentity(t)
	owners := []string{"acc_h", "acc_u", "acc_x"}
	mustEnroll(t, v, "acc_h", Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
	mustEnroll(t, v, "acc_u", Settings{Mode: UserHeld, Recipient: person.Recipient().String()})
	mustEnroll(t, v, "acc_x", Settings{Mode: HubAssisted})
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all = map[string][]sealed{}
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := owners[g%2]
			for i := range 300 {
				s := sealed{aad: aadOf(g*1000 + i), pt: payloadOf(i)}
				ct, err := v.Seal(owner, s.pt, s.aad)
				if err != nil {
					t.Error(err)
					return
				}
				s.ct = ct
				pt, err := v.Open(owner, ct, s.aad)
				switch {
				case owner == "acc_h" && (err != nil || !bytes.Equal(pt, s.pt)):
					t.Errorf("hub-assisted open: %q, %v", pt, err)
				case owner == "acc_u" && err != nil && !errors.Is(err, ErrUserHeld):
					t.Errorf("user-held open: %v", err)
				}
				mu.Lock()
				all[owner] = append(all[owner], s)
				mu.Unlock()
			}
		}()
	}
	wg.Add(2)
	go func() { // rotations and status reads meanwhile
		defer wg.Done()
		for range 5 {
			if _, err := v.Rotate(ctx, "acc_h"); err != nil {
				t.Error(err)
			}
			if _, err := v.Status("acc_u"); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() { // a third owner sealed and shredded meanwhile
		defer wg.Done()
		for i := range 50 {
			_, err := v.Seal("acc_x", payloadOf(i), aadOf(i))
			if err != nil && !errors.Is(err, ErrShredded) {
				t.Error(err)
			}
			if i == 25 {
				if err := v.Shred(ctx, "acc_x"); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	wg.Wait()
	seen := map[Header]bool{}
	for _, owner := range owners[:2] {
		op, err := v.Unlock(owner, person)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all[owner] {
			h := headerOf(t, s.ct)
			if seen[h] {
				t.Fatalf("nonce reused: %+v", h)
			}
			seen[h] = true
			pt, err := op.Open(s.ct, s.aad)
			if err != nil || !bytes.Equal(pt, s.pt) {
				t.Fatalf("identity open of %s: %q, %v", owner, pt, err)
			}
		}
		op.Close()
	}
	if len(seen) != 8*300 {
		t.Fatalf("%d distinct headers, want %d", len(seen), 8*300)
	}
}

func TestHubIdentityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.key")
	id, err := LoadOrCreateHubIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", fi.Mode(), err)
	}
	again, err := LoadOrCreateHubIdentity(path)
	if err != nil || again.String() != id.String() {
		t.Fatalf("reload: %v", err)
	}
	// The file is what age-keygen writes: the age tool reads it.
	ids, err := age.ParseIdentities(bytes.NewReader(mustRead(t, path)))
	if err != nil || len(ids) != 1 {
		t.Fatalf("age cannot parse the key file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateHubIdentity(path); err == nil || strings.Contains(err.Error(), "AGE-SECRET") {
		t.Fatalf("world-readable key file: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHMACMatchesStdlib(t *testing.T) {
	var key secret
	for i := range key {
		key[i] = byte(i * 7)
	}
	for _, n := range []int{0, 1, 20, 63, 64, 65, 200} {
		msg := bytes.Repeat([]byte{0xA5}, n)
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		if got := hmacSHA256(&key, msg); !bytes.Equal(got[:], m.Sum(nil)) {
			t.Fatalf("hmacSHA256 differs from crypto/hmac for a %d-byte message", n)
		}
	}
}

// naiveLeaf walks the epoch tree from the root.
func naiveLeaf(ck secret, e uint32) secret {
	n := ck
	for d := range uint32(treeDepth) {
		n = child(&n, e>>(treeDepth-1-d)&1)
	}
	return n
}

func TestEpochTree(t *testing.T) {
	ck := secret{1, 2, 3}
	d := newDeriver(&ck)
	for _, e := range []uint32{0, 5000, 3, 1024, 1<<32 - 1, 2047, 4096, 1 << 31, 5001, 1, 1} {
		if d.leaf(e) != naiveLeaf(ck, e) {
			t.Fatalf("epoch %d: deriver leaf differs", e)
		}
	}
	// The frontier yields the same leaves, epoch after epoch, and never
	// holds a node from which an earlier epoch could be derived.
	f := newFrontier(&ck)
	for want := uint32(0); want < 300; want++ {
		e, ok := f.epoch()
		if !ok || e != want {
			t.Fatalf("frontier epoch %d, %v; want %d", e, ok, want)
		}
		if f.leaf() != naiveLeaf(ck, e) {
			t.Fatalf("frontier leaf of epoch %d differs", e)
		}
		f.advance()
		if len(f.nodes) > treeDepth+1 {
			t.Fatalf("frontier holds %d nodes", len(f.nodes))
		}
		for _, n := range f.nodes {
			if first := uint64(n.index) << (treeDepth - n.depth); first <= uint64(e) {
				t.Fatalf("after epoch %d the frontier holds a node covering epoch %d", e, first)
			}
			if n.key != naiveNode(ck, n.depth, n.index) {
				t.Fatalf("frontier node (%d,%d) is wrong", n.depth, n.index)
			}
		}
	}
	// The last epoch ends the key.
	last := fnode{key: naiveLeaf(ck, 1<<32-1), depth: treeDepth, index: 1<<32 - 1}
	f = &frontier{nodes: []fnode{last}}
	if e, ok := f.epoch(); !ok || e != 1<<32-1 {
		t.Fatalf("last epoch: %d, %v", e, ok)
	}
	f.advance()
	if _, ok := f.epoch(); ok {
		t.Fatal("a frontier past the last epoch still has one")
	}
	d.erase()
	if _, err := d.cipher(1); err == nil {
		t.Fatal("an erased deriver still derives keys")
	}
}

func naiveNode(ck secret, depth, index uint32) secret {
	n := ck
	for d := range depth {
		n = child(&n, index>>(depth-1-d)&1)
	}
	return n
}

func TestStoreErrorsSurface(t *testing.T) {
	e := newEnv(t)
	v := e.vault(t)
	mustEnroll(t, v, "acc_a", Settings{Mode: HubAssisted})
	// Someone shreds the owner behind this vault's back (a second hub
	// process): the next key write learns it and the vault follows.
	if err := e.st.ShredOwner(t.Context(), "acc_a", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rotate(t.Context(), "acc_a"); !errors.Is(err, ErrShredded) {
		t.Fatalf("Rotate: %v, want ErrShredded", err)
	}
	if _, err := v.Seal("acc_a", []byte(`{}`), nil); !errors.Is(err, ErrShredded) {
		t.Fatalf("Seal: %v, want ErrShredded", err)
	}
	var _ store.KeyStore = e.st
}
