package blobio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
	"github.com/encfs/encfs/internal/syncbuf"
)

// memSource is an in-memory Source that counts reads and injects faults.
type memSource struct {
	data     []byte
	identity string
	delay    time.Duration
	reads    atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	mu       sync.Mutex
	failAt   map[int64]error // offset -> error to return (every time)
	// hold, when set, makes reads at any offset but holdExcept wait until it is closed.
	hold       chan struct{}
	holdExcept int64
}

func (m *memSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	m.reads.Add(1)
	n := m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	for {
		old := m.maxIn.Load()
		if n <= old || m.maxIn.CompareAndSwap(old, n) {
			break
		}
	}
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if m.hold != nil && off != m.holdExcept {
		select {
		case <-m.hold:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	m.mu.Lock()
	err := m.failAt[off]
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n2 := copy(p, m.data[off:])
	if n2 < len(p) {
		return n2, io.EOF
	}
	return n2, nil
}

func (m *memSource) Size() int64      { return int64(len(m.data)) }
func (m *memSource) String() string   { return "mem" }
func (m *memSource) Close() error     { return nil }
func (m *memSource) Identity() string { return m.identity }

func newMem(t *testing.T, n int) *memSource {
	return &memSource{data: sourcetest.RandBytes(t, n), identity: "mem v1", failAt: map[int64]error{}}
}

func TestChunkedReadsMatchSource(t *testing.T) {
	m := newMem(t, 10<<20+333)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 4, CacheBytes: 4 << 20})
	defer c.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		off := r.Int64N(int64(len(m.data)))
		n := r.IntN(3 << 20)
		p := make([]byte, n)
		got, err := c.ReadAt(ctx, p, off)
		want := min(n, len(m.data)-int(off))
		if got != want || !bytes.Equal(p[:got], m.data[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, got, err)
		}
		if (want < n) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) err %v", off, n, err)
		}
	}
	st := c.Stats()
	if st.CachedBytes > 4<<20 {
		t.Fatalf("cache holds %d bytes, bound 4 MiB", st.CachedBytes)
	}
	if st.CacheHits == 0 || st.Evictions == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestChunkedDeduplicatesConcurrentFetches(t *testing.T) {
	m := newMem(t, 4<<20)
	m.delay = 50 * time.Millisecond
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 8, WholeChunks: true})
	defer c.Close()
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 100)
			if _, err := c.ReadAt(context.Background(), p, int64(i)*1000); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if r := m.reads.Load(); r != 1 {
		t.Fatalf("%d source reads for one chunk, want 1", r)
	}
	if st := c.Stats(); st.DedupWaits+st.CacheHits != 31 {
		t.Fatalf("stats %+v", st)
	}
}

func TestChunkedBoundsWorkersAndMemory(t *testing.T) {
	m := newMem(t, 32<<20)
	m.delay = 5 * time.Millisecond
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 3, CacheBytes: 2 << 20})
	defer c.Close()
	p := make([]byte, 32<<20)
	if _, err := c.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, m.data) {
		t.Fatal("content differs")
	}
	if mx := m.maxIn.Load(); mx > 3 {
		t.Fatalf("%d fetches in flight, Workers 3", mx)
	}
	if st := c.Stats(); st.CachedBytes > 2<<20 || st.Fetches != 32 {
		t.Fatalf("stats %+v", st)
	}
}

func TestChunkedPrefetch(t *testing.T) {
	m := newMem(t, 16<<20)
	m.delay = 200 * time.Millisecond
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 4, CacheBytes: 16 << 20})
	defer c.Close()
	c.Prefetch(0, 16<<20) // 16 chunks; at most Workers-1 = 3 start, the rest is dropped
	if st := c.Stats(); st.PrefetchIssued != 3 || st.PrefetchDropped != 1 {
		t.Fatalf("after one hint: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().InFlight > 0 || m.reads.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("prefetch did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	before := m.reads.Load()
	p := make([]byte, 3<<20)
	if _, err := c.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, m.data[:3<<20]) {
		t.Fatal(err)
	}
	if m.reads.Load() != before {
		t.Fatalf("prefetched chunks were fetched again")
	}
	c.Prefetch(-5, 10)          // ignored
	c.Prefetch(16<<20, 1<<20)   // past the end: ignored
	c.Prefetch(15<<20, 100<<20) // clamped
}

func TestChunkedErrorsPropagateAndRecover(t *testing.T) {
	m := newMem(t, 4<<20)
	boom := errors.New("injected")
	m.failAt[1<<20] = boom
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20})
	defer c.Close()
	p := make([]byte, 2<<20)
	if _, err := c.ReadAt(context.Background(), p, 512<<10); !errors.Is(err, boom) {
		t.Fatalf("err %v, want the source's error", err)
	}
	// Other chunks still serve. The failed one is remembered for a moment, so that the
	// kernel's page-by-page retries fail at once instead of fetching it again, and then
	// fetched again (a failure is never cached for good).
	if _, err := c.ReadAt(context.Background(), p[:10], 3<<20); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	delete(m.failAt, 1<<20)
	m.mu.Unlock()
	fetches := c.Stats().Fetches
	if _, err := c.ReadAt(context.Background(), p[:10], 1<<20); !errors.Is(err, boom) || c.Stats().Fetches != fetches {
		t.Fatalf("read of the failed chunk at once: %v, %d fetches (want the remembered failure, no fetch)", err, c.Stats().Fetches-fetches)
	}
	time.Sleep(blobio.FailedChunkTTL + 100*time.Millisecond)
	if _, err := c.ReadAt(context.Background(), p, 512<<10); err != nil || !bytes.Equal(p, m.data[512<<10:512<<10+2<<20]) {
		t.Fatalf("after recovery: %v", err)
	}
	if st := c.Stats(); st.FetchErrors != 1 || st.FetchErrorsByCause[6] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A reader whose deadline comes returns at once; the fetch nobody waits for any more is
	// cancelled, and the chunk is remembered as failed (the storage did not answer in time).
	m.delay = time.Second
	c.Invalidate(0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.ReadAt(ctx, p[:10], 0); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("cancelled read: %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if _, err := c.ReadAt(context.Background(), p[:10], 0); !errors.Is(err, blobio.ErrUnreachable) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("read right after a timed-out one: %v after %v, want a fast ErrUnreachable", err, time.Since(start))
	}
	if st := c.Stats(); st.FetchErrorsByCause[5] != 1 {
		t.Fatalf("timeouts counted: %+v", st.FetchErrorsByCause)
	}
}

func TestChunkedDiskCache(t *testing.T) {
	dir := t.TempDir()
	m := newMem(t, 5<<20+10)
	opts := blobio.ChunkOptions{ChunkSize: 1 << 20, CacheBytes: -1, DiskCache: dir, DiskCacheBytes: 3<<20 + 100}
	p := make([]byte, 1<<20)
	for off := int64(0); off < int64(len(m.data)); off += 1 << 20 {
		// One layer per chunk so that the disk writes land in order (Close waits for them)
		// and the LRU keeps the last three.
		c := blobio.NewChunked(m, opts)
		if err := c.DiskCacheError(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadAt(context.Background(), p, off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		c.Close()
		if st := c.Stats(); st.DiskWrites != 1 {
			t.Fatalf("stats %+v", st)
		}
	}
	if n := cacheBytes(t, dir); n > 3<<20+100 {
		t.Fatalf("disk cache holds %d bytes, bound %d", n, 3<<20+100)
	}

	// Reopen ("restart"): the last chunks come from disk, not the source.
	m2 := &memSource{data: m.data, identity: m.identity, failAt: map[int64]error{}}
	c2 := blobio.NewChunked(m2, opts)
	q := make([]byte, 10)
	if _, err := c2.ReadAt(context.Background(), q, 5<<20); (err != nil && err != io.EOF) || !bytes.Equal(q, m.data[5<<20:]) {
		t.Fatal(err)
	}
	if m2.reads.Load() != 0 || c2.Stats().DiskHits != 1 {
		t.Fatalf("reads %d, stats %+v", m2.reads.Load(), c2.Stats())
	}
	// A file cut short (a crash, a full disk) is a miss, not bad bytes. Damaged bytes are for
	// verification above to find (TestChunkedDiskCacheCorruptChunk).
	truncateAll(t, dir)
	q2 := make([]byte, 1<<20)
	if _, err := c2.ReadAt(context.Background(), q2, 4<<20); err != nil || !bytes.Equal(q2, m.data[4<<20:5<<20]) {
		t.Fatalf("after truncation: %v", err)
	}
	if m2.reads.Load() != 1 {
		t.Fatalf("a truncated chunk file was served from disk")
	}
	c2.Close()

	// Another version of the blob (another ETag) never meets these chunks.
	m3 := &memSource{data: sourcetest.RandBytes(t, len(m.data)), identity: "mem v2", failAt: map[int64]error{}}
	c3 := blobio.NewChunked(m3, opts)
	defer c3.Close()
	if _, err := c3.ReadAt(context.Background(), q, 5<<20); (err != nil && err != io.EOF) || !bytes.Equal(q, m3.data[5<<20:]) {
		t.Fatal(err)
	}
	if m3.reads.Load() != 1 {
		t.Fatalf("new version read %d times from the source, want 1", m3.reads.Load())
	}
}

func cacheBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func truncateAll(t *testing.T, dir string) {
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && filepath.Ext(p) == ".chunk" {
			if err := os.Truncate(p, 4096); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
}

func TestChunkedDiskCacheNeedsIdentity(t *testing.T) {
	f := filepath.Join(t.TempDir(), "img")
	os.WriteFile(f, []byte("hello"), 0o600)
	src, err := blobio.OpenFile(f)
	if err != nil {
		t.Fatal(err)
	}
	c := blobio.NewChunked(src, blobio.ChunkOptions{DiskCache: t.TempDir()})
	defer c.Close()
	if c.DiskCacheError() == nil {
		t.Fatal("disk cache accepted a source without identity")
	}
	p := make([]byte, 5)
	if _, err := c.ReadAt(context.Background(), p, 0); err != nil || string(p) != "hello" {
		t.Fatal(err, string(p))
	}
	_ = fmt.Sprint()
}

// TestChunkedRecyclesBuffersSafely has many readers race over a cache of two chunks, so chunk
// buffers are evicted and reused for other chunks all the time, with prefetches in between: no
// reader may ever see bytes of another chunk.
func TestChunkedRecyclesBuffersSafely(t *testing.T) {
	const chunk = 64 << 10
	m := newMem(t, 40*chunk+77)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: chunk, Workers: 4, CacheBytes: 2 * chunk})
	defer c.Close()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			buf := make([]byte, 3*chunk)
			for i := 0; i < 200; i++ {
				off := r.Int64N(int64(len(m.data)))
				n := 1 + r.IntN(len(buf))
				if i%5 == 0 {
					c.Prefetch(off, 4*chunk)
				}
				got, err := c.ReadAt(context.Background(), buf[:n], off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf[:got], m.data[off:off+int64(got)]) {
					t.Errorf("read %d at %d returned other bytes", n, off)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestChunkedView(t *testing.T) {
	const chunk = 64 << 10
	m := newMem(t, 8*chunk)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: chunk, Workers: 2, CacheBytes: chunk})
	defer c.Close()
	ctx := context.Background()
	view, release, ok, err := c.View(ctx, chunk+100, 4096)
	if !ok || err != nil || !bytes.Equal(view, m.data[chunk+100:chunk+100+4096]) {
		t.Fatalf("view: ok %v err %v", ok, err)
	}
	want := bytes.Clone(view)
	// Push the viewed chunk out of the one-chunk cache and make its buffer reusable: a held
	// view must keep its bytes until released.
	buf := make([]byte, chunk)
	for i := int64(2); i < 8; i++ {
		if _, err := c.ReadAt(ctx, buf, i*chunk); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(view, want) {
		t.Fatal("a held view changed under its holder")
	}
	release()
	if _, _, ok, _ := c.View(ctx, chunk-10, 100); ok {
		t.Fatal("a view across two chunks was granted")
	}
	if _, _, ok, _ := c.View(ctx, 8*chunk-10, 100); ok {
		t.Fatal("a view past the end was granted")
	}
}

// TestChunkedReadThrough checks the mode for local files read with O_DIRECT: reads of chunks
// nobody fetched go to the source as they are and are not cached, prefetched chunks serve
// reads from memory, and prefetch hints wait for workers instead of being dropped.
func TestChunkedReadThrough(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, 16<<20+5000)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 2, CacheBytes: 8 << 20, ReadThrough: true})
	defer c.Close()
	read := func(name string, n int, off int64, wantSourceReads int64, wantErr error) {
		t.Helper()
		before := m.reads.Load()
		p := make([]byte, n)
		got, err := c.ReadAt(ctx, p, off)
		want := m.data[off:min(off+int64(n), int64(len(m.data)))]
		if !errors.Is(err, wantErr) || got != len(want) || !bytes.Equal(p[:got], want) {
			t.Fatalf("%s: ReadAt(%d bytes at %d) = %d, %v", name, n, off, got, err)
		}
		if d := m.reads.Load() - before; d != wantSourceReads {
			t.Fatalf("%s: %d reads of the source, want %d", name, d, wantSourceReads)
		}
	}

	read("large", 200<<10, 3<<20+4096, 1, nil)
	read("small", 4096, 5<<20, 1, nil)
	read("across two chunks", 8192, 6<<20-4096, 1, nil)
	read("past the end", 100<<10, int64(len(m.data))-1000, 1, io.EOF)
	if st := c.Stats(); st.ReadThrough != 4 || st.CachedBytes != 0 {
		t.Fatalf("reads passed through were cached, or not counted: %+v", st)
	}
	if _, _, ok, _ := c.View(ctx, 7<<20, 4096); ok {
		t.Fatal("View lent a range of a chunk nobody fetched; it must be read through")
	}

	// Seven chunks hinted with two workers: none dropped, all fetched, then read from memory.
	m.delay = 20 * time.Millisecond
	before := m.reads.Load()
	c.Prefetch(8<<20, 7<<20) // the cache holds 8 chunks
	if st := c.Stats(); st.PrefetchDropped != 0 {
		t.Fatalf("prefetch hints dropped: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.reads.Load()-before < 7 || c.Stats().InFlight > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("prefetch did not finish: %+v", c.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m.maxIn.Load() > 2 {
		t.Fatalf("%d reads in flight with 2 workers", m.maxIn.Load())
	}
	read("prefetched", 7<<20, 8<<20, 0, nil)
	view, release, ok, err := c.View(ctx, 9<<20+4096, 4096)
	if !ok || err != nil || !bytes.Equal(view, m.data[9<<20+4096:9<<20+8192]) {
		t.Fatalf("View of a prefetched chunk: ok %v, %v", ok, err)
	}
	release()
}

// rewriteChunkFiles replaces the content of every cached chunk file with other bytes of the
// same length: a disk that returns other bytes than were written, which only verification
// above the cache can notice.
func rewriteChunkFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".chunk") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n++
		return nil
	})
	return n
}

// TestChunkedDiskCacheCorruptChunk: a chunk from the disk cache that fails verification above
// (the image layer calls Invalidate) is counted and logged before it is fetched again.
func TestChunkedDiskCacheCorruptChunk(t *testing.T) {
	dir := t.TempDir()
	m := newMem(t, 2<<20)
	opts := blobio.ChunkOptions{ChunkSize: 1 << 20, DiskCache: dir, DiskCacheBytes: 8 << 20}
	p := make([]byte, 1<<20)
	c := blobio.NewChunked(m, opts)
	if _, err := c.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := rewriteChunkFiles(t, dir); n != 1 {
		t.Fatalf("%d chunk files", n)
	}
	var logs syncbuf.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	c2 := blobio.NewChunked(m, opts)
	defer c2.Close()
	if _, err := c2.ReadAt(context.Background(), p, 0); err != nil || bytes.Equal(p, m.data[:1<<20]) || c2.Stats().DiskHits != 1 {
		t.Fatalf("the rewritten chunk was not served from disk: %v, %+v", err, c2.Stats())
	}
	c2.Invalidate(0, 4096) // what the image layer does when a block of it fails verification
	if st := c2.Stats(); st.DiskCorrupt != 1 || !strings.Contains(logs.String(), "a cached chunk failed verification") {
		t.Fatalf("not counted or logged: %+v\n%s", st, logs.String())
	}
	if _, err := c2.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, m.data[:1<<20]) {
		t.Fatalf("fetched again: %v", err)
	}
}

// TestChunkedDiskCacheFullFilesystem: a disk cache whose filesystem fills up before its size
// bound shrinks to fit, says so once, and keeps caching within what there is.
func TestChunkedDiskCacheFullFilesystem(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=3m"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a 3 MiB tmpfs: %v", err)
		}
		t.Skipf("cannot mount a small tmpfs for a full filesystem (%v); run as root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	m := newMem(t, 8<<20)
	var logs syncbuf.Buffer
	opts := blobio.ChunkOptions{ChunkSize: 1 << 20, CacheBytes: -1, DiskCache: dir, DiskCacheBytes: 64 << 20,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	c := blobio.NewChunked(m, opts)
	p := make([]byte, 1<<20)
	for pass := range 2 {
		for off := int64(0); off < 8<<20; off += 1 << 20 {
			if _, err := c.ReadAt(context.Background(), p, off); err != nil || !bytes.Equal(p, m.data[off:off+1<<20]) {
				t.Fatalf("pass %d, read at %d: %v", pass, off, err)
			}
			time.Sleep(20 * time.Millisecond) // let the disk write of this chunk land
		}
	}
	st := c.Stats()
	c.Close()
	if st.DiskErrors == 0 || st.DiskWrites < 8 || st.DiskBytes > 3<<20 {
		t.Fatalf("stats %+v: want failed writes, then writes that fit", st)
	}
	if n := strings.Count(logs.String(), "the filesystem is full"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}
}

// TestChunkedHealth: passing failures make an outage (prefetch pauses, demand reads still go
// to the source) that ends with the next success; a permanent one opens the breaker: reads fail
// at once without a request, and prefetch stops.
func TestChunkedHealth(t *testing.T) {
	m := newMem(t, 8<<20)
	var logs syncbuf.Buffer
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	defer c.Close()
	p := make([]byte, 100)
	setFail := func(off int64, err error) {
		m.mu.Lock()
		m.failAt[off] = err
		m.mu.Unlock()
	}

	setFail(1<<20, &blobio.Error{Op: "read", Kind: blobio.ErrUnreachable, Err: errors.New("connection refused")})
	if _, err := c.ReadAt(context.Background(), p, 1<<20); !errors.Is(err, blobio.ErrUnreachable) {
		t.Fatalf("err %v", err)
	}
	if h := c.Health(); h.State != blobio.StateOutage || h.FailedReads != 1 {
		t.Fatalf("health %+v, want an outage", h)
	}
	reads := m.reads.Load()
	c.Prefetch(4<<20, 2<<20)
	time.Sleep(50 * time.Millisecond)
	if m.reads.Load() != reads {
		t.Fatal("prefetch ran during an outage")
	}
	if _, err := c.ReadAt(context.Background(), p, 2<<20); err != nil {
		t.Fatalf("a demand read during the outage: %v", err)
	}
	if h := c.Health(); h.State != blobio.StateServing {
		t.Fatalf("health %+v after a success, want serving", h)
	}

	setFail(3<<20, &blobio.Error{Op: "read", Kind: blobio.ErrChanged, Status: 412})
	if _, err := c.ReadAt(context.Background(), p, 3<<20); !errors.Is(err, blobio.ErrChanged) {
		t.Fatalf("err %v", err)
	}
	if h := c.Health(); h.State != blobio.StateBroken || !errors.Is(h.Cause, blobio.ErrChanged) {
		t.Fatalf("health %+v, want the breaker open", h)
	}
	reads = m.reads.Load()
	for off := int64(4 << 20); off < 8<<20; off += 1 << 20 {
		if _, err := c.ReadAt(context.Background(), p, off); !errors.Is(err, blobio.ErrChanged) || !strings.Contains(err.Error(), "breaker open") {
			t.Fatalf("read at %d with the breaker open: %v", off, err)
		}
	}
	c.Prefetch(0, 8<<20)
	time.Sleep(50 * time.Millisecond)
	if n := m.reads.Load() - reads; n != 0 {
		t.Fatalf("%d requests with the breaker open", n)
	}
	if h := c.Health(); h.FailedReads != 5 {
		t.Fatalf("failed reads %d, want 5", h.FailedReads)
	}
	for _, want := range []string{"storage outage", "storage is serving again", "storage breaker open"} {
		if strings.Count(logs.String(), want) != 1 {
			t.Errorf("log line %q not there exactly once:\n%s", want, logs.String())
		}
	}
	if st := c.Stats(); st.FetchErrorsByCause[0] != 1 || st.FetchErrorsByCause[3] < 1 {
		t.Errorf("errors by cause %v", st.FetchErrorsByCause)
	}
}

// TestChunkedFetchAll: the background fetch brings every chunk once into the caches (here the
// disk cache: the memory cache holds two chunks), so that reading everything afterwards costs
// no request; and a demand read while it runs waits for one fetch, not for the whole image.
func TestChunkedFetchAll(t *testing.T) {
	m := newMem(t, 40<<20+123)
	// Every fetch but the demand read's below hangs until released: the background fetch then
	// holds every worker it may take (half of them), and the demand read must still get one.
	m.hold, m.holdExcept = make(chan struct{}), 39<<20
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 4, CacheBytes: 2 << 20,
		DiskCache: t.TempDir(), DiskCacheBytes: 64 << 20})
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.FetchAll(context.Background()) }()
	for m.inFlight.Load() < 2 { // the background keeps half the workers busy
		time.Sleep(time.Millisecond)
	}
	p := make([]byte, 4096)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ReadAt(ctx, p, 39<<20); err != nil || !bytes.Equal(p, m.data[39<<20:39<<20+4096]) {
		t.Fatalf("a demand read while the background fetch holds its workers: %v", err)
	}
	if n := m.maxIn.Load(); n != 3 {
		t.Errorf("%d fetches in flight at most, want the background's 2 and the demand read", n)
	}
	close(m.hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the last disk writes
	st := c.Stats()
	// While the whole image is fetched, a miss fetches its whole chunk (no range): every
	// chunk once, none twice.
	if st.BytesFetched != int64(len(m.data)) || st.Fetches != 41 || st.RangeFetches != 0 || st.BackgroundFetches != 40 {
		t.Fatalf("fetched %d bytes in %d fetches (%d ranges); the image is %d bytes in 41 chunks", st.BytesFetched, st.Fetches, st.RangeFetches, len(m.data))
	}
	reads := m.reads.Load()
	q := make([]byte, 1<<20)
	for off := int64(0); off < int64(len(m.data)); off += 1 << 20 {
		n, err := c.ReadAt(context.Background(), q, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(q[:n], m.data[off:off+int64(n)]) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if m.reads.Load() != reads {
		t.Fatalf("%d requests after the background fetch", m.reads.Load()-reads)
	}
	// A second run finds everything cached and fetches nothing.
	if err := c.FetchAll(context.Background()); err != nil || m.reads.Load() != reads {
		t.Fatalf("second FetchAll: %v, %d requests", err, m.reads.Load()-reads)
	}
}

// TestChunkedFetchAllPausesInAnOutage: the background fetch sends nothing while the storage
// is failing, and resumes once a demand read succeeds.
func TestChunkedFetchAllPausesInAnOutage(t *testing.T) {
	m := newMem(t, 8<<20)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 2, CacheBytes: 16 << 20})
	defer c.Close()
	m.mu.Lock()
	m.failAt[0] = &blobio.Error{Op: "read", Kind: blobio.ErrUnreachable}
	m.mu.Unlock()
	if _, err := c.ReadAt(context.Background(), make([]byte, 10), 0); err == nil {
		t.Fatal("no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.FetchAll(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if n := m.reads.Load(); n != 1 {
		t.Fatalf("%d requests in an outage", n)
	}
	m.mu.Lock()
	delete(m.failAt, 0)
	m.mu.Unlock()
	if _, err := c.ReadAt(context.Background(), make([]byte, 10), 1<<20); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the background fetch did not resume after the outage")
	}
	// The read during the background fetch took chunk 1 whole; the background the 7 others.
	if st := c.Stats(); st.BackgroundFetches != 7 || st.BytesFetched != 8<<20 {
		t.Fatalf("stats %+v", st)
	}
}

// TestChunkedAutoDiskCache: an automatic disk cache lives in a private directory sized to the
// image, goes away with the layer, and one left by a process that died is removed by the next.
func TestChunkedAutoDiskCache(t *testing.T) {
	base := t.TempDir()
	t.Setenv("ENCFS_CACHE_DIR", base)
	dead := filepath.Join(base, "encfs-cache-2147483646-x") // no such pid
	if err := os.MkdirAll(filepath.Join(dead, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	m := newMem(t, 3<<20)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, DiskCache: blobio.AutoDiskCache})
	if err := c.DiskCacheError(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cache of a dead process is still there: %v", err)
	}
	if got := c.DiskCacheBytes(); got != 4<<20 {
		t.Errorf("bound %d, want the image plus a chunk (%d)", got, 4<<20)
	}
	if _, err := c.ReadAt(context.Background(), make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), fmt.Sprintf("encfs-cache-%d-", os.Getpid())) {
		t.Fatalf("cache directories %v", entries)
	}
	c.Close()
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Fatalf("left behind after Close: %v", entries)
	}
}

// TestRangeReadsStayInTheMemoryBound: many random small reads from concurrent readers fetch
// about what they read, not whole chunks, and the caches stay within CacheBytes.
func TestRangeReadsStayInTheMemoryBound(t *testing.T) {
	m := newMem(t, 64<<20)
	const cache = 4 << 20
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 8, CacheBytes: cache})
	defer c.Close()
	var wg sync.WaitGroup
	var peak atomic.Int64
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			p := make([]byte, 4096)
			for range 200 {
				off := rng.Int64N(int64(len(m.data))/4096) * 4096
				if _, err := c.ReadAt(context.Background(), p, off); err != nil || !bytes.Equal(p, m.data[off:off+4096]) {
					t.Errorf("read at %d: %v", off, err)
					return
				}
				if b := c.Stats().CachedBytes; b > peak.Load() {
					peak.Store(b)
				}
			}
		}()
	}
	wg.Wait()
	st := c.Stats()
	if peak.Load() > cache || st.CachedBytes > cache {
		t.Fatalf("cached %d bytes at most, %d now; the bound is %d", peak.Load(), st.CachedBytes, cache)
	}
	if st.BytesFetched > 1600*4096 || st.RangeFetches == 0 {
		t.Fatalf("1600 reads of 4 KiB fetched %d bytes in %d range fetches", st.BytesFetched, st.RangeFetches)
	}
}

// TestFetchAllSkipsRangesFetched: ranges readers fetched before the background fetch started
// are not fetched again; the background fetches only the gaps around them.
func TestFetchAllSkipsRangesFetched(t *testing.T) {
	m := newMem(t, 8<<20)
	c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 4, CacheBytes: 4 << 20,
		DiskCache: t.TempDir(), DiskCacheBytes: 64 << 20})
	defer c.Close()
	p := make([]byte, 4096)
	if _, err := c.ReadAt(context.Background(), p, 3<<20+512<<10); err != nil || !bytes.Equal(p, m.data[3<<20+512<<10:][:4096]) {
		t.Fatalf("range read: %v", err)
	}
	if err := c.FetchAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	// 7 whole chunks, the range, and the two gaps around it in chunk 3.
	if st.BytesFetched != 8<<20 || st.Fetches != 10 || st.RangeFetches != 3 {
		t.Fatalf("fetched %d bytes in %d fetches (%d ranges), want the image once in 10", st.BytesFetched, st.Fetches, st.RangeFetches)
	}
	// A fetch's waiters are released before its disk write: wait for the 7 chunks and the 3
	// spans to be on disk, or a read below could miss both caches on a loaded machine.
	for deadline := time.Now().Add(10 * time.Second); c.Stats().DiskWrites < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d disk writes after the background fetch, want 10", c.Stats().DiskWrites)
		}
	}
	q := make([]byte, 1<<20)
	for off := int64(0); off < 8<<20; off += 1 << 20 {
		if _, err := c.ReadAt(context.Background(), q, off); err != nil || !bytes.Equal(q, m.data[off:off+1<<20]) {
			t.Fatalf("read at %d after the background fetch: %v", off, err)
		}
	}
	if c.Stats().Fetches != 10 {
		t.Fatalf("%d more fetches after the background fetch", c.Stats().Fetches-10)
	}
}

// TestChunkedCloseWhileFetchesStart: Close while readers keep starting fetches, as a mount's
// background fetch does until it sees the layer closed. No fetch may start once Close waits
// for the running ones: the race detector reports that WaitGroup reuse, and a fetch started
// then would run on a closed layer.
func TestChunkedCloseWhileFetchesStart(t *testing.T) {
	m := newMem(t, 8<<20)
	for round := range 40 {
		c := blobio.NewChunked(m, blobio.ChunkOptions{ChunkSize: 256 << 10, Workers: 4, CacheBytes: 1 << 20})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 4096)
				for i := int64(0); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					off := (i*7919*4096 + int64(g)*65536 + int64(round)*4096) % int64(len(m.data)-4096)
					switch g {
					case 0:
						c.PrefetchRange(off, 64<<10)
					case 1:
						c.Prefetch(off, 1<<20)
					default:
						c.ReadAt(context.Background(), p, off)
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		c.Close()
		close(stop)
		wg.Wait()
	}
}
