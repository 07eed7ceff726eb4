package image_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/pack"
)

// The attacks of docs/FORMAT.md, "Security argument", played against real packed images: a
// holder of a keyslot key (K) and a holder of a removed key (F), who both know master keys.

// attackTree writes a small tree whose one file holds content.
func attackTree(t *testing.T, content string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), bytes.Repeat([]byte(content), 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func packWith(t *testing.T, dir string, opts image.WriterOptions) (string, *image.Header) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	res, err := pack.Pack(context.Background(), dir, p, pack.Options{WriterOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	return p, res.Header
}

// openPinned opens the image with key and applies pin, as a mount does.
func openPinned(t *testing.T, path string, key []byte, pin image.Pin) error {
	t.Helper()
	src, err := blobio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.Open(context.Background(), image.Plain(src), [][]byte{key}, image.Options{})
	if err != nil {
		src.Close()
		return err
	}
	defer im.Close()
	if err := pin.Check(im.Header()); err != nil {
		return err
	}
	return im.Verify(context.Background(), nil)
}

func readHeader(t *testing.T, path string) *image.Header {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := image.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func writeHeader(t *testing.T, path string, h *image.Header) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(h.Marshal(), 0); err != nil {
		t.Fatal(err)
	}
}

// TestAttackOtherSeriesHigherGeneration: another dataset packed for the same release key with
// a higher generation is refused by a deployment that pins the series and a minimum generation.
func TestAttackOtherSeriesHigherGeneration(t *testing.T) {
	key := newKey(t)
	good, h := packWith(t, attackTree(t, "good"), image.WriterOptions{ReleaseKeys: [][]byte{key}, Generation: 3})
	other, oh := packWith(t, attackTree(t, "other dataset"), image.WriterOptions{ReleaseKeys: [][]byte{key}, Generation: 9})
	if oh.Series == h.Series {
		t.Fatal("two first packings drew the same series")
	}
	pin := image.Pin{Series: h.SeriesHex(), MinGeneration: 3}
	if err := openPinned(t, good, key, pin); err != nil {
		t.Fatalf("the pinned series: %v", err)
	}
	if err := openPinned(t, other, key, pin); !errors.Is(err, image.ErrRollback) {
		t.Fatalf("another series with generation 9: %v, want refused", err)
	}
	// The next generation of the series, packed with the series kept, is accepted.
	next, _ := packWith(t, attackTree(t, "good v2"), image.WriterOptions{ReleaseKeys: [][]byte{key}, Series: &h.Series, Generation: 4})
	if err := openPinned(t, next, key, pin); err != nil {
		t.Fatalf("generation 4 of the series: %v", err)
	}
}

// TestAttackKeyHolderCannotKeepTheRoot: a holder of a release key (and so of the master key)
// changes the content. Keeping the root and re-sealing the header makes the changed block fail
// verification; re-packing the new content with the very same master key, salt, UUID, series
// and generation (a byte-identical header apart from the root and MAC) gives another root,
// which a root pin refuses. Equal roots would need a BLAKE3 or SHA-256 collision.
func TestAttackKeyHolderCannotKeepTheRoot(t *testing.T) {
	key := newKey(t)
	pub, signKey, _ := ed25519.GenerateKey(nil)
	legit, h := packWith(t, attackTree(t, "good"), image.WriterOptions{ReleaseKeys: [][]byte{key}, Generation: 5, SignKey: signKey})
	master, err := image.MasterKeyForTest(h, key)
	if err != nil {
		t.Fatal(err)
	}
	rootPin := image.Pin{Root: h.RootHex()}
	signerPin := image.Pin{Series: h.SeriesHex(), MinGeneration: 5, Signer: hex.EncodeToString(pub)}

	// 1. Same header and root, one content block replaced by the key holder's own ciphertext
	// (here: the block of another packing), header re-sealed.
	other, _ := packWith(t, attackTree(t, "evil"), image.WriterOptions{ReleaseKeys: [][]byte{key}})
	b, _ := os.ReadFile(legit)
	ob, _ := os.ReadFile(other)
	copy(b[image.HeaderSize:2*image.HeaderSize], ob[image.HeaderSize:2*image.HeaderSize])
	forged := filepath.Join(t.TempDir(), "forged")
	os.WriteFile(forged, b, 0o600)
	if err := openPinned(t, forged, key, rootPin); !errors.Is(err, image.ErrIntegrity) {
		t.Fatalf("changed block under the pinned root: %v, want an integrity failure", err)
	}

	// 2. New content packed with the legitimate image's master key and salt (the strongest
	// key holder), UUID, series and generation.
	restore := image.SetRandomForTest(bytes.NewReader(append(bytes.Clone(master), h.Salt[:]...)))
	evil, eh := packWith(t, attackTree(t, "evil"), image.WriterOptions{ReleaseKeys: [][]byte{key}, UUID: &h.UUID, Series: &h.Series, Generation: 5})
	restore()
	if eh.Salt != h.Salt || eh.Keyslots[0] != h.Keyslots[0] {
		t.Fatal("the forgery did not reuse the master key and salt")
	}
	if eh.Root == h.Root {
		t.Fatal("different content gave the same integrity root")
	}
	if err := openPinned(t, evil, key, image.Pin{}); err != nil {
		t.Fatalf("the key holder's image is authentic without pins: %v", err)
	}
	for name, pin := range map[string]image.Pin{"root": rootPin, "signer": signerPin} {
		if err := openPinned(t, evil, key, pin); !errors.Is(err, image.ErrRollback) {
			t.Errorf("key holder's image under the %s pin: %v, want refused", name, err)
		}
	}
	// Copying the publisher's signature does not help: it signs the legitimate root.
	eh.Signer, eh.Signature = h.Signer, h.Signature
	image.ResealForTest(eh, master)
	writeHeader(t, evil, eh)
	if err := openPinned(t, evil, key, signerPin); !errors.Is(err, image.ErrRollback) {
		t.Errorf("key holder's image with a copied signature: %v, want refused", err)
	}
}

// TestAttackRemovedKeyHolder: F held release key r1, which opened generation 1 of a series
// together with the deployment's key r2. r1's keyslot is removed; F still knows the master key
// and forges new content around r2's keyslot. Under a root or signer pin the forgery is
// refused; under a minimum generation alone it is refused once the series moved on to a
// re-packed generation 2 and the minimum was raised, since r2's keyslot for generation 1 does
// not open in a header of generation 2.
func TestAttackRemovedKeyHolder(t *testing.T) {
	r1, r2 := newKey(t), newKey(t)
	pub, signKey, _ := ed25519.GenerateKey(nil)
	legit, h := packWith(t, attackTree(t, "good"), image.WriterOptions{ReleaseKeys: [][]byte{r1, r2}, Generation: 1, SignKey: signKey})
	master, err := image.MasterKeyForTest(h, r1) // what F learned while r1 was valid
	if err != nil {
		t.Fatal(err)
	}
	if err := image.RemoveKeyslot(context.Background(), openRW(t, legit), r2, image.Fingerprint(r1)); err != nil {
		t.Fatal(err)
	}
	r2Slot := readHeader(t, legit).Keyslots[0]
	if err := openPinned(t, legit, r1, image.Pin{}); !errors.Is(err, image.ErrWrongKey) {
		t.Fatalf("removed key: %v", err)
	}

	// forge packs evil content under F's knowledge of M and the salt, then swaps in r2's slot.
	forge := func(generation uint64, sign ed25519.PrivateKey) string {
		restore := image.SetRandomForTest(bytes.NewReader(append(bytes.Clone(master), h.Salt[:]...)))
		p, fh := packWith(t, attackTree(t, "evil"), image.WriterOptions{ReleaseKeys: [][]byte{r1}, UUID: &h.UUID,
			Series: &h.Series, Generation: generation, SignKey: sign})
		restore()
		fh.Keyslots = []image.Keyslot{r2Slot}
		image.ResealForTest(fh, master)
		writeHeader(t, p, fh)
		return p
	}
	series := h.SeriesHex()
	_, fSignKey, _ := ed25519.GenerateKey(nil)
	f1 := forge(1, fSignKey)
	if err := openPinned(t, f1, r2, image.Pin{Series: series, MinGeneration: 1}); err != nil {
		t.Fatalf("the documented limit: before the series moves on, a generation-1 forgery is authentic: %v", err)
	}
	for name, pin := range map[string]image.Pin{
		"root":   {Root: h.RootHex()},
		"signer": {Series: series, MinGeneration: 1, Signer: hex.EncodeToString(pub)},
	} {
		if err := openPinned(t, f1, r2, pin); !errors.Is(err, image.ErrRollback) {
			t.Errorf("removed-key holder's forgery under the %s pin: %v, want refused", name, err)
		}
	}

	// Revocation: the publisher re-packs generation 2 (a new master key) and the deployment
	// raises min_generation to 2. F's forgery of generation 2 has no keyslot r2 opens; of
	// generation 1 it is below the minimum.
	next, _ := packWith(t, attackTree(t, "good v2"), image.WriterOptions{ReleaseKeys: [][]byte{r2}, Series: &h.Series, Generation: 2})
	raised := image.Pin{Series: series, MinGeneration: 2}
	if err := openPinned(t, next, r2, raised); err != nil {
		t.Fatalf("generation 2: %v", err)
	}
	if err := openPinned(t, forge(2, nil), r2, raised); !errors.Is(err, image.ErrIntegrity) {
		t.Errorf("forgery of generation 2: %v, want its keyslot refused", err)
	}
	if err := openPinned(t, f1, r2, raised); !errors.Is(err, image.ErrRollback) {
		t.Errorf("forgery of generation 1 under min_generation 2: %v, want refused", err)
	}
}
