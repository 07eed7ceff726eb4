package image_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
)

// TestUnitCachePolicy checks which reads keep a unit they cover in part in the unit cache: a
// sequential reader whose reads end inside a unit finds that unit cached for its next read,
// while small reads inside one unit and the edges of a read that reach the file's ends are
// verified every time and kept nowhere. Every read returns the right bytes.
func TestUnitCachePolicy(t *testing.T) {
	src := t.TempDir()
	want := testtree.Content("mid", 600<<10)
	// One unit and a bit: the next file starts one block into a unit.
	os.WriteFile(filepath.Join(src, "a-small"), testtree.Content("small", image.UnitSize+100), 0o644)
	os.WriteFile(filepath.Join(src, "mid"), want, 0o644)
	// A file after it, so that mid's last unit holds file data, not the index (whose units
	// the reader caches as it opens the image).
	os.WriteFile(filepath.Join(src, "z-after"), testtree.Content("after", 20000), 0o644)
	key := newKey(t)
	im := openImage(t, packTree(t, src, key), key)
	ctx := context.Background()
	in, err := im.LookupPath(ctx, "mid")
	if err != nil {
		t.Fatal(err)
	}
	if in.DataOffset%image.UnitSize == 0 {
		t.Fatalf("mid starts on a unit boundary (content offset %d): the test needs it inside a unit", in.DataOffset)
	}
	read := func(off, n int) (hits, misses uint64) {
		t.Helper()
		before := im.Stats()
		buf := make([]byte, n)
		if got, err := im.ReadFile(ctx, &in, buf, int64(off)); err != nil || got != n || !bytes.Equal(buf, want[off:off+n]) {
			t.Fatalf("read %d at %d: %d bytes, %v", n, off, got, err)
		}
		after := im.Stats()
		return after.CacheHits - before.CacheHits, after.CacheMisses - before.CacheMisses
	}
	// Sequential 36 KiB reads: the unit where one read ends is where the next one starts.
	const step = 36 << 10
	starts := 0
	for off := 0; off+step <= len(want); off += step {
		inside := off > 0 && (in.DataOffset+uint64(off))%image.UnitSize != 0
		if inside {
			starts++
		}
		if h, _ := read(off, step); h == 0 && inside {
			t.Fatalf("sequential read at %d found the unit the previous read ended in uncached", off)
		}
	}
	if starts == 0 {
		t.Fatal("no sequential read started inside a unit")
	}
	// A small read inside one unit, twice: verified both times, kept nowhere.
	for i := 0; i < 2; i++ {
		if h, m := read(300<<10+100, 1000); h != 0 || m != 1 {
			t.Fatalf("small read %d: %d hits, %d misses; want 0 and 1", i, h, m)
		}
	}
	// The whole file, twice: its first and last units hold bytes of the files around it, which
	// a reader of this file never asks for, so neither is kept.
	edges := uint64(1) // the first unit; the last too unless the file ends on a unit boundary
	if (in.DataOffset+in.Size)%image.UnitSize != 0 {
		edges++
	}
	for i := 0; i < 2; i++ {
		if h, m := read(0, len(want)); h != 0 || m != edges {
			t.Fatalf("whole-file read %d: %d hits, %d misses; want 0 and %d", i, h, m, edges)
		}
	}
}

// countingSource counts the reads of the source that overlap [lo, hi).
type countingSource struct {
	image.Source
	lo, hi int64
	reads  atomic.Int64
}

func (c *countingSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < c.hi && off+int64(len(p)) > c.lo {
		c.reads.Add(1)
	}
	return c.Source.ReadAt(ctx, p, off)
}

// TestSmallFileOneRead checks that a small file read whole, whose first and last units it
// shares with other files, costs one read of the source, however many units it touches.
func TestSmallFileOneRead(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), testtree.Content("a", image.UnitSize+100), 0o644)
	want := testtree.Content("b", 100<<10+1000)
	os.WriteFile(filepath.Join(src, "b"), want, 0o644)
	os.WriteFile(filepath.Join(src, "c"), testtree.Content("c", 5000), 0o644)
	key := newKey(t)
	path := packTree(t, src, key)
	in, err := openImage(t, path, key).LookupPath(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	fsrc, err := blobio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingSource{Source: image.Plain(fsrc), lo: int64(image.HeaderSize + in.DataOffset), hi: int64(image.HeaderSize + in.DataOffset + in.Size)}
	im, err := image.Open(context.Background(), counting, [][]byte{key}, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if in.DataOffset%image.UnitSize == 0 || (in.DataOffset+in.Size)%image.UnitSize == 0 {
		t.Fatalf("b (content offset %d, %d bytes) does not share its first and last units", in.DataOffset, in.Size)
	}
	counting.reads.Store(0)
	buf := make([]byte, in.Size)
	if n, err := im.ReadFile(context.Background(), &in, buf, 0); err != nil || n != len(want) || !bytes.Equal(buf, want) {
		t.Fatalf("read: %d bytes, %v", n, err)
	}
	if got := counting.reads.Load(); got != 1 {
		t.Errorf("reading a %d-byte file whole took %d reads of the source, want 1", in.Size, got)
	}
}
