package volume

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/encfs/encfs/internal/keyslot"
)

func TestKeyslots(t *testing.T) {
	s, v := newVolume(t, 1<<20)
	v.WriteAt(ctx, []byte("kept"), 0)
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	k1, k2 := testKey(1), testKey(2)
	if err := AddKeyslot(ctx, s, k2, testKey(3)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("add-slot authorised by a key without a slot: %v", err)
	}
	if err := AddKeyslot(ctx, s, k1, k2); err != nil {
		t.Fatal(err)
	}
	if err := AddKeyslot(ctx, s, k1, k2); err == nil || !strings.Contains(err.Error(), "already has a keyslot") {
		t.Fatalf("adding a key twice: %v", err)
	}
	for _, k := range [][]byte{k1, k2} {
		v, err := Open(ctx, s, [][]byte{k}, OpenOptions{ReadOnly: true, Log: quietLog})
		if err != nil {
			t.Fatalf("open with key %s: %v", Fingerprint(k), err)
		}
		got := make([]byte, 4)
		if err := v.ReadAt(ctx, got, 0); err != nil || string(got) != "kept" {
			t.Fatalf("content through the new slot: %q %v", got, err)
		}
	}
	if err := RemoveKeyslot(ctx, s, k2, Fingerprint(k1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, s, [][]byte{k1}, OpenOptions{Log: quietLog}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("open with the removed key: %v, want ErrWrongKey", err)
	}
	// Neither header copy keeps the removed slot.
	raw := s.rawRead(0, headerArea)
	fp := keyslotFingerprint(k1)
	if bytes.Contains(raw, fp[:]) {
		t.Fatal("a header copy still holds the removed keyslot")
	}
	if err := RemoveKeyslot(ctx, s, k2, Fingerprint(k2)); err == nil || !strings.Contains(err.Error(), "only keyslot") {
		t.Fatalf("removing the last keyslot: %v", err)
	}
	if err := RemoveKeyslot(ctx, s, k2, "0123456789abcdef"); err == nil || !strings.Contains(err.Error(), "no keyslot with fingerprint") {
		t.Fatalf("removing an unknown keyslot: %v", err)
	}
	for i := 3; i < 3+MaxKeyslots-1; i++ {
		err := AddKeyslot(ctx, s, k2, testKey(byte(i)))
		if i < 3+MaxKeyslots-1 && err != nil {
			t.Fatalf("add keyslot %d: %v", i, err)
		}
	}
	if err := AddKeyslot(ctx, s, k2, testKey(100)); err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Fatalf("adding a ninth keyslot: %v", err)
	}
	if _, err := Verify(ctx, s, [][]byte{testKey(5)}, nil); err != nil {
		t.Fatal(err)
	}
}

func keyslotFingerprint(k []byte) [8]byte { return keyslot.Fingerprint(k) }
