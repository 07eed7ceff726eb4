package writeback_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/encfs/encfs/volume"
	"github.com/encfs/encfs/volume/writeback"
)

var _ volume.Store = (*writeback.Store)(nil)

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func fileBytes(t *testing.T, s *fileStore) []byte {
	t.Helper()
	b, err := os.ReadFile(s.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCoalescesIntoLargeWrites(t *testing.T) {
	ctx := context.Background()
	fs := newFileStore(t, 16<<20)
	inner := &counting{Store: fs}
	c := writeback.New(inner, writeback.Options{MaxDirty: 8 << 20, MaxWrite: 1 << 20, Parallel: 8})
	defer c.Close()
	want := pattern(1, 8<<20)

	// 2048 sequential writes of 4 KiB become 8 writes of 1 MiB.
	for off := 0; off < len(want); off += 4096 {
		if err := c.WriteAt(ctx, want[off:off+4096], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inner.sizes(); len(got) != 8 || got[0] != 1<<20 || got[7] != 1<<20 {
		t.Fatalf("8 MiB of 4 KiB writes reached the store as %d writes: %v", len(got), got)
	}
	if !bytes.Equal(fileBytes(t, fs)[:8<<20], want) {
		t.Fatal("store content differs")
	}

	// Writes in random order below the high water: nothing is written before the Flush, then
	// one write.
	region := pattern(2, 1<<20)
	for _, i := range rand.Perm(256) {
		if err := c.WriteAt(ctx, region[i*4096:(i+1)*4096], 9<<20+int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if got := inner.sizes(); len(got) != 0 {
		t.Fatalf("writes below the high water reached the store before Flush: %v", got)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inner.sizes(); len(got) != 1 || got[0] != 1<<20 {
		t.Fatalf("1 MiB written in random order reached the store as %v", got)
	}

	// Single pages with a hole between them: two writes, the hole untouched.
	for _, page := range []int64{0, 1, 3} {
		if err := c.WriteAt(ctx, bytes.Repeat([]byte{0xee}, 512), 12<<20+page*512); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inner.sizes(); len(got) != 2 || got[0]+got[1] != 1536 {
		t.Fatalf("pages 0, 1 and 3 reached the store as %v", got)
	}
	got := fileBytes(t, fs)[12<<20 : 12<<20+2048]
	if !bytes.Equal(got[:1024], bytes.Repeat([]byte{0xee}, 1024)) || !bytes.Equal(got[1024:1536], make([]byte, 512)) ||
		!bytes.Equal(got[1536:], bytes.Repeat([]byte{0xee}, 512)) {
		t.Fatal("pages around a hole differ")
	}
}

func TestRejectsUnalignedAndOutOfRange(t *testing.T) {
	c := writeback.New(newFileStore(t, 1<<20), writeback.Options{MaxDirty: 64 << 10})
	defer c.Close()
	ctx := context.Background()
	for _, bad := range []struct {
		n    int
		off  int64
		want string
	}{{100, 0, "multiples of 512"}, {512, 1, "multiples of 512"}, {1024, 1<<20 - 512, "past the end"}} {
		if err := c.WriteAt(ctx, make([]byte, bad.n), bad.off); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("write %d at %d: %v", bad.n, bad.off, err)
		}
		if err := c.ReadAt(ctx, make([]byte, bad.n), bad.off); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("read %d at %d: %v", bad.n, bad.off, err)
		}
	}
}

// model is the bytes a store must hold, for checking reads against.
type model struct {
	mu sync.Mutex
	b  []byte
}

// Reads see every write at once, whether its pages are dirty, being written out or already
// written; the cache stays within its bound; the store ends up with every byte.
func TestReadYourWritesUnderWriteOut(t *testing.T) {
	ctx := context.Background()
	const size = 4 << 20
	fs := newFileStore(t, size)
	c := writeback.New(fs, writeback.Options{MaxDirty: 256 << 10, MaxWrite: 64 << 10, Parallel: 3})
	defer c.Close()
	m := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		n := (1 + r.IntN(32)) * 512
		off := int64(r.IntN((size-n)/512)) * 512
		p := pattern(byte(i), n)
		if err := c.WriteAt(ctx, p, off); err != nil {
			t.Fatal(err)
		}
		copy(m[off:], p)
		if st := c.Stats(); st.DirtyBytes > 256<<10 {
			t.Fatalf("%d dirty bytes, bound 256 KiB", st.DirtyBytes)
		}
		rn := (1 + r.IntN(256)) * 512
		roff := int64(r.IntN((size-rn)/512)) * 512
		got := make([]byte, rn)
		if err := c.ReadAt(ctx, got, roff); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, m[roff:roff+int64(rn)]) {
			t.Fatalf("step %d: read %d at %d differs from what was written", i, rn, roff)
		}
		if i%500 == 499 {
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fileBytes(t, fs), m) {
				t.Fatalf("step %d: the store differs after Flush", i)
			}
		}
	}
	st := c.Stats()
	if st.WriteOuts == 0 || st.ReadHits == 0 {
		t.Fatalf("stats %+v: the test did not exercise write-out and cached reads", st)
	}
	t.Logf("stats %+v", st)
}

// The write path allocates nothing once the cache is made: not when copying in, not when
// writing out to a store that does not allocate itself, not when waiting for room.
func TestWritePathDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	c := writeback.New(newFileStore(t, 64<<20), writeback.Options{MaxDirty: 1 << 20, MaxWrite: 256 << 10, Parallel: 2})
	defer c.Close()
	p := pattern(3, 4096)
	var off int64
	allocs := testing.AllocsPerRun(5000, func() {
		if err := c.WriteAt(ctx, p, off); err != nil {
			t.Fatal(err)
		}
		off = (off + 4096) % (64 << 20)
	})
	if st := c.Stats(); st.WriteOuts == 0 || st.Waits == 0 {
		t.Fatalf("stats %+v: no write-out or wait was measured", st)
	}
	if allocs != 0 {
		t.Fatalf("%.2f allocations per 4 KiB write", allocs)
	}
	got := make([]byte, 4096)
	allocs = testing.AllocsPerRun(1000, func() {
		if err := c.ReadAt(ctx, got, off-4096); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || !bytes.Equal(got, p) {
		t.Fatalf("%.2f allocations per cached read (bytes equal %v)", allocs, bytes.Equal(got, p))
	}
}

// Concurrent writers, readers and flushes (run under -race): each goroutine owns a region and
// checks its own writes; at the end the store holds every one.
func TestConcurrentWritersAndFlushes(t *testing.T) {
	const region, writers = 256 << 10, 8
	concurrentWriters(t, newFileStore(t, region*writers), region, writers, 300)
}

func concurrentWriters(t *testing.T, inner volume.Store, region, writers, steps int) {
	ctx := context.Background()
	c := writeback.New(inner, writeback.Options{MaxDirty: 128 << 10, MaxWrite: 16 << 10, Parallel: 4})
	models := make([][]byte, writers)
	var wg sync.WaitGroup
	for g := range writers {
		models[g] = make([]byte, region)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			base := int64(g * region)
			for i := range steps {
				n := (1 + r.IntN(16)) * 512
				off := int64(r.IntN((region-n)/512)) * 512
				p := pattern(byte(g*31+i), n)
				if err := c.WriteAt(ctx, p, base+off); err != nil {
					t.Error(err)
					return
				}
				copy(models[g][off:], p)
				got := make([]byte, n)
				if err := c.ReadAt(ctx, got, base+off); err != nil || !bytes.Equal(got, p) {
					t.Errorf("writer %d step %d: read back %v, equal %v", g, i, err, bytes.Equal(got, p))
					return
				}
				if i%50 == 49 {
					if err := c.Flush(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, region*writers)
	if err := inner.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Join(models, nil)) {
		t.Fatal("the store differs from what was written")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	fs := newFileStore(t, 1<<20)
	c := writeback.New(fs, writeback.Options{})
	ctx := context.Background()
	if err := c.WriteAt(ctx, pattern(5, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, fs)[:4096], pattern(5, 4096)) {
		t.Fatal("Close did not flush")
	}
	if err := c.WriteAt(ctx, pattern(6, 4096), 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("write after close: %v", err)
	}
	if err := c.Flush(ctx); err == nil || errors.Is(err, writeback.ErrLost) {
		t.Fatalf("flush after close: %v", err)
	}
}

func TestResize(t *testing.T) {
	ctx := context.Background()
	fs := newFileStore(t, 1<<20)
	c := writeback.New(fs, writeback.Options{MaxDirty: 256 << 10})
	defer c.Close()
	if err := c.Resize(ctx, 2<<20); err != nil {
		t.Fatal(err)
	}
	if c.Size() != 2<<20 {
		t.Fatalf("size %d", c.Size())
	}
	if err := c.WriteAt(ctx, pattern(1, 8192), 2<<20-8192); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteAt(ctx, pattern(2, 4096), 0); err != nil {
		t.Fatal(err)
	}
	// Shrinking flushes first: nothing cached is left past the new end.
	if err := c.Resize(ctx, 1<<20); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.DirtyBytes != 0 {
		t.Fatalf("%d dirty bytes after shrinking", st.DirtyBytes)
	}
	if b := fileBytes(t, fs); len(b) != 1<<20 || !bytes.Equal(b[:4096], pattern(2, 4096)) {
		t.Fatalf("after shrinking: %d bytes", len(b))
	}
}
