package vault

import (
	"bytes"
	"errors"
	"testing"

	"filippo.io/age"
)

func TestHubBox(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	box := NewHubBox(id)
	secret := []byte("JBSWY3DPEHPK3PXP")
	sealed, err := box.Seal("acc_1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed form holds the secret in the clear")
	}
	got, err := box.Open("acc_1", sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := age.GenerateX25519Identity()
	for name, c := range map[string]struct {
		box   *HubBox
		label string
		in    []byte
	}{
		"another account":  {box, "acc_2", sealed},
		"another hub key":  {NewHubBox(other), "acc_1", sealed},
		"truncated":        {box, "acc_1", sealed[:len(sealed)-3]},
		"not a sealed box": {box, "acc_1", []byte("junk")},
	} {
		if _, err := c.box.Open(c.label, c.in); err == nil {
			t.Errorf("%s: opened", name)
		} else if name == "another account" && !errors.Is(err, ErrSealedLabel) {
			t.Errorf("%s: %v, want ErrSealedLabel", name, err)
		}
	}
}
