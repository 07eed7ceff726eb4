package volume

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// TestVectorBySpec reads the vector volume with nothing but docs/VOLUME.md: its offsets,
// labels and constructions are written out here again, independently of the package, as a
// second implementation would. It checks every block against the vector's JSON.
func TestVectorBySpec(t *testing.T) {
	raw := readVectorStore(t)
	var vec volumeVector
	b, err := os.ReadFile(vectorJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vec); err != nil {
		t.Fatal(err)
	}
	release, _ := hex.DecodeString(vec.ReleaseKey)
	le := binary.LittleEndian
	kdf := func(secret, salt []byte, label string) []byte {
		k, err := hkdf.Key(sha256.New, secret, salt, label, 32)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	gcm := func(key []byte, nonceSize int) cipher.AEAD {
		blk, _ := aes.NewCipher(key)
		g, _ := cipher.NewGCMWithNonceSize(blk, nonceSize)
		return g
	}
	fpSum := sha256.Sum256(append([]byte("encfs v1 key fingerprint"), release...))
	fp := fpSum[:8]

	// "Opening": the valid copy with the highest generation.
	var hdr []byte
	var master []byte
	var gen uint64
	for c := range 2 {
		h := raw[c*4096 : (c+1)*4096]
		if string(h[0:8]) != "ENCFSVOL" || le.Uint64(h[40:])%2 != uint64(c) {
			continue
		}
		salt := h[56:88]
		for k := 0; k < int(le.Uint16(h[12:])); k++ {
			slot := h[200+80*k : 280+80*k]
			if !bytes.Equal(slot[0:8], fp) {
				continue
			}
			ad := append(append(append([]byte("ENCFSVOL"), 1, 0), h[24:40]...), fp...)
			m, err := gcm(kdf(release, salt, "encfs volume v1 keyslot"), 12).Open(nil, slot[8:20], slot[20:68], ad)
			if err != nil {
				continue
			}
			mac := hmac.New(sha256.New, kdf(m, salt, "encfs volume v1 header mac"))
			mac.Write(h[:840])
			if hmac.Equal(mac.Sum(nil), h[840:872]) && le.Uint64(h[40:]) > gen {
				hdr, master, gen = h, m, le.Uint64(h[40:])
			}
		}
	}
	if hdr == nil {
		t.Fatal("no header copy is valid by the spec")
	}
	salt, uuid := hdr[56:88], hdr[24:40]
	n, e := le.Uint64(hdr[88:]), uint64(le.Uint32(hdr[20:]))
	l := e / 128
	s := 2*e + 2*l + 10
	base := func(g uint64) int64 { return int64(8192 + g*s*4096) }
	aead := gcm(kdf(master, salt, "encfs volume v1 data"), 16)
	counter := func(entry []byte) uint64 { return le.Uint64(append(bytes.Clone(entry[0:7]), 0)) }
	open := func(level int, index uint64, entry []byte, off int64) []byte {
		nonce := append(le.AppendUint64(nil, counter(entry)), entry[8:16]...)
		aad := append(append(bytes.Clone(uuid), byte(level)), le.AppendUint64(nil, index)...)
		pt, err := aead.Open(nil, nonce, append(bytes.Clone(raw[off:off+4096]), entry[16:32]...), aad)
		if err != nil {
			t.Fatalf("level %d index %d does not open by the spec", level, index)
		}
		return pt
	}
	if n > 128 {
		t.Fatal("the spec reader handles one tree level, the vector's")
	}
	root := hdr[104:136]
	leaf := open(1, 0, root, base(0)+int64(2*e+uint64(root[7])*l)*4096)
	want := map[uint64]string{}
	for _, nz := range vec.NonZeroBlocks {
		want[nz.Block] = nz.SHA256
	}
	for i := uint64(0); i < n; i++ {
		ent := leaf[i*32 : i*32+32]
		plain := make([]byte, 4096)
		if counter(ent) != 0 {
			plain = open(0, i, ent, base(i/e)+int64(uint64(ent[7])*e+i%e)*4096)
		}
		got := fmt.Sprintf("%x", sha256.Sum256(plain))
		if w, ok := want[i]; (ok && got != w) || (!ok && !allZero(plain)) {
			t.Errorf("block %d read by the spec does not match the vector", i)
		}
	}
	if gen != vec.Generation {
		t.Errorf("generation %d by the spec, the vector says %d", gen, vec.Generation)
	}
}
