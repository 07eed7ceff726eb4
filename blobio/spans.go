package blobio

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Range fetches ("spans"). A cold read that is not part of a sequential stream fetches just
// the bytes it asks for, not the whole chunk around them: a data loader reading a dataset of
// small files in a new random order every epoch would otherwise pull a whole chunk per file,
// most of it unused and, with a cache smaller than the dataset, evicted before it is read.
//
// The reader above (the image) aligns its reads to its verification unit, so spans are
// aligned to it; spanGranule only rounds out a stray unaligned request. Reads that arrive
// together for neighbouring ranges share one GET: a range fetch waits CoalesceWindow (and for
// a worker) before it goes out, and takes with it every pending range adjacent to its own, up
// to a chunk's length. Whole chunks stay for sequential readers (the chunks their readahead
// hints name, see Prefetch) and for the background fetch.
//
// Fetched spans are kept in a memory cache of their own (a quarter of CacheBytes) and, with a
// disk cache, written there, so that the background fetch never fetches them again (it fetches
// only the gaps between them) and a later epoch finds them.

const (
	// spanGranule rounds range fetches out to a multiple of the smallest verification unit an
	// image has; the image's own unit (a multiple of it) already aligns what it asks for.
	spanGranule = 4096
	// DefaultCoalesceWindow is how long a range fetch waits for neighbours before it goes out:
	// concurrent readers' requests arrive within tens of microseconds of each other, and a GET
	// costs milliseconds.
	DefaultCoalesceWindow = 300 * time.Microsecond
	// sequentialHintTTL is how long a chunk named by a readahead hint (Prefetch) counts as part
	// of a sequential stream: a demand read that misses it then fetches the whole chunk.
	sequentialHintTTL = 10 * time.Second
)

// span is one range fetch: in flight until done is closed, then either data or err. Its data
// is never written after it is published, so views of it need no reference counting: the
// garbage collector keeps a buffer alive while anyone holds a slice of it.
type span struct {
	off, end   int64
	deadline   time.Time // the latest deadline of the readers that asked for it (zero: none)
	background bool      // asked for by the background fetch, not by a reader
	done       chan struct{}
	sent       chan struct{} // closed when its GET goes out (or it fails before)
	data       []byte
	err        error
	finished   bool // guarded by Chunked.mu
}

func (s *span) covers(off, end int64) bool { return s.off <= off && end <= s.end }

// spanIndex is the layer's spans, cached or in flight, per chunk, sorted by offset and never
// overlapping. Guarded by Chunked.mu.
type spanIndex map[int64][]*span

// at returns the span holding byte pos of chunk idx, or nil.
func (x spanIndex) at(idx, pos int64) *span {
	list := x[idx]
	i := sort.Search(len(list), func(i int) bool { return list[i].end > pos })
	if i < len(list) && list[i].off <= pos {
		return list[i]
	}
	return nil
}

// nextStart returns where the first span of chunk idx that starts after pos begins, or limit.
func (x spanIndex) nextStart(idx, pos, limit int64) int64 {
	list := x[idx]
	i := sort.Search(len(list), func(i int) bool { return list[i].off > pos })
	if i < len(list) && list[i].off < limit {
		return list[i].off
	}
	return limit
}

func (x spanIndex) insert(idx int64, s *span) {
	list := x[idx]
	i := sort.Search(len(list), func(i int) bool { return list[i].off > s.off })
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = s
	x[idx] = list
}

func (x spanIndex) remove(idx int64, s *span) {
	list := x[idx]
	for i, t := range list {
		if t == s {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(x, idx)
	} else {
		x[idx] = list
	}
}

// rangeMode reports whether a demand miss of n bytes in chunk idx fetches a range rather than
// the whole chunk: not for a local file read through, not while the background fetches the
// whole image (every byte of the chunk is about to be fetched anyway, and one request for it
// costs the storage far less than one per file: a shuffled epoch over 100 KiB files from
// Azurite took 2.2 times as long with ranges), not for a chunk a sequential reader's readahead
// named, not for a read of half a chunk or more.
func (c *Chunked) rangeMode(idx, n int64) bool {
	if c.through || c.wholeImage.Load() || n >= c.chunk/2 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.hinted[idx]
	return !ok || time.Since(time.Unix(0, at)) > sequentialHintTTL
}

// noteHintLocked records that chunks first..last were named by a readahead hint.
func (c *Chunked) noteHintLocked(first, last int64) {
	if len(c.hinted) > 4096 {
		clear(c.hinted)
	}
	now := time.Now().UnixNano()
	for idx := first; idx <= last; idx++ {
		c.hinted[idx] = now
	}
}

// piece is one part of a read served by a span: from memory (s), or from the disk cache
// (fromDisk, with the chunk or span file to read).
type piece struct {
	off, end int64
	s        *span
	disk     diskExtent
	fromDisk bool
}

// planRangeLocked covers [off, end) of chunk idx with pieces in order: spans in memory or in
// flight, the disk cache (a whole chunk, or a span file), and new range fetches for the rest.
func (c *Chunked) planRangeLocked(idx, off, end int64, deadline time.Time, background bool) []piece {
	var out []piece
	for pos := off; pos < end; {
		if s := c.spans.at(idx, pos); s != nil {
			if !s.finished && deadline.After(s.deadline) {
				s.deadline = deadline
			}
			n := min(s.end, end)
			out = append(out, piece{off: pos, end: n, s: s})
			pos = n
			continue
		}
		if e, ok := c.diskExtentAt(idx, pos); ok {
			n := min(e.end, end)
			out = append(out, piece{off: pos, end: n, disk: e, fromDisk: true})
			pos = n
			continue
		}
		gapEnd := c.spans.nextStart(idx, pos, end)
		if c.disk != nil {
			gapEnd = min(gapEnd, c.disk.nextSpanStart(pos, gapEnd))
		}
		// Spans start and end on granules (or at the image's end), so rounding out overlaps none.
		lo := max(pos/spanGranule*spanGranule, idx*c.chunk)
		hi := min((gapEnd+spanGranule-1)/spanGranule*spanGranule, (idx+1)*c.chunk, c.size)
		s := c.startRangeLocked(idx, lo, hi, deadline, background)
		out = append(out, piece{off: pos, end: gapEnd, s: s})
		pos = gapEnd
	}
	return out
}

// diskExtentAt finds byte pos of chunk idx in the disk cache: the whole chunk, or a span file.
func (c *Chunked) diskExtentAt(idx, pos int64) (diskExtent, bool) {
	if c.disk == nil {
		return diskExtent{}, false
	}
	if c.disk.has(idx, c.chunkLen(idx)) {
		return diskExtent{off: idx * c.chunk, end: idx*c.chunk + int64(c.chunkLen(idx)), chunk: idx, whole: true}, true
	}
	return c.disk.spanAt(pos)
}

// startRangeLocked registers a fetch of [off, end), which no span covers, and starts it. On a
// closed layer it returns a span that failed already.
func (c *Chunked) startRangeLocked(idx, off, end int64, deadline time.Time, background bool) *span {
	s := &span{off: off, end: end, deadline: deadline, background: background, done: make(chan struct{}), sent: make(chan struct{})}
	if c.closed {
		s.err, s.finished = fmt.Errorf("read %s: %w", c, errClosed), true
		close(s.sent)
		close(s.done)
		return s
	}
	c.spans.insert(idx, s)
	c.pending[s] = struct{}{}
	c.fetchWG.Add(1)
	go c.fetchRange(s)
	return s
}

// fetchRange waits the coalescing window and for a worker, then fetches s together with every
// pending span adjacent to it in one GET, unless another fetch took s with it meanwhile.
func (c *Chunked) fetchRange(s *span) {
	defer c.fetchWG.Done()
	if !s.background {
		c.demandWaiting.Add(1)
	}
	t := time.NewTimer(c.coalesce)
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
	t.Stop()
	acquired := false
	if c.ctx.Err() == nil {
		select {
		case c.sem <- struct{}{}:
			acquired = true
		case <-c.ctx.Done():
		}
	}
	if !s.background {
		c.demandWaiting.Add(-1)
	}
	c.mu.Lock()
	if _, ok := c.pending[s]; !ok { // fetched with a neighbour
		c.mu.Unlock()
		if acquired {
			<-c.sem
		}
		return
	}
	group := c.takeNeighboursLocked(s)
	var deadline time.Time // the latest of the readers' deadlines; none if any has none
	for i, g := range group {
		if g.deadline.IsZero() || g.background {
			deadline = time.Time{}
			break
		}
		if i == 0 || g.deadline.After(deadline) {
			deadline = g.deadline
		}
	}
	c.mu.Unlock()
	for _, g := range group {
		close(g.sent)
	}
	if !acquired {
		c.finishRange(group, nil, 0, errClosed)
		return
	}
	lo, hi := group[0].off, group[len(group)-1].end
	ctx, cancel := c.ctx, context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(c.ctx, deadline)
	}
	refused := c.health.gate()
	err := refused
	var buf []byte
	if err == nil {
		buf = make([]byte, hi-lo)
		c.rangeFetches.Add(1)
		err = c.readSource(ctx, buf, lo)
	}
	late := ctx.Err() != nil // the readers' deadline came (before cancel below)
	cancel()
	<-c.sem
	if err != nil && refused == nil && c.ctx.Err() == nil && !late {
		c.countFailure(err)
		for idx := lo / c.chunk; idx <= (hi-1)/c.chunk; idx++ {
			if !s.background { // a failure readers saw; see FailedChunkTTL
				c.rememberFailure(idx, err)
			}
		}
	} else if err == nil {
		c.health.succeeded()
	} else if err != nil && late && c.ctx.Err() == nil {
		// The readers' deadline came first; they counted it and remembered the chunks as
		// failed as they left (see Chunked.gaveUp). Readers that joined since get the same
		// verdict, not a cancellation of their own.
		err = fmt.Errorf("%w (%w)", c.unreachable(), context.DeadlineExceeded)
	}
	c.finishRange(group, buf, lo, err)
	if err == nil && c.disk != nil {
		if err := c.disk.putSpan(lo, buf); err != nil {
			c.diskErrors.Add(1)
		} else {
			c.diskWrites.Add(1)
		}
	}
}

// takeNeighboursLocked removes s and the pending spans adjacent to it (transitively, up to a
// chunk's length in all) from the pending set and returns them in order.
func (c *Chunked) takeNeighboursLocked(s *span) []*span {
	delete(c.pending, s)
	group := []*span{s}
	lo, hi := s.off, s.end
	for grew := true; grew; {
		grew = false
		for p := range c.pending {
			if p.end == lo && hi-p.off <= c.chunk {
				group = append([]*span{p}, group...)
				lo = p.off
			} else if p.off == hi && p.end-lo <= c.chunk {
				group = append(group, p)
				hi = p.end
			} else {
				continue
			}
			delete(c.pending, p)
			grew = true
		}
	}
	if len(group) > 1 {
		c.coalesced.Add(int64(len(group) - 1))
	}
	return group
}

// finishRange publishes one GET's result to the spans it covered: cached in memory, or
// removed (so that the next read fetches again) with the error.
func (c *Chunked) finishRange(group []*span, buf []byte, lo int64, err error) {
	c.mu.Lock()
	for _, g := range group {
		g.finished = true
		if err != nil {
			g.err = err
			c.spans.remove(g.off/c.chunk, g)
			continue
		}
		g.data = buf[g.off-lo : g.end-lo : g.end-lo]
		if added, evicted := c.spanLRU.Add(g.off, g, g.end-g.off); added {
			c.evictions.Add(int64(evicted))
		} else {
			c.spans.remove(g.off/c.chunk, g)
		}
	}
	c.mu.Unlock()
	for _, g := range group {
		close(g.done)
	}
}

// dropSpanLocked is the span cache's eviction: the span leaves the index too.
func (c *Chunked) dropSpanLocked(_ int64, s *span) {
	c.spans.remove(s.off/c.chunk, s)
}

// readPieces copies the pieces of a read into p (which starts at byte off), waiting for the
// fetches among them. It reports false, with no error, when a disk piece turned out to be
// gone or damaged: the caller plans again.
func (c *Chunked) readPieces(ctx context.Context, p []byte, off int64, pieces []piece) (bool, error) {
	for _, pc := range pieces {
		dst := p[pc.off-off : pc.end-off]
		if pc.fromDisk {
			if !c.disk.readExtent(pc.disk, dst, pc.off) {
				return false, nil
			}
			c.diskHits.Add(1)
			continue
		}
		select {
		case <-pc.s.done:
		case <-ctx.Done():
			c.gaveUp([]int64{pc.off / c.chunk}, ctx.Err())
			return false, ctx.Err()
		}
		if pc.s.err != nil {
			if errors.Is(pc.s.err, context.DeadlineExceeded) { // a reader's deadline ended the fetch
				c.gaveUp([]int64{pc.off / c.chunk}, context.DeadlineExceeded)
				return false, pc.s.err
			}
			return false, pc.s.err
		}
		copy(dst, pc.s.data[pc.off-pc.s.off:])
	}
	return true, nil
}

// readRanges serves a read inside chunk idx from spans, fetching the parts no cache holds.
func (c *Chunked) readRanges(ctx context.Context, p []byte, off, idx int64) error {
	deadline, _ := ctx.Deadline()
	for try := 0; ; try++ {
		c.mu.Lock()
		if err := c.recentFailureLocked(idx); err != nil {
			c.mu.Unlock()
			return err
		}
		pieces := c.planRangeLocked(idx, off, off+int64(len(p)), deadline, false)
		c.mu.Unlock()
		ok, err := c.readPieces(ctx, p, off, pieces)
		if ok || err != nil || try > 0 {
			if !ok && err == nil {
				return c.readSource(ctx, p, off)
			}
			return err
		}
	}
}

// viewRange lends [off, off+n) of chunk idx from one span in memory or in flight, starting a
// range fetch when no cache holds any of it. ok is false when the range is partly cached or on
// disk: the caller reads it with ReadAt.
func (c *Chunked) viewRange(ctx context.Context, off int64, n int, idx int64) (view []byte, release func(), ok bool, err error) {
	end := off + int64(n)
	deadline, _ := ctx.Deadline()
	c.mu.Lock()
	if err := c.recentFailureLocked(idx); err != nil {
		c.mu.Unlock()
		return nil, nil, true, err
	}
	s := c.spans.at(idx, off)
	switch {
	case s != nil && s.covers(off, end):
		if !s.finished && deadline.After(s.deadline) {
			s.deadline = deadline
		}
	case s == nil && c.spans.nextStart(idx, off, end) == end && !c.onDiskAny(idx, off, end):
		pieces := c.planRangeLocked(idx, off, end, deadline, false)
		s = pieces[0].s
	default:
		c.mu.Unlock()
		return nil, nil, false, nil
	}
	c.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		c.gaveUp([]int64{idx}, ctx.Err())
		return nil, nil, true, ctx.Err()
	}
	if s.err != nil {
		if errors.Is(s.err, context.DeadlineExceeded) { // a reader's deadline ended the fetch
			c.gaveUp([]int64{idx}, context.DeadlineExceeded)
			return nil, nil, true, s.err
		}
		return nil, nil, true, s.err
	}
	return s.data[off-s.off : end-s.off : end-s.off], func() {}, true, nil
}

// onDiskAny reports whether the disk cache holds any byte of [off, end) of chunk idx.
func (c *Chunked) onDiskAny(idx, off, end int64) bool {
	if c.disk == nil {
		return false
	}
	if c.disk.has(idx, c.chunkLen(idx)) {
		return true
	}
	if _, ok := c.disk.spanAt(off); ok {
		return true
	}
	return c.disk.nextSpanStart(off, end) < end
}

// PrefetchRange starts fetching exactly [off, off+length) (rounded out to spanGranule), the
// parts of it no cache holds, in range fetches coalesced with their neighbours. It is for
// ranges known to be wanted whole and soon: a small file being opened, the next files of an
// access profile. It never blocks. A local file read through ignores it.
func (c *Chunked) PrefetchRange(off, length int64) {
	c.prefetchRange(off, length, false)
}

// prefetchRange is PrefetchRange; background marks fetches of the background pass, which
// give way to readers'. It returns the spans it started or found in flight.
func (c *Chunked) prefetchRange(off, length int64, background bool) []*span {
	if !background && c.wholeImage.Load() {
		return nil // the reads that follow fetch whole chunks (rangeMode)
	}
	if c.through || off < 0 || length <= 0 || off >= c.size || c.ctx.Err() != nil {
		return nil
	}
	end := min(off+length, c.size)
	off = off / spanGranule * spanGranule
	var started []*span
	for pos := off; pos < end; {
		idx := pos / c.chunk
		stop := min(end, (idx+1)*c.chunk)
		c.mu.Lock()
		_, inflight := c.inflight[idx]
		if !inflight && !c.mem.Has(idx) && (c.disk == nil || !c.disk.has(idx, c.chunkLen(idx))) {
			for _, pc := range c.planRangeLocked(idx, pos, stop, time.Time{}, background) {
				if pc.s != nil && !pc.s.finished {
					started = append(started, pc.s)
				}
			}
		}
		c.mu.Unlock()
		pos = stop
	}
	return started
}

// invalidateSpansLocked drops the cached spans overlapping [off, end).
func (c *Chunked) invalidateSpansLocked(off, end int64) {
	for idx := off / c.chunk; idx <= (end-1)/c.chunk; idx++ {
		for _, s := range append([]*span(nil), c.spans[idx]...) {
			if s.finished && s.off < end && off < s.end {
				c.spanLRU.Remove(s.off) // its eviction callback drops it from the index
			}
		}
	}
}

// coveredLocked reports whether spans (in memory, in flight or on disk) hold all of [lo, hi)
// in chunk idx.
func (c *Chunked) coveredLocked(idx, lo, hi int64) bool {
	for pos := lo; pos < hi; {
		if s := c.spans.at(idx, pos); s != nil {
			pos = s.end
			continue
		}
		if c.disk == nil {
			return false
		}
		e, ok := c.disk.spanAt(pos)
		if !ok {
			return false
		}
		pos = e.end
	}
	return true
}

// gapsLocked returns the parts of chunk idx that no span (in memory, in flight or on disk)
// holds; all of it when none does.
func (c *Chunked) gapsLocked(idx int64) (gaps [][2]int64, whole bool) {
	lo, hi := idx*c.chunk, idx*c.chunk+int64(c.chunkLen(idx))
	for pos := lo; pos < hi; {
		if s := c.spans.at(idx, pos); s != nil {
			pos = s.end
			continue
		}
		if c.disk != nil {
			if e, ok := c.disk.spanAt(pos); ok {
				pos = e.end
				continue
			}
		}
		next := c.spans.nextStart(idx, pos, hi)
		if c.disk != nil {
			next = c.disk.nextSpanStart(pos, next)
		}
		gaps = append(gaps, [2]int64{pos, next})
		pos = next
	}
	return gaps, len(gaps) == 1 && gaps[0] == [2]int64{lo, hi}
}
