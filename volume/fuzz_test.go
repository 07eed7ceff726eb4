package volume

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseHeader feeds arbitrary bytes to the header parser: it must return a header or a
// *FormatError, never panic, and a header it accepts must encode back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	raw := vectorStoreForFuzz(f)
	f.Add(raw[:headerCopySize])
	f.Add(raw[headerCopySize:headerArea])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
			return
		}
		if !bytes.Equal(h.marshal(), b[:headerCopySize]) {
			t.Fatal("an accepted header does not encode back to its bytes")
		}
	})
}

// FuzzInspect reads both header copies from arbitrary bytes, as Inspect and Open do.
func FuzzInspect(f *testing.F) {
	raw := vectorStoreForFuzz(f)
	f.Add(raw[:headerArea])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < headerArea {
			b = append(b, make([]byte, headerArea-len(b))...)
		}
		s := newFaultStore()
		s.size = headerArea
		s.rawWrite(0, b[:headerArea])
		if pi, err := Inspect(ctx, s); err == nil && pi.Generation == 0 && pi.OtherGeneration == 0 {
			t.Fatal("inspect accepted a header of generation 0")
		}
	})
}

// FuzzParseNode decodes arbitrary tree node plaintext (authenticated, so only a holder of the
// key can make it, but still parsed without trust).
func FuzzParseNode(f *testing.F) {
	f.Add(make([]byte, BlockSize))
	nd := &node{}
	nd.e[3] = entry{counter: 7, slot: 1, tag: [16]byte{1, 2, 3}}
	plain := make([]byte, BlockSize)
	marshalNode(nd, plain)
	f.Add(plain)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < BlockSize {
			b = append(b, make([]byte, BlockSize-len(b))...)
		}
		var n node
		if err := parseNode(&n, b[:BlockSize]); err != nil {
			return
		}
		out := make([]byte, BlockSize)
		marshalNode(&n, out)
		if !bytes.Equal(out, b[:BlockSize]) {
			t.Fatal("an accepted node does not encode back to its bytes")
		}
	})
}

// FuzzStore overwrites bytes of the vector volume's store at a fuzzed offset and reads the
// whole volume: every read returns the plaintext of the commit the volume opened at (the last,
// or the one before when the newest header copy is damaged) or an error, never other bytes.
func FuzzStore(f *testing.F) {
	raw := vectorStoreForFuzz(f)
	release, _, _, _ := vectorInputs()
	want := map[uint64][]byte{} // generation -> plaintext
	for _, damage := range []bool{false, true} {
		s := newFaultStore()
		s.size = int64(len(raw))
		s.rawWrite(0, raw)
		if damage {
			s.rawWrite(0, make([]byte, headerCopySize)) // the vector's newest copy is copy 0
		}
		v, err := Open(ctx, s, [][]byte{release}, OpenOptions{ReadOnly: true, Log: quietLog})
		if err != nil {
			f.Fatal(err)
		}
		p := make([]byte, v.Size())
		if err := v.ReadAt(ctx, p, 0); err != nil {
			f.Fatal(err)
		}
		want[v.Info().Generation] = p
	}
	if len(want) != 2 {
		f.Fatal("damaging the newest header copy did not fall back to the previous commit")
	}
	f.Add(uint32(0), []byte{1})
	f.Add(uint32(headerCopySize+offRoot), []byte{1, 2, 3})
	f.Add(uint32(28672), []byte{0xff})
	f.Add(uint32(1056768), []byte{0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		if int(off) >= len(raw) {
			return
		}
		b := bytes.Clone(raw)
		copy(b[off:], patch)
		s := newFaultStore()
		s.size = int64(len(b))
		s.rawWrite(0, b)
		v, err := Open(ctx, s, [][]byte{release}, OpenOptions{ReadOnly: true, Log: quietLog})
		if err != nil {
			return
		}
		want := want[v.Info().Generation]
		if want == nil {
			t.Fatalf("opened at generation %d, which the vector never committed", v.Info().Generation)
		}
		for blk := int64(0); blk < v.Size()/BlockSize; blk++ {
			p := make([]byte, BlockSize)
			if err := v.ReadAt(ctx, p, blk*BlockSize); err != nil {
				if !allZero(p) {
					t.Fatalf("a failed read of block %d left bytes in the buffer", blk)
				}
				continue
			}
			if !bytes.Equal(p, want[blk*BlockSize:(blk+1)*BlockSize]) {
				t.Fatalf("block %d read wrong bytes after patching the store at %d", blk, off)
			}
		}
	})
}

func vectorStoreForFuzz(f *testing.F) []byte {
	raw, err := readVectorStoreErr()
	if err != nil {
		f.Fatal(err)
	}
	return raw
}
