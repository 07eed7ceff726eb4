package volume

import (
	"bytes"
	"compress/gzip"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/encfs/encfs/internal/keyslot"
)

var update = flag.Bool("update", false, "rewrite the committed test vectors under testdata/vectors")

const (
	vectorStore = "../testdata/vectors/volume-small.store.gz"
	vectorJSON  = "../testdata/vectors/volume-small.json"
)

// volumeVector is the JSON description committed next to the vector store: every input and
// intermediate value a second implementation needs to check itself step by step.
type volumeVector struct {
	ReleaseKey      string        `json:"release_key"`
	Fingerprint     string        `json:"fingerprint"`
	MasterKey       string        `json:"master_key"`
	Salt            string        `json:"salt"`
	UUID            string        `json:"uuid"`
	Created         int64         `json:"created"`
	Label           string        `json:"label"`
	Blocks          uint64        `json:"blocks"`
	ExtentBlocks    uint32        `json:"extent_blocks"`
	Generation      uint64        `json:"generation"`
	CounterLimit    uint64        `json:"counter_limit"`
	KeyslotKEK      string        `json:"keyslot_kek"`
	KeyslotNonceKey string        `json:"keyslot_nonce_key"`
	DataKey         string        `json:"data_key"`
	HeaderMACKey    string        `json:"header_mac_key"`
	Root            vectorEntry   `json:"root"`
	Blocks5         vectorUnit    `json:"block5"`
	StoreSize       int64         `json:"store_size"`
	StoreSHA256     string        `json:"store_sha256"`
	PlainSHA256     string        `json:"plaintext_sha256"`
	NonZeroBlocks   []vectorBlock `json:"nonzero_blocks"`
}

type vectorEntry struct {
	Counter uint64 `json:"counter"`
	Slot    uint8  `json:"slot"`
	Session string `json:"session"`
	Tag     string `json:"tag"`
	Offset  int64  `json:"store_offset"`
}

// vectorUnit spells out the opening of one data block: nonce, associated data, where its
// ciphertext is, its tag (from its leaf) and its plaintext.
type vectorUnit struct {
	vectorEntry
	Nonce       string `json:"nonce"`
	AAD         string `json:"aad"`
	PlainSHA256 string `json:"plaintext_sha256"`
}

type vectorBlock struct {
	Block  uint64 `json:"block"`
	SHA256 string `json:"sha256"`
}

func vectorInputs() (release, master, salt []byte, uuid [16]byte) {
	release, master, salt = make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for i := range 32 {
		release[i], master[i], salt[i] = byte(i), byte(0x80+i), byte(0x40+i)
	}
	for i := range 16 {
		uuid[i] = byte(0xa0 + i)
	}
	return
}

// vectorSession is the session id of the one read-write open of the vector.
func vectorSession() []byte { return []byte{0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7} }

// makeVectorStore creates the vector volume: 16 blocks; block 0 "hello volume", block 5
// written twice (two commits, so both of its slots are used), and block 9 written without a
// flush, as a crash leaves it: storage holds it, the committed tree does not.
func makeVectorStore(t *testing.T) []byte {
	release, master, salt, uuid := vectorInputs()
	restore := setRandomForTest(bytes.NewReader(bytes.Join([][]byte{master, salt, uuid[:], vectorSession()}, nil)), time.Unix(1700000000, 0))
	defer restore()
	s := newFaultStore()
	if _, err := Create(ctx, s, release, CreateOptions{Size: 16 * BlockSize, Label: "vector"}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(ctx, s, [][]byte{release}, OpenOptions{Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		off   int64
		data  []byte
		flush bool
	}{
		{0, []byte("hello volume\n"), false},
		{5 * BlockSize, vectorPattern(1), true},
		{5 * BlockSize, vectorPattern(2), true},
		{9 * BlockSize, vectorPattern(3), false},
	}
	for _, st := range steps {
		if err := v.WriteAt(ctx, st.data, st.off); err != nil {
			t.Fatal(err)
		}
		if st.flush {
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s.rawRead(0, int(s.Size()))
}

func vectorPattern(k int) []byte {
	b := make([]byte, BlockSize)
	for i := range b {
		b[i] = byte((i*k + k) % 251)
	}
	return b
}

// TestVectorReproducible creates the vector volume with fixed inputs and compares the store
// bytes with the committed ones; -update rewrites them.
func TestVectorReproducible(t *testing.T) {
	got := makeVectorStore(t)
	if *update {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		zw.Write(got)
		zw.Close()
		if err := os.WriteFile(vectorStore, z.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readVectorStore(t); !bytes.Equal(got, want) {
		t.Fatal("creating the vector volume gave different bytes than testdata/vectors/volume-small.store.gz")
	}
}

func readVectorStore(t *testing.T) []byte {
	b, err := readVectorStoreErr()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readVectorStoreErr() ([]byte, error) {
	f, err := os.Open(vectorStore)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// TestVectorRead opens the committed vector store and checks it against the JSON description
// (rewritten with -update), recomputing the key schedule and opening block 5 with crypto/cipher
// directly, as a second implementation would.
func TestVectorRead(t *testing.T) {
	raw := readVectorStore(t)
	s := newFaultStore()
	s.size = int64(len(raw))
	s.rawWrite(0, raw)
	release, master, salt, _ := vectorInputs()
	v, err := Open(ctx, s, [][]byte{release}, OpenOptions{ReadOnly: true, Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	h := v.hdr
	plain := readAll(t, v)
	vec := volumeVector{
		ReleaseKey: hex.EncodeToString(release), Fingerprint: Fingerprint(release), MasterKey: hex.EncodeToString(master),
		Salt: hex.EncodeToString(salt), UUID: uuidString(h.UUID), Created: h.Created, Label: h.Label, Blocks: h.Blocks,
		ExtentBlocks: h.ExtentBlocks, Generation: h.Generation, CounterLimit: h.CounterLimit,
		KeyslotKEK:      hex.EncodeToString(keyslot.HKDF(release, salt, labelKeyslot, 32)),
		KeyslotNonceKey: hex.EncodeToString(keyslot.HKDF(release, salt, labelKeyslotNonce, 32)),
		DataKey:         hex.EncodeToString(keyslot.HKDF(master, salt, labelData, 32)),
		HeaderMACKey:    hex.EncodeToString(keyslot.HKDF(master, salt, labelHeaderMAC, 32)),
		Root:            vectorEntry{h.Root.counter, h.Root.slot, hex.EncodeToString(h.Root.session[:]), hex.EncodeToString(h.Root.tag[:]), v.geo.nodeOffset(1, 0, h.Root.slot)},
		StoreSize:       int64(len(raw)), StoreSHA256: fmt.Sprintf("%x", sha256.Sum256(raw)), PlainSHA256: fmt.Sprintf("%x", sha256.Sum256(plain)),
	}
	for b := range h.Blocks {
		blk := plain[b*BlockSize : (b+1)*BlockSize]
		if !allZero(blk) {
			vec.NonZeroBlocks = append(vec.NonZeroBlocks, vectorBlock{b, fmt.Sprintf("%x", sha256.Sum256(blk))})
		}
	}
	var e [1]entry
	if err := v.entries(ctx, 5, 1, e[:], nil, nil); err != nil {
		t.Fatal(err)
	}
	var nonce [nonceSize]byte
	binary.LittleEndian.PutUint64(nonce[:], e[0].counter)
	copy(nonce[8:], e[0].session[:])
	aad := append(append(h.UUID[:16:16], 0), binary.LittleEndian.AppendUint64(nil, 5)...)
	vec.Blocks5 = vectorUnit{vectorEntry: vectorEntry{e[0].counter, e[0].slot, hex.EncodeToString(e[0].session[:]), hex.EncodeToString(e[0].tag[:]), v.geo.dataOffset(5, e[0].slot)},
		Nonce: hex.EncodeToString(nonce[:]), AAD: hex.EncodeToString(aad), PlainSHA256: fmt.Sprintf("%x", sha256.Sum256(vectorPattern(2)))}

	// Block 5 opened by hand from the JSON's values and the raw bytes.
	dk, _ := hex.DecodeString(vec.DataKey)
	blk, _ := aes.NewCipher(dk)
	gcm, _ := cipher.NewGCMWithNonceSize(blk, nonceSize)
	off := vec.Blocks5.Offset
	pt, err := gcm.Open(nil, nonce[:], append(bytes.Clone(raw[off:off+BlockSize]), e[0].tag[:]...), aad)
	if err != nil || !bytes.Equal(pt, vectorPattern(2)) {
		t.Fatalf("block 5 does not open by hand with the documented nonce and associated data: %v", err)
	}
	if !bytes.Equal(plain[9*BlockSize:10*BlockSize], make([]byte, BlockSize)) {
		t.Fatal("block 9, written without a flush, is part of the committed volume")
	}

	if *update {
		out, _ := json.MarshalIndent(vec, "", "  ")
		if err := os.WriteFile(vectorJSON, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(filepath.Clean(vectorJSON))
	if err != nil {
		t.Fatal(err)
	}
	var want volumeVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(vec)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("vector volume reads as\n%s\nwant\n%s", gotJSON, wantJSON)
	}
}
