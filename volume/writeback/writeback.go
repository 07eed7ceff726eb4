// Package writeback is a bounded write-back cache in front of a volume.Store (a local file or
// a page blob). WriteAt copies into memory and returns; dirty pages are written out in large
// contiguous writes (up to MaxWrite), Parallel at a time, when half the cache is dirty and at
// every Flush; reads of dirty pages, or of pages being written out, are served from memory.
//
// Memory is fixed when the Store is made: MaxDirty bytes of cache and Parallel buffers of
// MaxWrite bytes, nothing more as the Store runs. That matters because the volume is served to
// a loop device through FUSE: if the daemon needed new memory to write out dirty pages, and the
// kernel could only free memory by writing dirty pages through that same loop device, both
// would wait for each other. When the cache is full, WriteAt waits for a write-out to free room:
// the bound holds, and the caller is slowed to the store's speed instead of failing.
//
// Failure: a write-out that fails (the inner store gave up after its own retries) means bytes
// the caller was told were written will never reach the store. From then on the Store is
// broken for the rest of the session: every Flush and every WriteAt returns the *WriteError
// that names the lost range and its cause, and nothing more is written out. The volume above
// never acknowledges a flush after a lost write, so the store holds the state of the last
// successful Flush plus some later writes, which the volume treats as an interrupted commit;
// remounting recovers it. Reads keep working and see every write, the lost ones included (their
// bytes stay in memory), so the session never reads stale data.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/encfs/encfs/volume"
)

// Options bound the cache. Zero values take the defaults.
type Options struct {
	// MaxDirty is the memory for written pages not yet written out, in bytes (default 64 MiB,
	// rounded down to a multiple of 4 KiB, at least 4 KiB).
	MaxDirty int64
	// Parallel is the number of write-outs in flight (default 8).
	Parallel int
	// MaxWrite is the largest write-out, a multiple of volume.PageSize up to volume.MaxWrite
	// (default volume.MaxWrite, 4 MiB: Azure's Put Page limit).
	MaxWrite int
}

// Defaults.
const (
	DefaultMaxDirty = 64 << 20
	DefaultParallel = 8
)

// slotSize is the cache's unit of memory: a volume block. A slot keeps one bit per page, so a
// write of a single 512-byte page is cached (and written out) alone.
const slotSize = 4096

const pagesPerSlot = slotSize / volume.PageSize

// maxEpochs bounds the flush generations tracked at once (see epochs).
const maxEpochs = 64

// A Store is a write-back cache in front of another volume.Store; it is a volume.Store itself.
type Store struct {
	inner    volume.Store
	maxWrite int

	mu   sync.Mutex
	cond *sync.Cond // signalled when a write-out ends (room freed, a Flush may be done)

	// The cache: slots of slotSize bytes in one arena, found by slot number through index.
	data       []byte
	slots      []slot
	free       []int32 // arena positions not in use
	index      slotIndex
	dirtySlots int
	highWater  int // write-out starts when this many slots are dirty

	// queue lists dirty slot numbers in offset order for write-out; next is the next to take.
	queue    []int64
	next     int
	flushers int // Flush calls waiting: write out everything, not only above the high water

	jobs    []job
	idle    []*job
	work    chan *job
	workers sync.WaitGroup

	epochs epochs
	failed *WriteError
	closed bool
	stats  Stats
}

// slot is one cached block: which of its pages are dirty, and since which flush generation.
type slot struct {
	n     int64 // slot number: offset / slotSize
	dirty uint8 // bit i: page i holds data not yet written out
	epoch uint64
}

// job is one write-out and its buffer. A failed job keeps its bytes, so reads still see them.
type job struct {
	buf     []byte
	off     int64
	n       int
	busy    bool // being written, or failed (lost): its bytes are the newest on storage's behalf
	lost    bool
	carried []epochCount // the flush generations of the slots it holds
}

type epochCount struct {
	epoch uint64
	n     int64
}

// Stats are the cache's counters, for metrics.
type Stats struct {
	DirtyBytes    int64 // memory held by dirty slots
	InFlight      int   // write-outs in flight
	WriteOuts     int64 // write-outs issued
	WriteOutBytes int64
	Waits         int64 // WriteAt calls that waited for room
	ReadHits      int64 // pages read from memory
	// WriteOutErrors counts write-outs (and inner flushes) that failed: after the first, the
	// Store is broken for the rest of the session (see WriteError).
	WriteOutErrors int64
}

// A WriteError is a write-out that failed: the bytes [Off, Off+Len) that WriteAt accepted never
// reached the store (Len 0: the inner store's Flush failed, so any write since the previous
// flush may be lost). It is returned by every later Flush and WriteAt of the Store.
type WriteError struct {
	Store    string
	Off, Len int64
	Err      error
}

// ErrLost matches every *WriteError (errors.Is).
var ErrLost = errors.New("written data lost")

func (e *WriteError) Error() string {
	if e.Len == 0 { // the inner store's own flush failed
		return fmt.Sprintf("write-back to %s failed: %v; the writes since the previous flush may be lost, and the cache accepts no more",
			e.Store, e.Err)
	}
	return fmt.Sprintf("write-back to %s failed for bytes %d to %d (%d bytes): %v; these bytes are lost, and the cache accepts no more writes",
		e.Store, e.Off, e.Off+e.Len, e.Len, e.Err)
}

func (e *WriteError) Unwrap() error        { return e.Err }
func (e *WriteError) Is(target error) bool { return target == ErrLost }

// New puts a write-back cache in front of s and starts its Parallel write-out workers; Close
// stops them.
func New(s volume.Store, o Options) *Store {
	if o.MaxDirty <= 0 {
		o.MaxDirty = DefaultMaxDirty
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.MaxWrite <= 0 || o.MaxWrite > volume.MaxWrite {
		o.MaxWrite = volume.MaxWrite
	}
	o.MaxWrite = max(o.MaxWrite/volume.PageSize*volume.PageSize, volume.PageSize)
	nslots := int(max(o.MaxDirty/slotSize, 1))
	c := &Store{
		inner:     s,
		maxWrite:  o.MaxWrite,
		data:      make([]byte, nslots*slotSize),
		slots:     make([]slot, nslots),
		free:      make([]int32, nslots),
		index:     newSlotIndex(nslots),
		highWater: max(nslots/2, 1),
		queue:     make([]int64, 0, nslots),
		jobs:      make([]job, o.Parallel),
		idle:      make([]*job, 0, o.Parallel),
		work:      make(chan *job, o.Parallel),
	}
	c.cond = sync.NewCond(&c.mu)
	for i := range c.free {
		c.free[i] = int32(nslots - 1 - i)
	}
	for i := range c.jobs {
		j := &c.jobs[i]
		j.buf = make([]byte, o.MaxWrite)
		j.carried = make([]epochCount, 0, maxEpochs)
		c.idle = append(c.idle, j)
	}
	c.workers.Add(o.Parallel)
	for range o.Parallel {
		go c.worker()
	}
	return c
}

// check refuses offsets and lengths that are not whole pages inside the store.
func (c *Store) check(op string, n int, off int64) error {
	if off < 0 || off%volume.PageSize != 0 || n%volume.PageSize != 0 {
		return fmt.Errorf("%s %s: %d bytes at %d: offsets and lengths must be multiples of %d", op, c.inner, n, off, volume.PageSize)
	}
	if size := c.inner.Size(); off+int64(n) > size {
		return fmt.Errorf("%s %s: %d bytes at %d: past the end of the store (%d bytes)", op, c.inner, n, off, size)
	}
	return nil
}

// WriteAt copies p into the cache. When the cache is full it waits for write-outs to free room;
// that wait ends when a write-out ends, within the inner store's retry budget, and is not
// interrupted by ctx (waking on ctx would allocate on the write path).
func (c *Store) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := c.check("write to", len(p), off); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 {
		if c.closed {
			return fmt.Errorf("write to %s: the write-back cache is closed", c.inner)
		}
		if c.failed != nil {
			return c.failed
		}
		n := off / slotSize
		i := c.index.find(n)
		if i < 0 {
			if len(c.free) == 0 {
				c.stats.Waits++
				c.dispatch()
				c.cond.Wait()
				continue
			}
			i = c.free[len(c.free)-1]
			c.free = c.free[:len(c.free)-1]
			c.slots[i] = slot{n: n, epoch: c.epochs.cur}
			c.index.insert(n, i)
			c.dirtySlots++
			c.epochs.add(c.epochs.cur, 1)
		}
		at := int(off % slotSize)
		k := min(len(p), slotSize-at)
		copy(c.data[int(i)*slotSize+at:], p[:k])
		c.slots[i].dirty |= pageBits(at, k)
		p, off = p[k:], off+int64(k)
	}
	if c.dirtySlots >= c.highWater {
		c.dispatch()
	}
	return nil
}

// pageBits is the mask of the pages that k bytes at byte at of a slot cover.
func pageBits(at, k int) uint8 {
	first, last := at/volume.PageSize, (at+k)/volume.PageSize
	return uint8((1<<last - 1) &^ (1<<first - 1))
}

// dispatch starts write-outs while a job is idle and there is something to write: the queue
// of dirty slots in offset order, refilled when it runs out and the cache is above its high
// water or a Flush waits. Called with mu held.
func (c *Store) dispatch() {
	for c.failed == nil && !c.closed && len(c.idle) > 0 {
		if c.next == len(c.queue) {
			if c.dirtySlots == 0 || (c.flushers == 0 && c.dirtySlots < c.highWater) {
				return
			}
			c.refill()
		}
		i := c.index.find(c.queue[c.next])
		if i < 0 || c.slots[i].dirty == 0 {
			c.next++ // written out since the queue was filled
			continue
		}
		start := c.slots[i].n*slotSize + int64(firstPage(c.slots[i].dirty))*volume.PageSize
		end := c.runEnd(start)
		if c.overlapsJob(start, end) {
			// An older write-out of these pages is in flight: this newer one must not overtake
			// it. Its end calls dispatch again.
			return
		}
		j := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		c.take(j, start, end)
		if c.slots[i].n != c.queue[c.next] || c.slots[i].dirty == 0 {
			c.next++ // else this slot has dirty pages after a hole: its next run starts there
		}
		c.stats.WriteOuts++
		c.stats.WriteOutBytes += int64(j.n)
		c.stats.InFlight++
		c.work <- j // never blocks: the channel holds every job
	}
}

// refill lists every dirty slot, in offset order.
func (c *Store) refill() {
	c.queue = c.queue[:0]
	for _, n := range c.index.keys {
		if n != empty {
			c.queue = append(c.queue, n)
		}
	}
	slices.Sort(c.queue)
	c.next = 0
}

func firstPage(mask uint8) int {
	for i := range pagesPerSlot {
		if mask&(1<<i) != 0 {
			return i
		}
	}
	return pagesPerSlot
}

// runEnd is the end of the contiguous dirty pages from start, at most maxWrite bytes.
func (c *Store) runEnd(start int64) int64 {
	end, limit := start, start+int64(c.maxWrite)
	for end < limit {
		i := c.index.find(end / slotSize)
		if i < 0 {
			break
		}
		page := int(end%slotSize) / volume.PageSize
		for ; page < pagesPerSlot && end < limit && c.slots[i].dirty&(1<<page) != 0; page++ {
			end += volume.PageSize
		}
		if page < pagesPerSlot {
			break
		}
	}
	return end
}

func (c *Store) overlapsJob(start, end int64) bool {
	for i := range c.jobs {
		j := &c.jobs[i]
		if j.busy && j.off < end && start < j.off+int64(j.n) {
			return true
		}
	}
	return false
}

// take moves the dirty pages [start, end) into job j's buffer and frees the slots left clean.
func (c *Store) take(j *job, start, end int64) {
	j.off, j.n, j.busy = start, int(end-start), true
	j.carried = j.carried[:0]
	for off := start; off < end; {
		i := c.index.find(off / slotSize)
		s := &c.slots[i]
		at := int(off % slotSize)
		k := int(min(int64(slotSize-at), end-off))
		copy(j.buf[off-start:], c.data[int(i)*slotSize+at:int(i)*slotSize+at+k])
		s.dirty &^= pageBits(at, k)
		j.carry(s.epoch)
		c.epochs.add(s.epoch, 1)
		if s.dirty == 0 {
			c.index.remove(s.n)
			c.free = append(c.free, i)
			c.dirtySlots--
			c.epochs.add(s.epoch, -1)
		}
		off += int64(k)
	}
	c.cond.Broadcast() // room freed
}

func (j *job) carry(epoch uint64) {
	for k := range j.carried {
		if j.carried[k].epoch == epoch {
			j.carried[k].n++
			return
		}
	}
	j.carried = append(j.carried, epochCount{epoch, 1}) // at most maxEpochs live epochs: no growth
}

// worker writes out jobs until Close.
func (c *Store) worker() {
	defer c.workers.Done()
	for j := range c.work {
		err := c.inner.WriteAt(context.Background(), j.buf[:j.n], j.off)
		c.mu.Lock()
		c.stats.InFlight--
		for _, e := range j.carried {
			c.epochs.add(e.epoch, -e.n)
		}
		j.carried = j.carried[:0]
		if err != nil {
			// The bytes stay in j.buf and j stays busy: reads keep seeing them, and no later
			// write-out can be issued over them.
			j.lost = true
			c.stats.WriteOutErrors++
			if c.failed == nil {
				c.failed = &WriteError{Store: c.inner.String(), Off: j.off, Len: int64(j.n), Err: err}
			}
		} else {
			j.busy = false
			c.idle = append(c.idle, j)
			c.dispatch()
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// ReadAt fills p from the cache where it holds the pages (dirty, or being written out) and
// from the inner store elsewhere.
func (c *Store) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := c.check("read from", len(p), off); err != nil {
		return err
	}
	for len(p) > 0 {
		c.mu.Lock()
		n, held := c.copyHeld(p, off)
		c.mu.Unlock()
		if !held {
			// These pages were not in memory just now, so the store has their newest
			// acknowledged bytes: a write-out of them, if any, has ended.
			if err := c.inner.ReadAt(ctx, p[:n], off); err != nil {
				return err
			}
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// copyHeld looks at the pages from off: if the first is held in memory, it copies the run of
// held pages into p; otherwise it measures the run of pages not held. Called with mu held.
func (c *Store) copyHeld(p []byte, off int64) (n int, held bool) {
	if c.dirtySlots == 0 && c.stats.InFlight == 0 && c.failed == nil {
		return len(p), false
	}
	for n < len(p) {
		src := c.page(off + int64(n))
		if n == 0 {
			held = src != nil
		}
		if (src != nil) != held {
			break
		}
		if held {
			copy(p[n:n+volume.PageSize], src)
			c.stats.ReadHits++
		}
		n += volume.PageSize
	}
	return n, held
}

// page returns the newest bytes in memory of the page at off, or nil: a dirty slot (newest),
// else a write-out in flight or lost (at most one holds any page).
func (c *Store) page(off int64) []byte {
	if i := c.index.find(off / slotSize); i >= 0 {
		at := int(off % slotSize)
		if c.slots[i].dirty&(1<<(at/volume.PageSize)) != 0 {
			b := int(i)*slotSize + at
			return c.data[b : b+volume.PageSize]
		}
	}
	for k := range c.jobs {
		j := &c.jobs[k]
		if j.busy && j.off <= off && off < j.off+int64(j.n) {
			return j.buf[off-j.off : off-j.off+volume.PageSize]
		}
	}
	return nil
}

// Flush writes out every page written before the call, waits for those write-outs, and
// flushes the inner store. After a lost write-out it returns the *WriteError, for good.
func (c *Store) Flush(ctx context.Context) error {
	c.mu.Lock()
	if c.failed != nil {
		defer c.mu.Unlock()
		return c.failed
	}
	if c.closed {
		defer c.mu.Unlock()
		return fmt.Errorf("flush %s: the write-back cache is closed", c.inner)
	}
	target := c.epochs.next()
	c.flushers++
	c.next = len(c.queue) // refill now: the queue may lack slots dirtied since it was made
	c.dispatch()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	for c.failed == nil && !c.epochs.drained(target) && ctx.Err() == nil {
		c.cond.Wait()
	}
	stop()
	c.flushers--
	var err error
	switch {
	case c.failed != nil:
		err = c.failed
	case ctx.Err() != nil:
		err = fmt.Errorf("flush %s: %w", c.inner, ctx.Err())
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.inner.Flush(ctx); err != nil {
		// The inner store could not make its writes durable: they may be lost too.
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stats.WriteOutErrors++
		if c.failed == nil {
			c.failed = &WriteError{Store: c.inner.String(), Err: fmt.Errorf("flush: %w", err)}
		}
		return c.failed
	}
	return nil
}

// Size is the inner store's size.
func (c *Store) Size() int64 { return c.inner.Size() }

// Resize resizes the inner store. Shrinking first flushes, so that no cached page lies past
// the new end.
func (c *Store) Resize(ctx context.Context, size int64) error {
	if size < c.inner.Size() {
		if err := c.Flush(ctx); err != nil {
			return err
		}
	}
	c.mu.Lock()
	failed := c.failed
	c.mu.Unlock()
	if failed != nil {
		return failed
	}
	return c.inner.Resize(ctx, size)
}

// Close flushes, stops the write-out workers and closes the inner store. Its error says if
// written bytes could not be flushed.
func (c *Store) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	flushErr := c.Flush(context.Background())
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast() // a writer still waiting for room gives up
	c.mu.Unlock()
	close(c.work)
	c.workers.Wait()
	return errors.Join(flushErr, c.inner.Close())
}

// String names the inner store.
func (c *Store) String() string { return c.inner.String() }

// Stats returns the cache's counters.
// Inner is the store the cache writes out to.
func (c *Store) Inner() volume.Store { return c.inner }

func (c *Store) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.DirtyBytes = int64(c.dirtySlots) * slotSize
	return s
}

// epochs count what each flush generation still has to write out. A Flush starts a new
// generation for the writes after it and waits until every generation up to its own has
// nothing left (no dirty slot, no write-out in flight). At most maxEpochs generations are
// tracked: past that (many Flushes waiting at once), a Flush shares the newest generation,
// and so also waits for some writes made after it.
type epochs struct {
	counts    [maxEpochs]int64
	head, cur uint64 // the oldest generation with something pending (or cur); the newest
}

func (e *epochs) add(epoch uint64, d int64) {
	e.counts[epoch%maxEpochs] += d
	for e.head < e.cur && e.counts[e.head%maxEpochs] == 0 {
		e.head++
	}
}

// next returns the generation a Flush waits for and starts a new one.
func (e *epochs) next() uint64 {
	t := e.cur
	if e.cur-e.head+1 < maxEpochs {
		e.cur++
	}
	e.add(t, 0)
	return t
}

// drained reports whether every generation up to t has nothing pending.
func (e *epochs) drained(t uint64) bool {
	for g := e.head; g <= t && g <= e.cur; g++ {
		if e.counts[g%maxEpochs] != 0 {
			return false
		}
	}
	return true
}
