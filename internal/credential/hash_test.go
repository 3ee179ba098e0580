package credential

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestHashVerify(t *testing.T) {
	const secret = "correct horse battery staple"
	phc, err := Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	shape := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !shape.MatchString(phc) {
		t.Fatalf("Hash = %q, want the OWASP-minimum PHC form with a 16-byte salt and 32-byte key", phc)
	}
	if ok, err := Verify(secret, phc); !ok || err != nil {
		t.Fatalf("Verify(right secret) = %v, %v", ok, err)
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", secret + " "} {
		if ok, err := Verify(wrong, phc); ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v, want false, nil", wrong, ok, err)
		}
	}
	if NeedsRehash(phc) {
		t.Errorf("NeedsRehash(fresh hash) = true")
	}
	again, err := Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	if again == phc {
		t.Errorf("two hashes of one secret are equal: salt is not random")
	}
}

func TestHashRefusesHugeSecret(t *testing.T) {
	if _, err := Hash(strings.Repeat("x", MaxSecretBytes+1)); !errors.Is(err, ErrSecretTooLong) {
		t.Fatalf("Hash(huge) error = %v, want ErrSecretTooLong", err)
	}
}

// cheapPHC hashes with tiny parameters so tests and fuzzing stay fast;
// Verify takes the parameters from the string, which is the point.
func cheapPHC(secret string) string {
	p := Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := &Hasher{params: p, sem: make(chan struct{}, 1)}
	phc, err := h.Hash(context.Background(), secret)
	if err != nil {
		panic(err)
	}
	return phc
}

func TestVerifyMalformed(t *testing.T) {
	good := cheapPHC("s3cret passphrase")
	if ok, err := Verify("s3cret passphrase", good); !ok || err != nil {
		t.Fatalf("Verify(cheap hash) = %v, %v", ok, err)
	}
	if !NeedsRehash(good) {
		t.Errorf("NeedsRehash(m=64,t=1) = false, want true: below defaults")
	}
	f := strings.Split(good, "$")
	salt, key := f[4], f[5]
	tests := map[string]string{
		"empty":           "",
		"bcrypt":          "$2b$10$abcdefghijklmnopqrstuu",
		"argon2i":         "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"old version":     "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"no version":      "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"order":           "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"memory bomb":     "$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key,
		"time bomb":       "$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key,
		"threads":         "$argon2id$v=19$m=64,t=1,p=255$" + salt + "$" + key,
		"zero time":       "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"zero threads":    "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"tiny memory":     "$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key,
		"negative":        "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key,
		"leading zero":    "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"overflow":        "$argon2id$v=19$m=99999999999999999999,t=1,p=1$" + salt + "$" + key,
		"salt not b64":    "$argon2id$v=19$m=64,t=1,p=1$" + salt[:20] + "!!" + "$" + key,
		"salt padded":     "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"short salt":      "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key,
		"short key":       "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA",
		"missing hash":    "$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"extra field":     good + "$x",
		"no leading $":    strings.TrimPrefix(good, "$"),
		"huge":            good + strings.Repeat("A", 1000),
		"trailing bits":   "$argon2id$v=19$m=64,t=1,p=1$" + salt[:21] + "B$" + key,
		"tampered params": "$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key,
	}
	if salt[21] == 'B' {
		delete(tests, "trailing bits") // would not be a change
	}
	for name, phc := range tests {
		t.Run(name, func(t *testing.T) {
			ok, err := Verify("s3cret passphrase", phc)
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify(%q) = %v, %v; want false and ErrMalformedHash", phc, ok, err)
			}
			if !NeedsRehash(phc) {
				t.Errorf("NeedsRehash(%q) = false for an unusable hash", phc)
			}
		})
	}
}

func TestVerifyTamperedHash(t *testing.T) {
	good := cheapPHC("s3cret passphrase")
	f := strings.Split(good, "$")
	for i, field := range []int{4, 5} {
		g := append([]string(nil), f...)
		b := []byte(g[field])
		// Flip a character that carries six full bits, not padding bits.
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		g[field] = string(b)
		tampered := strings.Join(g, "$")
		ok, err := Verify("s3cret passphrase", tampered)
		if ok || err != nil {
			t.Errorf("case %d: Verify(tampered %q) = %v, %v; want false, nil", i, tampered, ok, err)
		}
	}
	// A changed cost is also a different hash.
	raised := strings.Replace(good, "t=1", "t=2", 1)
	if ok, err := Verify("s3cret passphrase", raised); ok || err != nil {
		t.Errorf("Verify(cost changed) = %v, %v; want false, nil", ok, err)
	}
}

func TestVerifyRefusesHugeSecretWithoutHashing(t *testing.T) {
	h := NewHasher(1)
	h.sem <- struct{}{} // every slot taken: hashing would block
	ok, err := h.Verify(context.Background(), strings.Repeat("x", MaxSecretBytes+1), cheapPHC("x"))
	if ok || err != nil {
		t.Fatalf("Verify(huge) = %v, %v; want false, nil", ok, err)
	}
}

func TestHasherHonoursContext(t *testing.T) {
	h := NewHasher(1)
	phc := cheapPHC("s3cret passphrase")
	h.sem <- struct{}{} // occupy the only slot

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	ok, err := h.Verify(ctx, "s3cret passphrase", phc)
	if ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify with full hasher = %v, %v; want context.DeadlineExceeded", ok, err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Verify waited %v after its deadline", waited)
	}

	cancelled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := h.Hash(cancelled, "s3cret passphrase"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with cancelled context = %v; want context.Canceled", err)
	}

	// Once the slot frees, a waiting caller proceeds.
	done := make(chan error, 1)
	go func() {
		ok, err := h.Verify(t.Context(), "s3cret passphrase", phc)
		if err == nil && !ok {
			err = errors.New("no match")
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Verify ran while the slot was taken (err %v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	<-h.sem
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(h.sem); n != 0 {
		t.Fatalf("%d slots still held after all calls returned", n)
	}
}

func TestNilAndZeroHasherUseDefault(t *testing.T) {
	for name, h := range map[string]*Hasher{"nil": nil, "zero": {}} {
		phc, err := h.Hash(t.Context(), "s3cret passphrase")
		if err != nil {
			t.Fatalf("%s Hasher: %v", name, err)
		}
		if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Fatalf("%s Hasher hashed with %q, not the defaults", name, phc)
		}
		if ok, err := h.Verify(t.Context(), "s3cret passphrase", phc); !ok || err != nil {
			t.Fatalf("%s Hasher Verify = %v, %v", name, ok, err)
		}
	}
}

func TestNewHasherConcurrency(t *testing.T) {
	if c := cap(NewHasher(3).sem); c != 3 {
		t.Errorf("NewHasher(3) allows %d", c)
	}
	if c := cap(NewHasher(0).sem); c < 1 {
		t.Errorf("NewHasher(0) allows %d", c)
	}
}

func BenchmarkVerify(b *testing.B) {
	phc, err := Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	h := NewHasher(0)
	ctx := context.Background()
	for b.Loop() {
		if ok, err := h.Verify(ctx, "correct horse battery staple", phc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
