package xts

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	xxts "golang.org/x/crypto/xts"
)

// forEachImpl runs f once per code path this machine supports, with impl
// switched to it; tests that use it must not run in parallel.
func forEachImpl(t *testing.T, f func(t *testing.T)) {
	saved := impl
	defer func() { impl = saved }()
	for _, i := range supportedImpls() {
		impl = i
		t.Run(i.String(), f)
	}
}

func TestImplementations(t *testing.T) {
	t.Logf("default path %v, supported %v", impl, supportedImpls())
}

type vector struct {
	name          string
	key           []byte
	sector        uint64
	plain, cipher []byte
}

// loadVectors reads testdata/ieee1619-xts-aes256.txt.
func loadVectors(t *testing.T) []vector {
	f, err := os.Open("testdata/ieee1619-xts-aes256.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	var v vector
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			continue
		}
		switch name {
		case "Vector":
			v = vector{name: "vector" + value}
		case "Key1", "Key2":
			v.key = append(v.key, unhex(value)...)
		case "DUSN":
			if v.sector, err = strconv.ParseUint(value, 16, 64); err != nil {
				t.Fatal(err)
			}
		case "PTX":
			v.plain = unhex(value)
		case "CTX":
			v.cipher = unhex(value)
			vs = append(vs, v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 5 {
		t.Fatalf("read %d vectors, want 5", len(vs))
	}
	return vs
}

func TestIEEE1619Vectors(t *testing.T) {
	vs := loadVectors(t)
	forEachImpl(t, func(t *testing.T) {
		for _, v := range vs {
			c, err := NewCipher(v.key)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(v.plain))
			c.Encrypt(got, v.plain, v.sector)
			if !bytes.Equal(got, v.cipher) {
				t.Errorf("%s: Encrypt = %x..., want %x...", v.name, got[:32], v.cipher[:32])
			}
			c.Decrypt(got, v.cipher, v.sector)
			if !bytes.Equal(got, v.plain) {
				t.Errorf("%s: Decrypt = %x..., want %x...", v.name, got[:32], v.plain[:32])
			}
		}
	})
}

// reference encrypts or decrypts with golang.org/x/crypto/xts.
func reference(t testing.TB, key []byte) *xxts.Cipher {
	x, err := xxts.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// checkEquivalent compares Encrypt and Decrypt of data with x/crypto/xts,
// out of place (with guard bytes after dst, which must stay untouched) and in
// place.
func checkEquivalent(t testing.TB, key []byte, sector uint64, data []byte) {
	t.Helper()
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	x := reference(t, key)
	n := len(data)
	want := make([]byte, n)
	got := make([]byte, n+64)
	for i := n; i < len(got); i++ {
		got[i] = 0xa5
	}
	guard := bytes.Repeat([]byte{0xa5}, 64)

	x.Encrypt(want, data, sector)
	c.Encrypt(got, data, sector)
	if !bytes.Equal(got[:n], want) {
		t.Fatalf("%v: Encrypt(len %d, sector %#x) differs from x/crypto/xts", impl, n, sector)
	}
	if !bytes.Equal(got[n:], guard) {
		t.Fatalf("%v: Encrypt(len %d) wrote past len(src)", impl, n)
	}
	inPlace := bytes.Clone(data)
	c.Encrypt(inPlace, inPlace, sector)
	if !bytes.Equal(inPlace, want) {
		t.Fatalf("%v: in-place Encrypt(len %d) differs", impl, n)
	}

	x.Decrypt(want, data, sector)
	c.Decrypt(got, data, sector)
	if !bytes.Equal(got[:n], want) {
		t.Fatalf("%v: Decrypt(len %d, sector %#x) differs from x/crypto/xts", impl, n, sector)
	}
	if !bytes.Equal(got[n:], guard) {
		t.Fatalf("%v: Decrypt(len %d) wrote past len(src)", impl, n)
	}
	copy(inPlace, data)
	c.Decrypt(inPlace, inPlace, sector)
	if !bytes.Equal(inPlace, want) {
		t.Fatalf("%v: in-place Decrypt(len %d) differs", impl, n)
	}
}

// TestAllLengths runs every length from one block to a sector and a bit, so
// every tail of the 8-block and 16-block loops runs.
func TestAllLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := make([]byte, KeySize)
	data := make([]byte, 4096+256)
	forEachImpl(t, func(t *testing.T) {
		for n := blockSize; n <= len(data); n += blockSize {
			fill(rng, key)
			fill(rng, data[:n])
			checkEquivalent(t, key, rng.Uint64(), data[:n])
		}
	})
}

// TestMulX checks both carries of the tweak doubling: bit 63 moves into the
// high half, and bit 127 folds back as x^7+x^2+x+1.
func TestMulX(t *testing.T) {
	for _, tc := range []struct{ in, want tweak }{
		{tweak{1, 0}, tweak{2, 0}},
		{tweak{1 << 63, 0}, tweak{0, 1}},
		{tweak{0, 1 << 63}, tweak{0x87, 0}},
		{tweak{1<<63 | 1, 1<<63 | 1}, tweak{0x87 ^ 2, 3}},
	} {
		if got := tc.in.mulX(); got != tc.want {
			t.Errorf("%#x·x = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// FuzzXTSEquivalence compares every code path with golang.org/x/crypto/xts
// for arbitrary keys, sectors, lengths (1 to 272 blocks: a sector and every
// tail past it) and data. The data is expanded from a seed rather than taken
// raw, so that inputs stay small: the fuzzer minimizes every new input in
// time quadratic in its length, which stalled fuzzing on raw sector data.
func FuzzXTSEquivalence(f *testing.F) {
	f.Add(make([]byte, KeySize), uint64(0), uint16(0), []byte{})
	f.Add(bytes.Repeat([]byte{0xff}, KeySize), ^uint64(0), uint16(255), []byte("seed"))
	f.Add([]byte("short key"), uint64(12345), uint16(271), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key []byte, sector uint64, blocks uint16, seed []byte) {
		// Stretch or cut the key to 64 bytes.
		key = append(bytes.Repeat([]byte{0}, KeySize-min(len(key), KeySize)), key...)[:KeySize]
		var s [32]byte
		copy(s[:], seed)
		data := make([]byte, (1+int(blocks)%(4096/blockSize+16))*blockSize)
		rand.NewChaCha8(s).Read(data)
		saved := impl
		defer func() { impl = saved }()
		for _, impl = range supportedImpls() {
			checkEquivalent(t, key, sector, data)
		}
	})
}

func TestPanics(t *testing.T) {
	c, err := NewCipher(make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3*4096)
	cases := []struct {
		name     string
		dst, src []byte
	}{
		{"empty", buf[:0], buf[:0]},
		{"short block", buf[:15], buf[4096 : 4096+15]},
		{"partial block", buf[:4100], buf[4096 : 4096+4100]},
		{"short dst", buf[:4080], buf[4096:]},
		{"overlap ahead", buf[16 : 16+4096], buf[:4096]},
		{"overlap behind", buf[:4096], buf[16 : 16+4096]},
	}
	forEachImpl(t, func(t *testing.T) {
		for _, tc := range cases {
			for _, op := range []struct {
				name string
				f    func(dst, src []byte, sector uint64)
			}{{"Encrypt", c.Encrypt}, {"Decrypt", c.Decrypt}} {
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("%s %s: no panic", op.name, tc.name)
						}
					}()
					op.f(tc.dst, tc.src, 0)
				}()
			}
		}
	})
}

func TestNewCipherKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 32, 48, 63, 65} {
		if _, err := NewCipher(make([]byte, n)); err == nil {
			t.Errorf("NewCipher accepted a %d-byte key", n)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	c, err := NewCipher(make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	forEachImpl(t, func(t *testing.T) {
		allocs := testing.AllocsPerRun(100, func() {
			c.Encrypt(buf, buf, 7)
			c.Decrypt(buf, buf, 7)
		})
		if allocs != 0 {
			t.Errorf("%v allocations per Encrypt+Decrypt, want 0", allocs)
		}
	})
}

// TestConcurrent shares one Cipher between goroutines (run it with -race).
func TestConcurrent(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	x := reference(t, key)
	forEachImpl(t, func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				plain := bytes.Repeat([]byte{byte(g)}, 4096)
				got, want := make([]byte, 4096), make([]byte, 4096)
				for s := range uint64(50) {
					sector := uint64(g)<<32 | s
					c.Encrypt(got, plain, sector)
					x.Encrypt(want, plain, sector)
					if !bytes.Equal(got, want) {
						t.Errorf("goroutine %d sector %#x: Encrypt differs", g, sector)
						return
					}
					c.Decrypt(got, got, sector)
					if !bytes.Equal(got, plain) {
						t.Errorf("goroutine %d sector %#x: round trip differs", g, sector)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
