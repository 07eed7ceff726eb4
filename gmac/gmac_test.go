package gmac

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"testing"
)

// reference is the definition: AES-GCM sealing an empty plaintext with data as the
// additional data.
func reference(t testing.TB, key []byte, nonce *[NonceSize]byte, data []byte) []byte {
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	return g.Seal(nil, nonce[:], nil, data)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestMatchesGCM(t *testing.T) {
	if !useAsm {
		t.Log("no AVX-512 VPCLMULQDQ on this CPU: only the standard library's path is tested")
	}
	for _, keyLen := range []int{16, 24, 32} {
		key := randomBytes(keyLen)
		m, err := New(key)
		if err != nil {
			t.Fatal(err)
		}
		if asm := m.rk != nil; asm != (useAsm && keyLen == 32) {
			t.Fatalf("key %d bytes: assembly in use = %v; it is for AES-256 keys on CPUs that have it", keyLen, asm)
		}
		// 4096 is the image block; the others cover one and many groups, and the fallback
		// for lengths the assembly does not take.
		for _, n := range []int{0, 1, 15, 16, 255, 256, 512, 3840, 4096, 4096 + 16, 4096 + 256, 65536} {
			for range 4 {
				var nonce [NonceSize]byte
				rand.Read(nonce[:])
				data := randomBytes(n)
				var got [TagSize]byte
				m.Tag(&got, &nonce, data)
				if want := reference(t, key, &nonce, data); !bytes.Equal(got[:], want) {
					t.Fatalf("key %d bytes, %d bytes of data: tag %x, want %x", keyLen, n, got, want)
				}
			}
		}
	}
}

// TestSpecialValues runs data that stresses the carries and reductions: all ones, all zeros,
// single bits.
func TestSpecialValues(t *testing.T) {
	key := randomBytes(32)
	m, _ := New(key)
	var nonce [NonceSize]byte
	// Each 16-byte pattern fills every GHASH block of a 4 KiB leaf.
	for name, block := range map[string][]byte{
		"zeros":    make([]byte, 16),
		"ones":     bytes.Repeat([]byte{0xff}, 16),
		"top bits": append([]byte{0x80}, make([]byte, 15)...),
		"low bits": append(make([]byte, 15), 0x01),
	} {
		data := bytes.Repeat(block, 4096/16)
		var got [TagSize]byte
		m.Tag(&got, &nonce, data)
		if want := reference(t, key, &nonce, data); !bytes.Equal(got[:], want) {
			t.Errorf("%s: tag %x, want %x", name, got, want)
		}
	}
}

func TestBadKey(t *testing.T) {
	if _, err := New(make([]byte, 20)); err == nil {
		t.Fatal("New accepted a 20-byte key")
	}
}

// FuzzMatchesGCM checks the tag of any data under any key and nonce against AES-GCM.
func FuzzMatchesGCM(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, NonceSize), make([]byte, 4096))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, NonceSize), bytes.Repeat([]byte{0xff}, 512))
	f.Fuzz(func(t *testing.T, key, nonceBytes, data []byte) {
		if len(key) != 32 || len(nonceBytes) != NonceSize {
			return
		}
		// Repeat other lengths into whole groups, so that most inputs reach the assembly.
		if len(data)%groupSize != 0 {
			data = bytes.Repeat(data[:min(len(data), 16)], groupSize)
		}
		m, err := New(key)
		if err != nil {
			t.Fatal(err)
		}
		nonce := (*[NonceSize]byte)(nonceBytes)
		var got [TagSize]byte
		m.Tag(&got, nonce, data)
		if want := reference(t, key, nonce, data); !bytes.Equal(got[:], want) {
			t.Fatalf("tag %x, want %x", got, want)
		}
	})
}

func BenchmarkTag4K(b *testing.B) {
	m, _ := New(randomBytes(32))
	data := randomBytes(4096)
	var nonce [NonceSize]byte
	var tag [TagSize]byte
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(nonce[:], uint64(i))
		m.Tag(&tag, &nonce, data)
	}
}

// BenchmarkTag4KStdlib is the standard library's AES-GCM on the same input, for comparison.
func BenchmarkTag4KStdlib(b *testing.B) {
	blk, _ := aes.NewCipher(randomBytes(32))
	g, _ := cipher.NewGCM(blk)
	data := randomBytes(4096)
	var nonce [NonceSize]byte
	tag := make([]byte, 0, TagSize)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(nonce[:], uint64(i))
		g.Seal(tag[:0], nonce[:], nil, data)
	}
}
