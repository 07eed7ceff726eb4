package keyslot

import (
	"bytes"
	"strings"
	"testing"
)

var labels = Labels{KEK: "test kek", Nonce: "test nonce"}

func TestWrapOpen(t *testing.T) {
	release, master, salt := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)
	ad := []byte("bound to this")
	s := Wrap(labels, release, salt, master, ad)
	if s.Fingerprint != Fingerprint(release) {
		t.Fatal("the slot does not carry the key's fingerprint")
	}
	if got, err := s.Open(labels, release, salt, ad); err != nil || !bytes.Equal(got, master) {
		t.Fatalf("open: %v", err)
	}
	if s2 := Wrap(labels, release, salt, master, ad); s2 != s {
		t.Error("the synthetic nonce is not deterministic")
	}
	for name, try := range map[string]func() error{
		"other ad":     func() error { _, err := s.Open(labels, release, salt, []byte("other")); return err },
		"other salt":   func() error { _, err := s.Open(labels, release, bytes.Repeat([]byte{4}, 32), ad); return err },
		"other key":    func() error { _, err := s.Open(labels, bytes.Repeat([]byte{5}, 32), salt, ad); return err },
		"other labels": func() error { _, err := s.Open(Labels{"x", "y"}, release, salt, ad); return err },
	} {
		if try() == nil {
			t.Errorf("a slot opened with %s", name)
		}
	}
	var b [Size]byte
	s.Marshal(b[:])
	if p, err := Parse(b[:]); err != nil || p != s {
		t.Fatalf("parse of a marshalled slot: %v", err)
	}
	b[Size-1] = 1
	if _, err := Parse(b[:]); err == nil {
		t.Error("a slot with non-zero reserved bytes parsed")
	}
}

func TestAddRemove(t *testing.T) {
	k := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	wrap := func(key []byte) func() Slot { return func() Slot { return Slot{Fingerprint: Fingerprint(key)} } }
	slots, err := Add(nil, 2, "volume", k(1), wrap(k(1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Add(slots, 2, "volume", k(1), wrap(k(1))); err == nil || !strings.Contains(err.Error(), "the volume already has a keyslot") {
		t.Errorf("adding a key twice: %v", err)
	}
	if slots, err = Add(slots, 2, "volume", k(2), wrap(k(2))); err != nil {
		t.Fatal(err)
	}
	if _, err := Add(slots, 2, "volume", k(3), wrap(k(3))); err == nil || !strings.Contains(err.Error(), "maximum of 2") {
		t.Errorf("adding past the maximum: %v", err)
	}
	if _, err := Add(slots, 2, "volume", []byte("short"), wrap(k(3))); err == nil {
		t.Error("a short key was added")
	}
	kept, err := Remove(slots, "volume", strings.ToUpper(FingerprintHex(k(1))))
	if err != nil || len(kept) != 1 || kept[0].Fingerprint != Fingerprint(k(2)) || len(slots) != 2 {
		t.Fatalf("remove: %v %v (the input must stay untouched)", kept, err)
	}
	if _, err := Remove(kept, "volume", FingerprintHex(k(2))); err == nil || !strings.Contains(err.Error(), "only keyslot") {
		t.Errorf("removing the last slot: %v", err)
	}
	if _, err := Remove(kept, "volume", "00"); err == nil || !strings.Contains(err.Error(), "no keyslot with fingerprint 00") {
		t.Errorf("removing an unknown slot: %v", err)
	}
}
