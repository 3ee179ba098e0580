package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// Key schedule of one data key ("chain"):
//
//	R      32 random bytes, the only secret that is stored (wrapped by age)
//	CK   = HMAC-SHA256(R, "candor/vault/v1/chain" ‖ uvarint(len owner) ‖ owner ‖ key id)
//
// CK is the root of a binary tree of depth 32 whose leaves are the epochs
// 0 … 2^32-1: a node's children are HMAC-SHA256(node, 0x10) (left, bit 0)
// and HMAC-SHA256(node, 0x11) (right, bit 1), the bits of the epoch number
// read from the most significant. Epoch e's AES-256-GCM key is
//
//	MK_e = HMAC-SHA256(leaf_e, 0x01)
//
// Whoever holds CK derives any epoch's key in 32 steps. The sealing side,
// however, keeps only the frontier: the roots of the subtrees that cover
// the epochs from the current one on (at most 33 nodes). From those, no
// earlier leaf can be computed, since HMAC is one-way. That is what lets
// the hub seal a user-held owner's readings without being able to read the
// past: as each epoch ends it erases that leaf, and it erased R and CK as
// soon as it had the frontier.
//
// Binding the owner id and key id into CK means a key row copied to
// another owner, or under another id, yields keys that open nothing.

const chainLabel = "candor/vault/v1/chain"

// keySize is the size of every secret in the key schedule.
const keySize = 32

type secret = [keySize]byte

// chainKey derives CK, the root of the epoch tree, from R.
func chainKey(root *secret, owner string, id KeyID) secret {
	msg := make([]byte, 0, len(chainLabel)+binary.MaxVarintLen64+len(owner)+KeyIDSize)
	msg = append(msg, chainLabel...)
	msg = binary.AppendUvarint(msg, uint64(len(owner)))
	msg = append(msg, owner...)
	msg = append(msg, id[:]...)
	return hmacSHA256(root, msg)
}

// treeDepth is the depth of the epoch tree: epochs are uint32.
const treeDepth = 32

// child returns a node's left (bit 0) or right (bit 1) child.
func child(n *secret, bit uint32) secret { return hmacSHA256(n, []byte{0x10 | byte(bit&1)}) }

// epochKey returns MK_e for leaf_e.
func epochKey(leaf *secret) secret { return hmacSHA256(leaf, []byte{0x01}) }

// hmacSHA256 is HMAC-SHA256 for a 32-byte key, written out so that it
// leaves no key material in heap buffers of crypto/hmac and costs no
// allocation: deriving an epoch's key takes 33 of them.
func hmacSHA256(key *secret, msg []byte) secret {
	const block = 64
	var pad [block + 64]byte // ipad/opad block followed by room for a short message
	for i := range block {
		k := byte(0)
		if i < keySize {
			k = key[i]
		}
		pad[i] = k ^ 0x36
	}
	var inner [sha256.Size]byte
	if len(msg) <= len(pad)-block {
		n := copy(pad[block:], msg)
		inner = sha256.Sum256(pad[:block+n])
	} else {
		h := sha256.New()
		h.Write(pad[:block])
		h.Write(msg)
		h.Sum(inner[:0])
	}
	for i := range block {
		pad[i] ^= 0x36 ^ 0x5c
	}
	copy(pad[block:], inner[:])
	out := sha256.Sum256(pad[:block+sha256.Size])
	clear(pad[:])
	clear(inner[:])
	return out
}

// newAEAD returns AES-256-GCM under k. The caller erases k.
func newAEAD(k *secret) (cipher.AEAD, error) {
	b, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// deriver derives the epoch keys of one chain from CK, for opening. It
// remembers the path to the last leaf it derived, so walking epochs in
// order (an export) costs about two steps per epoch, and it caches a few
// epoch ciphers. It is not safe for concurrent use.
type deriver struct {
	root    secret
	erased  bool
	last    uint32
	path    [treeDepth + 1]secret // path[d] is the node at depth d above leaf last
	valid   int                   // path[:valid] is valid
	ciphers map[uint32]cipher.AEAD
}

const maxCiphers = 64

func newDeriver(ck *secret) *deriver {
	d := &deriver{root: *ck, ciphers: make(map[uint32]cipher.AEAD)}
	d.path[0] = *ck
	d.valid = 1
	return d
}

// cipher returns the AEAD of epoch e.
func (d *deriver) cipher(e uint32) (cipher.AEAD, error) {
	if d.erased {
		return nil, errors.New("vault: key erased")
	}
	if a, ok := d.ciphers[e]; ok {
		return a, nil
	}
	leaf := d.leaf(e)
	mk := epochKey(&leaf)
	clear(leaf[:])
	a, err := newAEAD(&mk)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	if len(d.ciphers) >= maxCiphers {
		clear(d.ciphers)
	}
	d.ciphers[e] = a
	return a, nil
}

// leaf returns leaf_e, reusing the part of the last path e shares.
func (d *deriver) leaf(e uint32) secret {
	// Depth of the deepest node shared with the last path: the number of
	// leading bits e and last have in common.
	shared := treeDepth
	if x := e ^ d.last; x != 0 {
		shared = 0
		for x&(1<<31) == 0 {
			x <<= 1
			shared++
		}
	}
	start := min(shared, d.valid-1)
	for depth := start; depth < treeDepth; depth++ {
		bit := (e >> (treeDepth - 1 - depth)) & 1
		d.path[depth+1] = child(&d.path[depth], bit)
	}
	d.last, d.valid = e, treeDepth+1
	return d.path[treeDepth]
}

// erase forgets every key the deriver holds. Go cannot promise that no
// copy survives elsewhere in memory (the AES key schedules inside the
// cached ciphers become garbage rather than being overwritten); erasing
// what we own is what is in our hands.
func (d *deriver) erase() {
	clear(d.root[:])
	for i := range d.path {
		clear(d.path[i][:])
	}
	d.valid, d.erased, d.ciphers = 0, true, nil
}

// frontier is the sealing side's forward-secure state: the roots of the
// subtrees covering the current epoch and every later one, as a stack
// whose top covers the current epoch. It never holds a node from which an
// earlier epoch could be derived.
type frontier struct {
	nodes []fnode // stack; nodes[len-1] covers the current epoch
}

type fnode struct {
	key   secret
	depth uint32 // 0 is the root, treeDepth a leaf
	index uint32 // position at its depth; its first epoch is index << (treeDepth-depth)
}

// newFrontier starts at epoch 0 from CK.
func newFrontier(ck *secret) *frontier {
	f := &frontier{nodes: make([]fnode, 1, treeDepth+1)}
	f.nodes[0].key = *ck
	return f
}

// epoch returns the current epoch; ok is false once all 2^32 are used.
func (f *frontier) epoch() (e uint32, ok bool) {
	if len(f.nodes) == 0 {
		return 0, false
	}
	top := f.nodes[len(f.nodes)-1]
	return top.index << (treeDepth - top.depth), true
}

// leaf expands the top of the stack down to the current epoch's leaf and
// returns it. Expanding replaces a node by its two children and erases it.
func (f *frontier) leaf() secret {
	for {
		top := &f.nodes[len(f.nodes)-1]
		if top.depth == treeDepth {
			return top.key
		}
		n := *top
		right := fnode{key: child(&n.key, 1), depth: n.depth + 1, index: n.index<<1 | 1}
		left := fnode{key: child(&n.key, 0), depth: n.depth + 1, index: n.index << 1}
		clear(top.key[:])
		clear(n.key[:])
		f.nodes[len(f.nodes)-1] = right
		f.nodes = append(f.nodes, left)
	}
}

// advance erases the current epoch's leaf (expanding first if needed), so
// the frontier covers the following epochs only.
func (f *frontier) advance() {
	if len(f.nodes) == 0 {
		return
	}
	leaf := f.leaf()
	clear(leaf[:])
	top := &f.nodes[len(f.nodes)-1]
	clear(top.key[:])
	f.nodes = f.nodes[:len(f.nodes)-1]
}

// erase forgets the whole frontier.
func (f *frontier) erase() {
	for i := range f.nodes {
		clear(f.nodes[i].key[:])
	}
	f.nodes = nil
}

// --- the wrapped form -------------------------------------------------

// The plaintext inside a wrapped key: magic ‖ R ‖ uvarint(len owner) ‖
// owner ‖ key id. Unwrapping checks owner and key id against the row, so
// a wrapped key moved to another row is refused.
const payloadMagic = "CVK1"

func encodePayload(root *secret, owner string, id KeyID) []byte {
	p := make([]byte, 0, len(payloadMagic)+keySize+binary.MaxVarintLen64+len(owner)+KeyIDSize)
	p = append(p, payloadMagic...)
	p = append(p, root[:]...)
	p = binary.AppendUvarint(p, uint64(len(owner)))
	p = append(p, owner...)
	return append(p, id[:]...)
}

func decodePayload(p []byte, owner string, id KeyID) (secret, error) {
	var root secret
	rest, ok := bytes.CutPrefix(p, []byte(payloadMagic))
	if !ok || len(rest) < keySize {
		return root, fmt.Errorf("%w: unwrapped key has an unknown format", ErrUnknownKey)
	}
	copy(root[:], rest[:keySize])
	rest = rest[keySize:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || uint64(len(rest)-k) != n+KeyIDSize ||
		string(rest[k:k+int(n)]) != owner || !bytes.Equal(rest[k+int(n):], id[:]) {
		clear(root[:])
		return root, fmt.Errorf("%w: the wrapped key %s was made for another owner or key id", ErrUnknownKey, id)
	}
	return root, nil
}

// wrap encrypts a payload to the recipients as an age file. With X25519
// recipients this is one ephemeral key agreement per recipient (~0.2 ms):
// it happens once per data key, never per reading.
func wrap(payload []byte, recipients []age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, fmt.Errorf("vault: wrap key: %w", err)
	}
	if _, err := w.Write(payload); err != nil {
		return nil, fmt.Errorf("vault: wrap key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("vault: wrap key: %w", err)
	}
	return buf.Bytes(), nil
}

// unwrap decrypts a wrapped key with id. A non-matching identity yields
// an error wrapping *age.NoIdentityMatchError.
func unwrap(wrapped []byte, id age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(wrapped), id)
	if err != nil {
		return nil, err
	}
	p, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// unwrapChainKey unwraps a key row with identity and returns CK. It
// fails with an error wrapping *age.NoIdentityMatchError when the identity
// does not fit, and ErrUnknownKey when the row was moved.
func unwrapChainKey(wrapped []byte, identity age.Identity, owner string, id KeyID) (secret, error) {
	p, err := unwrap(wrapped, identity)
	if err != nil {
		return secret{}, err
	}
	root, err := decodePayload(p, owner, id)
	clear(p)
	if err != nil {
		return secret{}, err
	}
	ck := chainKey(&root, owner, id)
	clear(root[:])
	return ck, nil
}

// noMatch reports whether err says the identity does not fit the key.
func noMatch(err error) bool {
	var nm *age.NoIdentityMatchError
	return errors.As(err, &nm)
}

func randomSecret() (secret, error) {
	var s secret
	_, err := io.ReadFull(rand.Reader, s[:])
	return s, err
}

func randomKeyID() (KeyID, error) {
	var id KeyID
	_, err := io.ReadFull(rand.Reader, id[:])
	return id, err
}
