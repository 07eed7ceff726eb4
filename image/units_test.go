package image_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

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
