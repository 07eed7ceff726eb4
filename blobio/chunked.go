package blobio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/encfs/encfs/internal/lru"
)

// DefaultChunkSize is the unit of every range GET, chosen by measurement against Azurite
// (docs/PERFORMANCE.md, "8 MiB range requests for remote images"): smaller chunks lose to the
// cost of each request, and 16 MiB was little faster than 8 MiB at twice the memory in flight
// (8 workers) and a longer wait for a cold random read. On Azure too, fewer and larger GETs
// amortise the per-request latency.
const DefaultChunkSize = 8 << 20

// ChunkOptions configure a Chunked layer. Zero values take the defaults.
type ChunkOptions struct {
	// ChunkSize is the size and alignment of every fetch (default DefaultChunkSize).
	ChunkSize int64
	// Workers bounds the fetches in flight, demand and prefetch together (default 8);
	// prefetch uses at most Workers-1 so a demand read always finds a worker soon.
	Workers int
	// CacheBytes bounds the in-memory chunk cache (default 128 MiB); memory held by chunks is at
	// most CacheBytes plus Workers*ChunkSize in flight. Prefetch hints are clamped to what the
	// cache can hold. Negative disables the cache (every read fetches; concurrent fetches of
	// one chunk are still shared) and prefetch.
	CacheBytes int64
	// DiskCache, when not empty, keeps fetched chunks in this directory across restarts,
	// bounded by DiskCacheBytes (default 1 GiB). The source must implement Identity (the
	// remote sources do) so that another version of the blob never meets these chunks.
	// AutoDiskCache gives the layer a private directory instead, removed at Close, bounded by
	// DiskCacheBytes or by default sized to the image, at most half of the free space there.
	DiskCache      string
	DiskCacheBytes int64
	// ReadThrough reads a range whose chunks are not all cached or being fetched straight
	// from the source into the caller's buffer, and caches nothing of it; prefetch hints wait
	// for a worker instead of being dropped. For a local file (FileSource.ForMount): a random
	// read costs just its own bytes, and sequential readers are served by prefetch. Reads
	// passed through do not take a worker: the caller's own concurrency bounds them.
	ReadThrough bool
	// WholeChunks turns range fetches off: every miss fetches its whole chunk, as sequential
	// readers' misses do anyway (spans.go).
	WholeChunks bool
	// CoalesceWindow is how long a range fetch waits for neighbouring requests to join its GET
	// (default DefaultCoalesceWindow).
	CoalesceWindow time.Duration
	// Log receives the source's changes of state (outage, breaker) and disk cache trouble;
	// default slog.Default().
	Log *slog.Logger
}

// FailedChunkTTL is how long a chunk whose fetch failed (or whose readers all timed out) is
// remembered as failed. The kernel answers a failed readahead by asking again for the same
// pages at once, one by one; each of those fails fast instead of spending the whole deadline
// again. After it the chunk is fetched anew.
const FailedChunkTTL = 2 * time.Second

func (o ChunkOptions) withDefaults() ChunkOptions {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 128 << 20
	}
	if o.CacheBytes < 0 {
		o.CacheBytes = 0
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CoalesceWindow <= 0 {
		o.CoalesceWindow = DefaultCoalesceWindow
	}
	return o
}

// MemoryBound is the most memory a Chunked layer with these options holds in chunk buffers:
// the memory cache (chunks and spans together), one chunk per worker in flight (a range fetch
// takes a worker too, and is at most a chunk long), and the buffers kept for reuse (Workers+2,
// see recycleLocked). A chunk that a reader is still copying or verifying when the cache drops
// it lives on until the reader lets go; that is transient and not counted.
func (o ChunkOptions) MemoryBound() int64 {
	o = o.withDefaults()
	return o.CacheBytes + int64(2*o.Workers+2)*o.ChunkSize
}

// HeapBound is the part of MemoryBound on the Go heap. Whole chunks of a multiple of 2 MiB
// live in mappings of their own (chunkmem.go), outside it; then only a short last chunk of the
// image, the spans (range fetches) cached and those in flight are on the heap.
func (o ChunkOptions) HeapBound() int64 {
	o = o.withDefaults()
	if o.ChunkSize%hugePageSize == 0 {
		return o.ChunkSize + o.spanCacheBytes() + int64(o.Workers)*o.ChunkSize
	}
	return o.MemoryBound()
}

// spanCacheBytes is the part of CacheBytes that holds spans (spans.go).
func (o ChunkOptions) spanCacheBytes() int64 {
	if o.WholeChunks || o.ReadThrough {
		return 0
	}
	return o.CacheBytes / 4
}

// Identifier is implemented by sources that can name the exact version they read (location
// and ETag), which keys the disk cache.
type Identifier interface{ Identity() string }

// retryCounter is implemented by sources that retry.
type retryCounter interface{ Retries() int64 }

// Stats is a snapshot of a Chunked layer's counters, for metrics.
type Stats struct {
	BytesFetched       int64 // bytes read from the source
	Fetches            int64 // source reads (one per chunk fetched)
	FetchErrors        int64 // source reads that failed after retries
	FetchLatencySum    time.Duration
	FetchLatencyCount  int64
	CacheHits          int64                        // chunk lookups served from memory
	CacheMisses        int64                        // chunk lookups that had to wait for a fetch (or the disk)
	DedupWaits         int64                        // lookups that joined a fetch already in flight
	FetchErrorsByCause [len(fetchErrorCauses)]int64 // FetchErrors by FetchErrorCauses
	DiskHits           int64
	DiskMisses         int64 // disk cache lookups that found no intact chunk
	DiskWrites         int64
	DiskErrors         int64 // disk cache writes that failed
	DiskCorrupt        int64 // chunks from the disk cache that failed verification above (then fetched again)
	DiskBytes          int64 // bytes in the disk cache directory now (all sources sharing it)
	Evictions          int64 // chunks dropped from the memory cache
	PrefetchIssued     int64
	PrefetchDropped    int64 // prefetch hints dropped because workers were busy
	ReadThrough        int64 // reads passed straight to the source (ChunkOptions.ReadThrough)
	BackgroundFetches  int64 // chunks the background fetch (FetchAll) started
	RangeFetches       int64 // GETs of a range smaller than a chunk (spans.go)
	Coalesced          int64 // range requests that joined another's GET
	BackgroundRunning  bool  // FetchAll is running
	Retries            int64 // retried attempts in the source
	CachedBytes        int64 // bytes in the memory cache now
	InFlight           int64 // fetches running now
}

// FetchErrorCauses names the causes Stats.FetchErrorsByCause counts, in order.
func FetchErrorCauses() []string { return fetchErrorCauses[:] }

var errClosed = errors.New("source closed")

// call is one chunk fetch that any number of readers may wait on. Each reader that waits holds
// a reference on the result (counted in waiters until the fetch ends) and releases it after
// copying out.
type call struct {
	done chan struct{}
	buf  *chunkBuf
	err  error
	// ctx bounds the fetch: cancelled when the last reader waiting for it gives up (a fetch
	// nobody waits for is not worth its request), never for a prefetch.
	ctx    context.Context
	cancel context.CancelFunc
	// Guarded by Chunked.mu: readers waiting (each holds a reference once the fetch ends),
	// whether it is a prefetch, and whether it ended (buf and err are then set).
	waiters  int
	prefetch bool
	finished bool
}

// doneCall is a call that has already ended, with a buffer the reader holds a reference on, or
// an error.
func doneCall(b *chunkBuf, err error) *call {
	cl := &call{done: make(chan struct{}), buf: b, err: err, finished: true}
	close(cl.done)
	return cl
}

// failure is a chunk fetch that failed recently (see FailedChunkTTL).
type failure struct {
	err   error
	until time.Time
}

// Chunked is a Source that reads through aligned chunks of another Source: several fetches in
// flight, one fetch per chunk however many readers want it, an LRU memory cache bounded by
// bytes, an optional disk cache, and asynchronous prefetch. It holds ciphertext only; the image
// layer verifies every block it takes from here.
type Chunked struct {
	src     Source
	size    int64
	chunk   int64
	workers int
	through bool // ChunkOptions.ReadThrough
	// wholeChunks is ChunkOptions.WholeChunks.
	wholeChunks bool
	sem         chan struct{}
	prefetchN   atomic.Int64 // prefetch fetches in flight
	ctx         context.Context
	cancel      context.CancelFunc

	mu       sync.Mutex
	mem      memLRU
	inflight map[int64]*call
	failed   map[int64]failure // chunks whose fetch failed recently
	// diskServed holds chunks that readFromDisk served ranges of since they were last checked:
	// if one fails verification above, the disk cache returned bad bytes (see Invalidate).
	diskServed map[int64]struct{}
	free       []*chunkBuf // chunk buffers nobody references any more, for the next fetches
	closed     bool        // set by Close: no fetch starts, buffers are no longer recycled

	health *healthTracker
	log    *slog.Logger

	disk     *diskCache // fixed at construction; released by Close after the fetches end
	diskErr  error
	diskTemp string // an AutoDiskCache directory, removed by Close
	fetchWG  sync.WaitGroup

	bytesFetched, fetches, fetchErrors, latencyNanos, latencyCount atomic.Int64
	hits, misses, dedup, diskHits, diskWrites, diskErrors          atomic.Int64
	diskMisses, diskCorrupt                                        atomic.Int64
	evictions, prefetchIssued, prefetchDropped, running            atomic.Int64
	readThrough                                                    atomic.Int64
	errorsByCause                                                  [len(fetchErrorCauses)]atomic.Int64

	// demandWaiting counts demand fetches waiting for a worker: the background fetch
	// (FetchAll) starts nothing while any does. background is set while FetchAll runs.
	demandWaiting, backgroundFetches atomic.Int64
	background                       atomic.Bool
	// wholeImage is set while FetchAll runs: every byte is about to be fetched anyway, so a
	// miss fetches its whole chunk rather than a range (spans.go, rangeMode).
	wholeImage atomic.Bool
	// hintDropped is when (Unix nanoseconds) a reader's prefetch hint last found no worker:
	// the background fetch then steps back for a moment, so that a sequential reader's
	// readahead comes before chunks nobody asked for yet.
	hintDropped atomic.Int64

	// Range fetches (spans.go), guarded by mu: the spans cached or in flight, the memory cache
	// of finished ones (a quarter of CacheBytes), those waiting to go out (for coalescing), and
	// the chunks a sequential reader's readahead named recently (Unix nanoseconds).
	coalesce                time.Duration
	spans                   spanIndex
	spanLRU                 *lru.Cache[int64, *span]
	pending                 map[*span]struct{}
	hinted                  map[int64]int64
	rangeFetches, coalesced atomic.Int64
}

// NewChunked puts a chunk layer in front of src. It takes ownership of src: Close closes it.
// A disk cache that cannot be opened is logged and left out (see DiskCacheError): the mount
// keeps working from the network.
func NewChunked(src Source, o ChunkOptions) *Chunked {
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Chunked{
		src: src, size: src.Size(), chunk: o.ChunkSize, workers: o.Workers, through: o.ReadThrough,
		sem: make(chan struct{}, o.Workers), ctx: ctx, cancel: cancel,
		inflight: map[int64]*call{}, failed: map[int64]failure{}, diskServed: map[int64]struct{}{},
		health: newHealthTracker(o.Log, src.String()), log: o.Log,
		coalesce: o.CoalesceWindow, spans: spanIndex{}, pending: map[*span]struct{}{}, hinted: map[int64]int64{},
	}
	spanBytes := o.spanCacheBytes()
	c.spanLRU = lru.New(spanBytes, c.dropSpanLocked)
	c.wholeChunks = o.WholeChunks
	c.mem = newMemLRU(o.CacheBytes-spanBytes, c.unrefLocked)
	if o.DiskCache != "" {
		c.disk, c.diskErr = c.openDiskCache(o)
		if c.diskErr != nil {
			c.log.Warn("disk cache disabled", "err", c.diskErr)
		}
	}
	return c
}

// openDiskCache opens the disk cache the options ask for.
func (c *Chunked) openDiskCache(o ChunkOptions) (*diskCache, error) {
	id, ok := c.src.(Identifier)
	if !ok {
		return nil, fmt.Errorf("disk cache: %s cannot name its version, so its chunks are not cached on disk", c.src)
	}
	dir, bound := o.DiskCache, o.DiskCacheBytes
	if dir == AutoDiskCache {
		var err error
		if dir, bound, err = newAutoDiskDir(c.size, o.ChunkSize, o.DiskCacheBytes); err != nil {
			return nil, err
		}
		c.diskTemp = dir
	} else if bound <= 0 {
		bound = 1 << 30
	}
	d, err := newDiskCache(dir, bound, id.Identity(), o.ChunkSize, c.log)
	if err != nil && c.diskTemp != "" {
		os.RemoveAll(c.diskTemp)
		c.diskTemp = ""
	}
	return d, err
}

// DiskCacheBytes is the size bound of the disk cache in use, 0 without one.
func (c *Chunked) DiskCacheBytes() int64 {
	if c.disk == nil {
		return 0
	}
	return c.disk.store.bound()
}

// MemoryCacheBytes is the size bound of the memory cache.
func (c *Chunked) MemoryCacheBytes() int64 { return c.mem.Max() + c.spanLRU.Max() }

// Health reports whether the source is serving, in an outage, or broken (breaker open).
func (c *Chunked) Health() Health { return c.health.snapshot() }

// DiskCacheError tells why a requested disk cache is not in use, or nil.
func (c *Chunked) DiskCacheError() error { return c.diskErr }

// ChunkSize is the fetch unit.
func (c *Chunked) ChunkSize() int64 { return c.chunk }

func (c *Chunked) Size() int64    { return c.size }
func (c *Chunked) String() string { return c.src.String() }

// Identity passes the source's identity through, if it has one.
func (c *Chunked) Identity() string {
	if id, ok := c.src.(Identifier); ok {
		return id.Identity()
	}
	return ""
}

// Close stops the fetches (waiting for them to end: sources honour cancellation), releases
// the memory and disk caches and closes the source. A chunk a reader still holds is released
// when the reader lets go of it.
func (c *Chunked) Close() error {
	c.cancel()
	// No fetch starts once closed is set (start and startRangeLocked look at it under mu), so
	// the wait below sees every fetch there will be: a background pass or a reader may still
	// be asking for one.
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.fetchWG.Wait()
	c.mu.Lock()
	c.mem.Clear()
	c.spanLRU.Clear()
	for _, b := range c.free {
		c.discardLocked(b)
	}
	c.free = nil
	c.mu.Unlock()
	if c.disk != nil {
		c.disk.close()
	}
	if c.diskTemp != "" {
		os.RemoveAll(c.diskTemp)
	}
	return c.src.Close()
}

func (c *Chunked) chunkLen(idx int64) int {
	off := idx * c.chunk
	n := c.chunk
	if off+n > c.size {
		n = c.size - off
	}
	return int(n)
}

// ReadAt reads through the chunks covering [off, off+len(p)), fetching the missing ones in
// parallel (up to Workers), and copies them out. It returns when they are there or when ctx
// ends, whichever is first: a reader's deadline bounds its wait for a worker, the fetch and
// the fetch's retries.
func (c *Chunked) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", c, off)
	}
	if off >= c.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if rem := c.size - off; int64(len(p)) > rem {
		p = p[:rem]
		eof = io.EOF
	}
	first, last := off/c.chunk, (off+int64(len(p))-1)/c.chunk
	if c.through && !c.held(first, last) {
		c.readThrough.Add(1)
		if err := c.readSource(ctx, p, off); err != nil {
			if ctx.Err() == nil {
				c.countFailure(err)
			}
			return 0, err
		}
		return len(p), eof
	}
	if c.readFromDisk(p, off, first, last) {
		return len(p), eof
	}
	// Start every chunk first so they are fetched in parallel, then copy in order. A chunk
	// that a random reader misses is read through range fetches instead (nil call).
	calls := make([]*call, 0, last-first+1)
	for idx := first; idx <= last; idx++ {
		lo, hi := max(off, idx*c.chunk), min(off+int64(len(p)), (idx+1)*c.chunk)
		if c.useRange(idx, lo, hi) {
			calls = append(calls, nil)
			continue
		}
		cl, _ := c.start(idx, false)
		calls = append(calls, cl)
	}
	n := 0
	for i, cl := range calls {
		if cl == nil {
			idx := first + int64(i)
			lo, hi := max(off, idx*c.chunk), min(off+int64(len(p)), (idx+1)*c.chunk)
			if err := c.readRanges(ctx, p[n:n+int(hi-lo)], lo, idx); err != nil {
				c.leave(idx+1, calls[i+1:], err)
				return 0, err
			}
			n += int(hi - lo)
			continue
		}
		select {
		case <-cl.done:
		case <-ctx.Done():
			c.leave(first+int64(i), calls[i:], ctx.Err())
			return 0, ctx.Err()
		}
		if cl.err != nil {
			c.leave(first+int64(i+1), calls[i+1:], cl.err)
			return 0, cl.err
		}
		idx := first + int64(i)
		lo := int64(0)
		if idx == first {
			lo = off - idx*c.chunk
		}
		n += copy(p[n:], cl.buf.data[lo:])
		c.release(cl.buf)
	}
	return n, eof
}

// View returns the bytes [off, off+n), which must lie inside one chunk, as a slice of the
// cached chunk itself, and a release func the caller must call when done with it. The bytes
// are private to this layer and never change while the view is held (a buffer is recycled only
// after its last reference is released), so a caller may verify them and then use them, with
// no copy in between. ok is false when the range spans chunks or runs past the end: use
// ReadAt then.
func (c *Chunked) View(ctx context.Context, off int64, n int) (view []byte, release func(), ok bool, err error) {
	if off < 0 || n <= 0 || off+int64(n) > c.size || off/c.chunk != (off+int64(n)-1)/c.chunk {
		return nil, nil, false, nil
	}
	idx := off / c.chunk
	if c.through && !c.held(idx, idx) || c.onDiskOnly(idx, idx) {
		return nil, nil, false, nil // ReadAt reads it through, or from the disk cache
	}
	if c.useRange(idx, off, off+int64(n)) {
		return c.viewRange(ctx, off, n, idx)
	}
	cl, _ := c.start(idx, false)
	select {
	case <-cl.done:
	case <-ctx.Done():
		c.leave(idx, []*call{cl}, ctx.Err())
		return nil, nil, true, ctx.Err()
	}
	if cl.err != nil {
		return nil, nil, true, cl.err
	}
	lo := off - idx*c.chunk
	return cl.buf.data[lo : lo+int64(n)], func() { c.release(cl.buf) }, true, nil
}

// onDiskOnly reports whether chunks first..last are all in the disk cache and none is in
// memory or being fetched.
func (c *Chunked) onDiskOnly(first, last int64) bool {
	if c.disk == nil {
		return false
	}
	c.mu.Lock()
	for idx := first; idx <= last; idx++ {
		if _, ok := c.inflight[idx]; ok || c.mem.Has(idx) {
			c.mu.Unlock()
			return false
		}
	}
	c.mu.Unlock()
	for idx := first; idx <= last; idx++ {
		if !c.disk.has(idx, c.chunkLen(idx)) {
			return false
		}
	}
	return true
}

// readFromDisk serves a read whose chunks are all in the disk cache (and not in memory) by
// reading just its range from the cached files, not the whole chunks: a random reader of small
// files would otherwise read a whole chunk from disk for every file. The bytes are checked
// above, like any other (a damaged file fails verification, and Invalidate drops it). It
// reports false when it did not serve the read, which then takes the usual path.
func (c *Chunked) readFromDisk(p []byte, off, first, last int64) bool {
	if !c.onDiskOnly(first, last) {
		return false
	}
	for idx, done := first, 0; idx <= last; idx++ {
		lo := max(off+int64(done)-idx*c.chunk, 0)
		n := min(int64(len(p)-done), int64(c.chunkLen(idx))-lo)
		if !c.disk.readRange(idx, c.chunkLen(idx), p[done:done+int(n)], lo) {
			return false
		}
		done += int(n)
	}
	c.diskHits.Add(1)
	c.mu.Lock()
	if len(c.diskServed) >= 4096 {
		clear(c.diskServed)
	}
	for idx := first; idx <= last; idx++ {
		c.diskServed[idx] = struct{}{}
	}
	c.mu.Unlock()
	return true
}

// useRange reports whether a demand read of [lo, hi) in chunk idx goes through range fetches:
// the chunk is neither cached nor being fetched, and the read is not part of a sequential
// stream (see rangeMode) or spans hold all of it already.
func (c *Chunked) useRange(idx, lo, hi int64) bool {
	if c.wholeChunks || c.through || c.held(idx, idx) {
		return false
	}
	if c.rangeMode(idx, hi-lo) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.coveredLocked(idx, lo, hi)
}

// held reports whether chunks first..last are all cached or being fetched.
func (c *Chunked) held(first, last int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for idx := first; idx <= last; idx++ {
		if _, ok := c.inflight[idx]; !ok && !c.mem.Has(idx) {
			return false
		}
	}
	return true
}

// readSource fills p from the source, counted as a fetch with its latency and bytes. It
// succeeds only with p filled: the caller never reads past the end, so a short read is a
// failure of the source, whatever error (io.EOF included, or none) came with it.
func (c *Chunked) readSource(ctx context.Context, p []byte, off int64) error {
	c.running.Add(1)
	t0 := time.Now()
	n, err := c.src.ReadAt(ctx, p, off)
	c.latencyNanos.Add(int64(time.Since(t0)))
	c.latencyCount.Add(1)
	c.running.Add(-1)
	c.fetches.Add(1)
	c.bytesFetched.Add(int64(n))
	if n == len(p) && (err == nil || err == io.EOF) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = &Error{Op: fmt.Sprintf("read %d bytes at %d from", len(p), off), Source: c.src.String(), Kind: ErrBadResponse,
			Err: fmt.Errorf("the source returned only %d bytes", n)}
	}
	return err
}

// countFailure counts a failed fetch by cause and tells the health tracker.
func (c *Chunked) countFailure(err error) {
	c.fetchErrors.Add(1)
	c.errorsByCause[causeIndex(err)].Add(1)
	c.health.failed(err)
}

// leave is called by a reader that stops waiting for calls (chunks first, first+1, ...)
// because its context ended (why) or an earlier chunk failed. It gives back the references it
// holds on calls that already ended. A fetch that no reader waits for any more is cancelled;
// if the last reader left because its deadline came, the chunk is remembered as failed, so
// that the kernel's immediate retries of the same pages fail fast (FailedChunkTTL).
func (c *Chunked) leave(first int64, calls []*call, why error) {
	var late []int64 // chunks the reader gave up waiting for
	c.mu.Lock()
	for i, cl := range calls {
		if cl == nil { // read through range fetches, which need no leaving
			continue
		}
		if cl.finished {
			if cl.buf != nil {
				c.unrefLocked(cl.buf)
			}
			continue
		}
		late = append(late, first+int64(i))
		cl.waiters--
		if cl.waiters == 0 && !cl.prefetch {
			cl.cancel()
		}
	}
	c.mu.Unlock()
	c.gaveUp(late, why)
}

// gaveUp records that a reader stopped waiting for chunks (or ranges in them) because of why.
// When its deadline came, the storage did not deliver in time: requests that arrive now for
// these chunks fail at once, even while readers that came earlier still wait for a fetch in
// flight, because the kernel retries a failed read page by page, and each retry would
// otherwise wait its own deadline.
func (c *Chunked) gaveUp(late []int64, why error) error {
	if !errors.Is(why, context.DeadlineExceeded) || len(late) == 0 {
		return why
	}
	err := c.unreachable()
	for _, idx := range late {
		c.rememberFailure(idx, err)
	}
	c.fetchErrors.Add(1)
	c.errorsByCause[causeIndex(why)].Add(1)
	c.health.failed(err)
	return err
}

// unreachable is the error of a fetch that did not deliver within its readers' deadline.
func (c *Chunked) unreachable() error {
	return &Error{Op: "read", Source: c.src.String(), Kind: ErrUnreachable,
		Err: errors.New("no answer within the reader's deadline")}
}

// rememberFailure records that chunk idx failed, for FailedChunkTTL.
func (c *Chunked) rememberFailure(idx int64, err error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failed) >= 4096 { // bounded: drop the expired ones, or all if none expired
		for k, f := range c.failed {
			if now.After(f.until) {
				delete(c.failed, k)
			}
		}
		if len(c.failed) >= 4096 {
			clear(c.failed)
		}
	}
	c.failed[idx] = failure{err: err, until: now.Add(FailedChunkTTL)}
}

// recentFailureLocked returns the error of chunk idx if its fetch failed within
// FailedChunkTTL. c.mu is held.
func (c *Chunked) recentFailureLocked(idx int64) error {
	f, ok := c.failed[idx]
	if !ok {
		return nil
	}
	if time.Now().After(f.until) {
		delete(c.failed, idx)
		return nil
	}
	return f.err
}

// newBuf returns an n-byte chunk buffer with no references, recycled when one is free:
// allocating (and zeroing, and collecting) 8 MiB per fetch costs more CPU than the rest of the
// layer. Whole chunks are mapped for huge pages where their size allows (chunkmem.go).
func (c *Chunked) newBuf(n int) *chunkBuf {
	if int64(n) != c.chunk {
		return &chunkBuf{data: make([]byte, n)}
	}
	c.mu.Lock()
	if k := len(c.free); k > 0 {
		b := c.free[k-1]
		c.free = c.free[:k-1]
		c.mu.Unlock()
		return b
	}
	c.mu.Unlock()
	if data := mapChunk(n); data != nil {
		return &chunkBuf{data: data, mapped: true}
	}
	return &chunkBuf{data: make([]byte, n)}
}

// release drops one reference on b.
func (c *Chunked) release(b *chunkBuf) {
	c.mu.Lock()
	c.unrefLocked(b)
	c.mu.Unlock()
}

// unrefLocked drops one reference with c.mu held; the last one recycles the buffer.
func (c *Chunked) unrefLocked(b *chunkBuf) {
	b.refs--
	if b.refs == 0 {
		c.recycleLocked(b)
	}
}

// recycleLocked keeps an unreferenced buffer for a later fetch (a few are kept, enough for the
// fetches in flight) or discards it.
func (c *Chunked) recycleLocked(b *chunkBuf) {
	b.fromDisk = false
	if !c.closed && int64(len(b.data)) == c.chunk && len(c.free) < c.workers+2 {
		c.free = append(c.free, b)
		return
	}
	c.discardLocked(b)
}

// discardLocked lets an unreferenced buffer go.
func (c *Chunked) discardLocked(b *chunkBuf) {
	if b.mapped {
		unmapChunk(b.data)
		b.data, b.mapped = nil, false
	}
}

// start returns a call for chunk idx: already done on a cache hit or a recent failure, shared
// with a fetch in flight, or a new fetch. For prefetch it returns nil when there is nothing to
// do, with dropped set when no worker was free or the source is not serving.
func (c *Chunked) start(idx int64, prefetch bool) (cl *call, dropped bool) {
	c.mu.Lock()
	if b, ok := c.mem.Get(idx); ok {
		if prefetch {
			c.mu.Unlock()
			return nil, false
		}
		b.refs++ // the reader's, released after it copied
		c.mu.Unlock()
		c.hits.Add(1)
		return doneCall(b, nil), false
	}
	if err := c.recentFailureLocked(idx); err != nil {
		c.mu.Unlock()
		if prefetch {
			return nil, true
		}
		return doneCall(nil, err), false
	}
	if cl, ok := c.inflight[idx]; ok {
		if prefetch {
			c.mu.Unlock()
			return nil, false
		}
		cl.waiters++
		c.mu.Unlock()
		c.dedup.Add(1)
		return cl, false
	}
	if c.closed || c.ctx.Err() != nil {
		c.mu.Unlock()
		if prefetch {
			return nil, false
		}
		return doneCall(nil, fmt.Errorf("read %s: %w", c, errClosed)), false
	}
	if prefetch && !c.health.prefetchAllowed() {
		c.mu.Unlock()
		c.prefetchDropped.Add(1)
		return nil, true
	}
	queued := prefetch && c.through
	if queued {
		// With ReadThrough a chunk not fetched ahead costs the reader a synchronous read, so
		// hints wait for a worker instead of being dropped; the cache bounds them.
		c.prefetchIssued.Add(1)
	} else if prefetch {
		// Prefetch takes a worker only if one is free, and leaves one for demand reads.
		limit := int64(c.workers - 1)
		if limit < 1 {
			limit = 1
		}
		if c.prefetchN.Load() >= limit || c.ctx.Err() != nil {
			c.mu.Unlock()
			c.prefetchDropped.Add(1)
			return nil, true
		}
		select {
		case c.sem <- struct{}{}:
		default:
			c.mu.Unlock()
			c.prefetchDropped.Add(1)
			return nil, true
		}
		c.prefetchN.Add(1)
		c.prefetchIssued.Add(1)
	} else {
		c.misses.Add(1)
	}
	cl = &call{done: make(chan struct{}), prefetch: prefetch}
	cl.ctx, cl.cancel = context.WithCancel(c.ctx)
	if !prefetch {
		cl.waiters = 1
	}
	c.inflight[idx] = cl
	c.fetchWG.Add(1)
	c.mu.Unlock()
	go c.fetch(idx, cl, prefetch && !queued)
	return cl, false
}

// fetch fills one chunk from the disk cache or the source, publishes it, and then writes it
// to the disk cache. It runs under the call's context, not a reader's: other readers may join
// it. It ends when the chunk is there, when the source's retry budget is spent, or when no
// reader waits for it any more.
func (c *Chunked) fetch(idx int64, cl *call, haveWorker bool) {
	defer c.fetchWG.Done()
	defer cl.cancel()
	want := c.chunkLen(idx)
	var b *chunkBuf
	if c.disk != nil {
		b = c.newBuf(want)
		if c.disk.get(idx, b.data) {
			b.fromDisk = true
			c.diskHits.Add(1)
		} else {
			c.diskMisses.Add(1)
			c.mu.Lock()
			c.recycleLocked(b)
			c.mu.Unlock()
			b = nil
		}
	}
	if b == nil {
		if !haveWorker {
			c.demandWaiting.Add(1)
			select {
			case c.sem <- struct{}{}:
				c.demandWaiting.Add(-1)
			case <-cl.ctx.Done():
				c.demandWaiting.Add(-1)
				c.finish(idx, cl, nil, cl.ctx.Err())
				return
			}
		}
		refused := c.health.gate() // the breaker's error, counted there: no request is sent
		err := refused
		if err == nil {
			b = c.newBuf(want)
			err = c.readSource(cl.ctx, b.data, idx*c.chunk)
		}
		<-c.sem
		if haveWorker {
			c.prefetchN.Add(-1)
			haveWorker = false
		}
		if err != nil {
			if b != nil {
				c.mu.Lock()
				c.recycleLocked(b)
				c.mu.Unlock()
			}
			if refused == nil && cl.ctx.Err() == nil { // not abandoned by its readers: a verdict on the source
				c.countFailure(err)
				c.mu.Lock()
				demand := !cl.prefetch || cl.waiters > 0
				c.mu.Unlock()
				if demand {
					// Only a failure that readers saw is worth refusing their retries for; a
					// prefetch that failed on its own must not fail a later read.
					c.rememberFailure(idx, err)
				}
			}
			c.finish(idx, cl, nil, err)
			return
		}
		c.health.succeeded()
	}
	if haveWorker { // served from disk: give the prefetch worker back
		<-c.sem
		c.prefetchN.Add(-1)
	}
	c.finish(idx, cl, b, nil)
	if c.disk != nil && !b.fromDisk {
		if err := c.disk.put(idx, b.data); err != nil {
			c.diskErrors.Add(1)
		} else {
			c.diskWrites.Add(1)
		}
	}
	c.release(b) // the fetch's own reference
}

// finish publishes a fetch's result to its waiters and the memory cache. A successful chunk
// starts with a reference for each waiter and one for the fetch (dropped after the disk write).
func (c *Chunked) finish(idx int64, cl *call, b *chunkBuf, err error) {
	c.mu.Lock()
	delete(c.inflight, idx)
	if err == nil {
		b.refs = cl.waiters + 1
		c.evictions.Add(int64(c.mem.add(idx, b)))
		delete(c.failed, idx) // a reader that timed out on it may have marked it failed
	}
	cl.buf, cl.err, cl.finished = b, err, true
	c.mu.Unlock()
	close(cl.done)
}

// Prefetch hints that [off, off+length) will be read soon. It starts fetches for the chunks not
// cached or in flight, in order, while workers are free, and drops the rest: a hint never
// blocks and never queues without bound.
func (c *Chunked) Prefetch(off, length int64) {
	if off < 0 || length <= 0 || off >= c.size {
		return
	}
	// Chunks prefetched beyond what the cache holds would be evicted before they are read.
	if room := c.mem.Max() - c.chunk; length > room {
		length = room
	}
	if length <= 0 {
		return
	}
	end := off + length
	if end > c.size {
		end = c.size
	}
	c.mu.Lock()
	c.noteHintLocked(off/c.chunk, (end-1)/c.chunk)
	c.mu.Unlock()
	for idx := off / c.chunk; idx <= (end-1)/c.chunk; idx++ {
		if _, dropped := c.start(idx, true); dropped {
			c.hintDropped.Store(time.Now().UnixNano())
			return // workers busy: drop the rest of the hint
		}
	}
}

// Invalidate drops the chunks covering [off, off+length) from both caches, so the next read
// fetches them again (the image layer calls it when a block fails verification). It reports
// true: a read again goes back to storage, which may answer with other bytes.
func (c *Chunked) Invalidate(off, length int64) bool {
	if length <= 0 || off < 0 {
		return true
	}
	if c.disk != nil {
		c.disk.removeSpans(off, off+length)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidateSpansLocked(off, off+length)
	for idx := off / c.chunk; idx <= (off+length-1)/c.chunk; idx++ {
		_, served := c.diskServed[idx]
		delete(c.diskServed, idx)
		if b, ok := c.mem.Get(idx); ok && b.fromDisk || !ok && served {
			// The copy that failed came from the disk cache, which checked its CRC: the disk
			// returned other bytes than were written, or someone wrote the file. Worth knowing
			// apart from tampering in storage.
			c.diskCorrupt.Add(1)
			c.log.Warn("disk cache: a cached chunk failed verification; fetching it again from storage",
				"chunk", idx, "dir", c.disk.store.dir)
		}
		c.mem.Remove(idx)
		if c.disk != nil {
			c.disk.remove(idx)
		}
	}
	return true
}

// Stats returns a snapshot of the counters.
func (c *Chunked) Stats() Stats {
	s := Stats{
		BytesFetched: c.bytesFetched.Load(), Fetches: c.fetches.Load(), FetchErrors: c.fetchErrors.Load(),
		FetchLatencySum: time.Duration(c.latencyNanos.Load()), FetchLatencyCount: c.latencyCount.Load(),
		CacheHits: c.hits.Load(), CacheMisses: c.misses.Load(), DedupWaits: c.dedup.Load(),
		DiskHits: c.diskHits.Load(), DiskWrites: c.diskWrites.Load(), DiskErrors: c.diskErrors.Load(),
		Evictions: c.evictions.Load(), PrefetchIssued: c.prefetchIssued.Load(),
		PrefetchDropped: c.prefetchDropped.Load(), InFlight: c.running.Load(), ReadThrough: c.readThrough.Load(),
		DiskMisses: c.diskMisses.Load(), DiskCorrupt: c.diskCorrupt.Load(),
		BackgroundFetches: c.backgroundFetches.Load(), BackgroundRunning: c.background.Load(),
		RangeFetches: c.rangeFetches.Load(), Coalesced: c.coalesced.Load(),
	}
	for i := range c.errorsByCause {
		s.FetchErrorsByCause[i] = c.errorsByCause[i].Load()
	}
	if c.disk != nil {
		s.DiskBytes = c.disk.store.bytes()
	}
	if r, ok := c.src.(retryCounter); ok {
		s.Retries = r.Retries()
	}
	c.mu.Lock()
	s.CachedBytes = c.mem.Cost() + c.spanLRU.Cost()
	c.mu.Unlock()
	return s
}
