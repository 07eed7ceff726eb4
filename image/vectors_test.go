package image_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/pack"
)

var update = flag.Bool("update", false, "rewrite the committed test vectors under testdata/vectors")

const vectorDir = "../testdata/vectors"

// vectorTree writes the small tree of the v2 test vector. Owner and times are fixed where the
// process may set them.
func vectorTree(t *testing.T) string {
	dir := t.TempDir()
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i % 251)
	}
	os.MkdirAll(filepath.Join(dir, "dir"), 0o755)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello world\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "dir", "data.bin"), data, 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	os.Symlink("../hello.txt", filepath.Join(dir, "dir", "link"))
	mt := time.Unix(1700000000, 0)
	for _, p := range []string{"hello.txt", "dir/data.bin", "empty", "dir", "."} {
		os.Chtimes(filepath.Join(dir, p), mt, mt)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, "dir", "link"), ts, unix.AT_SYMLINK_NOFOLLOW)
	os.Chtimes(filepath.Join(dir, "dir"), mt, mt)
	os.Chmod(dir, 0o755)
	return dir
}

// Vector is the JSON description committed next to the vector image: every input and
// intermediate value a second implementation needs to check itself step by step.
type Vector struct {
	ReleaseKey      string       `json:"release_key"`
	Fingerprint     string       `json:"fingerprint"`
	MasterKey       string       `json:"master_key"`
	Salt            string       `json:"salt"`
	UUID            string       `json:"uuid"`
	Series          string       `json:"series"`
	Created         int64        `json:"created"`
	Generation      uint64       `json:"generation"`
	SignKeySeed     string       `json:"sign_key_seed"`
	Signer          string       `json:"signer"`
	KeyslotKEK      string       `json:"keyslot_kek"`
	KeyslotNonceKey string       `json:"keyslot_nonce_key"`
	XTSKey          string       `json:"xts_key"`
	HeaderMACKey    string       `json:"header_mac_key"`
	ContentBlocks   uint64       `json:"content_blocks"`
	TreeBlocks      uint64       `json:"tree_blocks"`
	IndexBlock      uint64       `json:"index_block"`
	Root            string       `json:"integrity_root"`
	Unit0Leaf       string       `json:"unit0_leaf"`
	Block0Plain     string       `json:"block0_plaintext_sha256"`
	ImageSHA256     string       `json:"image_sha256"`
	Files           []VectorFile `json:"files"`
}

type VectorFile struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"` // st_mode in octal
	Size   uint64 `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"`
}

// vectorInputs are the fixed inputs of the vector: in a real packing the master key and salt
// come from crypto/rand and nothing can set them; the test sets them through
// image.SetRandomForTest.
func vectorInputs() (release, master []byte, salt [32]byte, uuid [16]byte, series [16]byte, signKey ed25519.PrivateKey) {
	release, master = make([]byte, 32), make([]byte, 32)
	seed := make([]byte, ed25519.SeedSize)
	for i := range 32 {
		release[i], master[i], salt[i], seed[i] = byte(i), byte(0x80+i), byte(0x40+i), byte(0x20+i)
	}
	for i := range 16 {
		uuid[i], series[i] = byte(0xa0+i), byte(0x60+i)
	}
	return release, master, salt, uuid, series, ed25519.NewKeyFromSeed(seed)
}

// TestVectorReproducible packs the vector tree with fixed inputs and compares the bytes with
// the committed image (as root, who can fix the owner); -update rewrites the image.
func TestVectorReproducible(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the committed vector was packed as root (uid/gid 0); repacking it needs root")
	}
	release, master, salt, uuid, series, signKey := vectorInputs()
	defer image.SetRandomForTest(bytes.NewReader(append(bytes.Clone(master), salt[:]...)))()
	out := filepath.Join(t.TempDir(), "v2.img")
	_, err := pack.Pack(context.Background(), vectorTree(t), out, pack.Options{WriterOptions: image.WriterOptions{
		ReleaseKeys: [][]byte{release}, UUID: &uuid, Series: &series, SignKey: signKey, Created: time.Unix(1700000000, 0), Generation: 7}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if *update {
		if err := os.WriteFile(filepath.Join(vectorDir, "v2-small.img"), got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(filepath.Join(vectorDir, "v2-small.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("packing the vector tree gave different bytes than testdata/vectors/v2-small.img")
	}
}

// TestVectorRead reads the committed vector image and checks it against the JSON description
// (rewritten with -update).
func TestVectorRead(t *testing.T) {
	release, _, _, _, _, signKey := vectorInputs()
	path := filepath.Join(vectorDir, "v2-small.img")
	im := openImage(t, path, release)
	raw, _ := os.ReadFile(path)
	h := im.Header()
	v := Vector{ContentBlocks: h.ContentBlocks, TreeBlocks: h.TreeBlocks, IndexBlock: h.IndexBlock, Root: h.RootHex(),
		UUID: h.UUIDString(), Series: h.SeriesHex(), Signer: h.SignerHex(), Created: h.Created, Generation: h.Generation, Fingerprint: image.Fingerprint(release),
		ImageSHA256: fmt.Sprintf("%x", sha256.Sum256(raw))}
	ctx := context.Background()
	err := im.Walk(ctx, func(p string, in *image.Inode) error {
		f := VectorFile{Path: p, Mode: fmt.Sprintf("%o", in.Mode)}
		switch {
		case in.IsRegular():
			buf := make([]byte, in.Size)
			if _, err := im.ReadFile(ctx, in, buf, 0); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			f.Size, f.SHA256 = in.Size, fmt.Sprintf("%x", sha256.Sum256(buf))
		case in.IsSymlink():
			f.Target, _ = im.Readlink(ctx, in)
		}
		v.Files = append(v.Files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !h.SignedBy(signKey.Public().(ed25519.PublicKey)) {
		t.Error("the vector image's signature does not verify with the vector's signing key")
	}
	jsonPath := filepath.Join(vectorDir, "v2-small.json")
	var want Vector
	b, err := os.ReadFile(jsonPath)
	if err == nil {
		err = json.Unmarshal(b, &want)
	}
	if *update {
		// Keep the key-schedule values, which the internal test fills in.
		v.KeyslotKEK, v.KeyslotNonceKey, v.XTSKey, v.HeaderMACKey, v.Unit0Leaf, v.Block0Plain = want.KeyslotKEK, want.KeyslotNonceKey, want.XTSKey, want.HeaderMACKey, want.Unit0Leaf, want.Block0Plain
		rk, mk, salt, _, _, sk := vectorInputs()
		v.ReleaseKey, v.MasterKey, v.Salt, v.SignKeySeed = hex.EncodeToString(rk), hex.EncodeToString(mk), hex.EncodeToString(salt[:]), hex.EncodeToString(sk.Seed())
		out, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(jsonPath, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(v)
	want.ReleaseKey, want.MasterKey, want.Salt, want.SignKeySeed = "", "", "", ""
	want.KeyslotKEK, want.KeyslotNonceKey, want.XTSKey, want.HeaderMACKey, want.Unit0Leaf, want.Block0Plain = "", "", "", "", "", ""
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("vector image reads as\n%s\nwant\n%s", gotJSON, wantJSON)
	}
}
