package image_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
)

// tamperFixture is one packed image plus what the tamper cases need to aim at.
type tamperFixture struct {
	key      []byte
	img      []byte // pristine image bytes
	other    []byte // the same tree packed again: another master key, salt and UUID
	hdr      *image.Header
	sb       image.Superblock
	fileOff  uint64 // content offset of multi/mib3's data
	snapshot map[string]testtree.Entry
}

func newTamperFixture(t *testing.T) *tamperFixture {
	src := testtree.Build(t, t.TempDir())
	f := &tamperFixture{key: newKey(t), snapshot: testtree.Snapshot(t, src)}
	path := packTree(t, src, f.key)
	im := openImage(t, path, f.key)
	f.hdr, f.sb = im.Header(), *im.Superblock()
	in, err := im.LookupPath(context.Background(), "multi/mib3")
	if err != nil {
		t.Fatal(err)
	}
	f.fileOff = in.DataOffset
	if f.img, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if f.other, err = os.ReadFile(packTree(t, src, f.key)); err != nil {
		t.Fatal(err)
	}
	return f
}

// check opens a tampered copy and requires both the read path (Open, then reading every file)
// and Verify to fail with wantErr, and never to return bytes that differ from the source.
func (f *tamperFixture) check(t *testing.T, b []byte, wantErr error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tampered.img")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := blobio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	im, err := image.Open(ctx, image.Plain(src), [][]byte{f.key}, image.Options{})
	if err != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("open: %v, want %v", err, wantErr)
		}
		return // refused before anything could be read: also what verify sees
	}
	var readErr error
	im.Walk(ctx, func(p string, in *image.Inode) error {
		if !in.IsRegular() {
			return nil
		}
		buf := make([]byte, in.Size)
		n, err := im.ReadFile(ctx, in, buf, 0)
		want := f.snapshot[p[1:]].Content
		if err == nil && !bytes.Equal(buf[:n], want) {
			t.Errorf("%s: read returned different bytes without an error", p)
		}
		if err != nil && readErr == nil && !errors.Is(err, io.EOF) {
			readErr = err
		}
		return nil
	})
	walkErr := im.Walk(ctx, func(string, *image.Inode) error { return nil })
	if readErr == nil {
		readErr = walkErr
	}
	if !errors.Is(readErr, wantErr) {
		t.Errorf("read path: %v, want %v", readErr, wantErr)
	}
	if err := im.Verify(ctx, nil); !errors.Is(err, wantErr) {
		t.Errorf("verify: %v, want %v", err, wantErr)
	}
}

func flip(b []byte, off uint64) []byte {
	c := bytes.Clone(b)
	c[off] ^= 0x40
	return c
}

func TestTamper(t *testing.T) {
	f := newTamperFixture(t)
	content := func(off uint64) uint64 { return image.HeaderSize + off }
	treeOff := f.hdr.TreeOffset
	blk := func(b []byte, n uint64) []byte { return b[content(n*image.BlockSize):][:image.BlockSize] }
	dataBlock := f.fileOff / image.BlockSize
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"header generation", flip(f.img, 40), image.ErrIntegrity},
		{"header root", flip(f.img, 128), image.ErrIntegrity},
		{"header MAC", flip(f.img, 912), image.ErrIntegrity},
		{"header series", flip(f.img, 160), image.ErrIntegrity},
		{"header salt", flip(f.img, 60), image.ErrIntegrity},
		{"header UUID", flip(f.img, 30), image.ErrIntegrity},
		{"header signer without signature", flip(f.img, 176), image.ErrCorrupt},
		{"header reserved", flip(f.img, 3000), image.ErrCorrupt},
		{"keyslot", flip(f.img, 272+30), image.ErrIntegrity},
		{"unsupported version", func() []byte { c := bytes.Clone(f.img); binary.LittleEndian.PutUint16(c[8:], 3); return c }(), image.ErrUnsupportedVersion},
		{"version 1", func() []byte { c := bytes.Clone(f.img); binary.LittleEndian.PutUint16(c[8:], 1); return c }(), image.ErrUnsupportedVersion},
		{"not an image", bytes.Repeat([]byte("x"), 10000), image.ErrNotImage},
		{"index superblock", flip(f.img, content(f.hdr.IndexBlock*image.BlockSize+20)), image.ErrIntegrity},
		{"index inode table", flip(f.img, content(f.sb.InodeTableOffset+70)), image.ErrIntegrity},
		{"index directory entries", flip(f.img, content(f.sb.MetaOffset+3)), image.ErrIntegrity},
		{"file data", flip(f.img, content(f.fileOff+5000)), image.ErrIntegrity},
		{"integrity tree leaf", flip(f.img, treeOff+17), image.ErrIntegrity},
		{"integrity tree top", flip(f.img, uint64(len(f.img))-image.BlockSize+1), image.ErrIntegrity},
		{"truncated by a block", f.img[:len(f.img)-image.BlockSize], image.ErrTruncated},
		{"truncated to the header", f.img[:image.HeaderSize], image.ErrTruncated},
		{"truncated inside the header", f.img[:100], image.ErrTruncated},
		{"bytes appended", append(bytes.Clone(f.img), 0), image.ErrCorrupt},
		{"blocks swapped", func() []byte {
			c := bytes.Clone(f.img)
			a, b := blk(c, dataBlock), blk(c, dataBlock+1)
			tmp := bytes.Clone(a)
			copy(a, b)
			copy(b, tmp)
			return c
		}(), image.ErrIntegrity},
		{"block spliced from another image", func() []byte {
			c := bytes.Clone(f.img)
			copy(blk(c, dataBlock), blk(f.other, dataBlock))
			return c
		}(), image.ErrIntegrity},
		{"tree spliced from another image", func() []byte {
			c := bytes.Clone(f.img)
			copy(c[treeOff:], f.other[treeOff:])
			return c
		}(), image.ErrIntegrity},
		{"header spliced from another image", func() []byte {
			c := bytes.Clone(f.img)
			copy(c[:image.HeaderSize], f.other[:image.HeaderSize])
			return c
		}(), image.ErrIntegrity},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { f.check(t, c.b, c.want) })
	}
}

// TestTamperedFileOnlyFailsItsReads flips one byte of file data: every read that touches the
// verification unit holding it fails with an integrity error naming the unit, returns no byte
// of that unit (verified or not), and every read that does not touch it, the neighbouring
// units included, returns the right bytes. Both a unit-aligned file (multi/mib3) and one that
// starts inside a unit and shares it with other files (b4097) are hit, in several places.
func TestTamperedFileOnlyFailsItsReads(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		file string
		at   uint64 // file offset of the flipped byte
	}{{"multi/mib3", 3*image.BlockSize + 7}, {"multi/mib3", 1<<20 + image.UnitSize + 5000}, {"multi/mib3", 3<<20 - 1}, {"b4097", 4096}, {"b4097", 10}} {
		t.Run(fmt.Sprintf("%s@%d", c.file, c.at), func(t *testing.T) {
			pristine := openImage(t, writeTemp(t, f.img), f.key)
			in, err := pristine.LookupPath(ctx, c.file)
			if err != nil {
				t.Fatal(err)
			}
			im := openImage(t, writeTemp(t, flip(f.img, image.HeaderSize+in.DataOffset+c.at)), f.key)
			want := f.snapshot[c.file].Content
			unit := (in.DataOffset + c.at) / image.UnitSize
			// The bad unit in file offsets, clipped to the file.
			badLo := int64(max(unit*image.UnitSize, in.DataOffset) - in.DataOffset)
			badHi := int64(min((unit+1)*image.UnitSize-in.DataOffset, in.Size))
			size := int64(in.Size)
			type rng struct{ off, n int64 }
			reads := []rng{{badLo, 1}, {badHi - 1, 1}, {badLo - 1, 2}, {badHi - 1, 2}, {badLo - 100, badHi - badLo + 200},
				{0, size}, {badLo + 5000, 10}, {badLo - 1, 1}, {badHi, 1}, {badLo - image.UnitSize, image.UnitSize}, {badHi, image.UnitSize}}
			for off := (badLo - 2*image.UnitSize) / image.BlockSize * image.BlockSize; off < badHi+2*image.UnitSize; off += image.BlockSize {
				reads = append(reads, rng{off, image.BlockSize})
			}
			failed := 0
			for _, r := range reads {
				r.off = max(r.off, 0)
				r.n = min(r.n, size-r.off)
				if r.n <= 0 {
					continue
				}
				buf := bytes.Repeat([]byte{0xa5}, int(r.n))
				n, err := im.ReadFile(ctx, &in, buf, r.off)
				touches := r.off < badHi && r.off+r.n > badLo
				if !touches {
					if err != nil || !bytes.Equal(buf[:n], want[r.off:r.off+int64(n)]) || int64(n) != r.n {
						t.Errorf("read %d at %d (outside the bad unit [%d, %d)): %d bytes, %v", r.n, r.off, badLo, badHi, n, err)
					}
					continue
				}
				failed++
				var ie *image.IntegrityError
				if !errors.As(err, &ie) || ie.Region != image.RegionContent || ie.Block != unit*image.BlocksPerUnit {
					t.Errorf("read %d at %d (touches the bad unit): %v, want an integrity error for content block %d", r.n, r.off, err, unit*image.BlocksPerUnit)
				}
				// Nothing of the bad unit reached the buffer: it holds the fill or zeros.
				for i := max(badLo, r.off); i < min(badHi, r.off+r.n); i++ {
					if b := buf[i-r.off]; b != 0xa5 && b != 0 {
						t.Fatalf("read %d at %d failed but left byte %#x of the bad unit at file offset %d", r.n, r.off, b, i)
					}
				}
			}
			if failed == 0 {
				t.Fatal("no read touched the bad unit")
			}
			other, _ := im.LookupPath(ctx, "b4095")
			if c.file == "multi/mib3" {
				if n, err := im.ReadFile(ctx, &other, make([]byte, 4095), 0); err != nil || n != 4095 {
					t.Errorf("other file: %d bytes, %v", n, err)
				}
			}
			if got := im.Stats().IntegrityFailures; got != uint64(failed) {
				t.Errorf("%d integrity failures counted, want %d (one per failed read)", got, failed)
			}
		})
	}
}

func writeTemp(t *testing.T, b []byte) string {
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// flakyCache is a source with a cache whose copy of one block went bad: reads return the block
// corrupted until Invalidate drops it, as a damaged disk-cache chunk would.
type flakyCache struct {
	image.Source
	badOff      int64
	invalidated bool
}

func (f *flakyCache) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := f.Source.ReadAt(ctx, p, off)
	if !f.invalidated && off <= f.badOff && f.badOff < off+int64(n) {
		p[f.badOff-off] ^= 1
	}
	return n, err
}

func (f *flakyCache) Invalidate(off, length int64) bool {
	if off <= f.badOff && f.badOff < off+length {
		f.invalidated = true
	}
	return true
}

func TestBadCachedCopyIsFetchedAgain(t *testing.T) {
	f := newTamperFixture(t)
	path := writeTemp(t, f.img)
	want := f.snapshot["multi/mib3"].Content
	// Whole units read in place, part of one unit (a small read), and a unit at the edge of a
	// larger read (kept in the unit cache) each take their own path to the source.
	for name, r := range map[string]struct{ off, n int }{"whole units": {0, 64 << 10}, "part of a unit": {2 * image.BlockSize, image.BlockSize},
		"unit at the edge of a read": {100, 40 << 10}} {
		t.Run(name, func(t *testing.T) {
			src, _ := blobio.OpenFile(path)
			flaky := &flakyCache{Source: image.Plain(src), badOff: int64(image.HeaderSize + f.fileOff + 2*image.BlockSize + 9)}
			im, err := image.Open(context.Background(), flaky, [][]byte{f.key}, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			in, _ := im.LookupPath(context.Background(), "multi/mib3")
			buf := make([]byte, r.n)
			if _, err := im.ReadFile(context.Background(), &in, buf, int64(r.off)); err != nil || !bytes.Equal(buf, want[r.off:r.off+r.n]) {
				t.Fatalf("read: %v", err)
			}
			if !flaky.invalidated || im.Stats().IntegrityFailures != 0 {
				t.Fatalf("invalidated %v, failures %d", flaky.invalidated, im.Stats().IntegrityFailures)
			}
		})
	}
}

// TestThroughChunkedSource reads through blobio.Chunked, whose views let the reader verify
// blocks in the chunk cache and decrypt them straight into the caller's buffer: the tree must
// read the same, and a bad block must still fail.
func TestThroughChunkedSource(t *testing.T) {
	f := newTamperFixture(t)
	for name, img := range map[string][]byte{"intact": f.img, "tampered": flip(f.img, image.HeaderSize+f.fileOff+5*image.BlockSize)} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img")
			os.WriteFile(path, img, 0o600)
			src, _ := blobio.OpenFile(path)
			c := blobio.NewChunked(src, blobio.ChunkOptions{ChunkSize: 64 << 10, Workers: 2, CacheBytes: 256 << 10})
			im, err := image.Open(context.Background(), c, [][]byte{f.key}, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			ctx := context.Background()
			in, _ := im.LookupPath(ctx, "multi/mib3")
			got := make([]byte, in.Size)
			// 8 KiB reads stay inside one chunk, so they take the view path.
			for off := 0; off < len(got) && err == nil; off += 8 << 10 {
				_, err = im.ReadFile(ctx, &in, got[off:min(off+8<<10, len(got))], int64(off))
			}
			if name == "intact" {
				if (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(got, f.snapshot["multi/mib3"].Content) {
					t.Fatalf("read: %v", err)
				}
				testtree.Equal(t, f.snapshot, snapshotImage(t, im))
				return
			}
			if !errors.Is(err, image.ErrIntegrity) {
				t.Fatalf("tampered read: %v", err)
			}
			// One read across many chunks is split at their edges; the bad chunk fails it
			// whole, and nothing of it, verified or not, is left in the buffer (the 0xff
			// would stay where a piece was never read).
			for i := range got {
				got[i] = 0xff
			}
			if _, err := im.ReadFile(ctx, &in, got, 0); !errors.Is(err, image.ErrIntegrity) {
				t.Fatalf("tampered read of the whole file: %v", err)
			}
			whole := len(got) / image.UnitSize * image.UnitSize // the units read in place
			if !bytes.Equal(got[:whole], make([]byte, whole)) {
				t.Fatal("a failed read left bytes in the buffer")
			}
		})
	}
}

// identifiedFile gives a local image file the identity a disk cache needs (a blob's ETag).
type identifiedFile struct{ *blobio.FileSource }

func (identifiedFile) Identity() string { return "test image v1" }

// TestDamagedDiskCacheIsFetchedAgain: the disk cache keeps no checksums of its own. A cached
// chunk whose bytes changed on disk fails verification, is dropped and fetched again, and the
// read returns the right bytes; only damage in the image itself is an integrity error.
func TestDamagedDiskCacheIsFetchedAgain(t *testing.T) {
	f := newTamperFixture(t)
	path := filepath.Join(t.TempDir(), "img")
	os.WriteFile(path, f.img, 0o600)
	cacheDir := t.TempDir()
	opts := blobio.ChunkOptions{ChunkSize: 64 << 10, Workers: 2, CacheBytes: 256 << 10, DiskCache: cacheDir, DiskCacheBytes: 64 << 20}
	want := f.snapshot["multi/mib3"].Content
	readAll := func() (*blobio.Chunked, *image.Image, []byte, error) {
		src, err := blobio.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := blobio.NewChunked(identifiedFile{src}, opts)
		if err := c.DiskCacheError(); err != nil {
			t.Fatal(err)
		}
		im, err := image.Open(context.Background(), c, [][]byte{f.key}, image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		in, _ := im.LookupPath(context.Background(), "multi/mib3")
		got := make([]byte, in.Size)
		_, err = im.ReadFile(context.Background(), &in, got, 0)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return c, im, got, err
	}
	c, im, got, err := readAll()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first read: %v", err)
	}
	im.Close()
	c.Close() // waits for the disk writes
	damaged := 0
	filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".chunk") {
			b, _ := os.ReadFile(p)
			for i := range b {
				b[i] ^= 0x5a
			}
			os.WriteFile(p, b, 0o600)
			damaged++
		}
		return nil
	})
	if damaged == 0 {
		t.Fatal("nothing reached the disk cache")
	}
	c, im, got, err = readAll()
	defer c.Close()
	defer im.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read over a damaged disk cache: %v", err)
	}
	if st := c.Stats(); st.DiskCorrupt == 0 || st.DiskHits == 0 || im.Stats().IntegrityFailures != 0 {
		t.Fatalf("disk hits %d, damaged chunks found %d, integrity failures %d", st.DiskHits, st.DiskCorrupt, im.Stats().IntegrityFailures)
	}
}

// TestKeyslotEditRefusesTamperedHeader: a keyslot edit authenticates the header the way Open
// does, so it refuses a modified header instead of re-sealing it with a fresh MAC.
func TestKeyslotEditRefusesTamperedHeader(t *testing.T) {
	f := newTamperFixture(t)
	for name, off := range map[string]uint64{"root": 128, "MAC": 912, "keyslot": 272 + 30} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img")
			bad := flip(f.img, off)
			os.WriteFile(path, bad, 0o600)
			err := image.AddKeyslot(context.Background(), openRW(t, path), f.key, newKey(t))
			if !errors.Is(err, image.ErrIntegrity) {
				t.Fatalf("add a keyslot to a header with a modified %s: %v", name, err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, bad) {
				t.Fatal("the refused edit wrote to the image")
			}
		})
	}
}
