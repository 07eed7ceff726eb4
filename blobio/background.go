package blobio

import (
	"context"
	"iter"
	"time"
)

// FetchAll fetches every chunk of the image that neither cache holds, in order, into the
// caches, and returns when all are there, when ctx ends, or when the layer closes. It is the
// background fetch of a mount whose image fits its caches (encfs mount --prefetch): a data
// loader that reads every file once per epoch in a new random order then costs one sequential
// download of the image, and epoch 2 is served from the caches.
//
// Demand reads go first: a background fetch starts only while no reader waits for a worker
// and no reader's readahead hint was turned away in the last 100 ms, and the background keeps
// at most half the workers busy: at the storage a request waits behind those in flight, and a
// demand read must not wait behind many (the first byte of a fresh mount took 200-420 ms behind
// seven background fetches, against 90-130 ms without them). It pauses while the storage is
// not serving (an outage, or the breaker open) and carries on when it is again. The chunks it
// brings are verified when they are read, like any other.
func (c *Chunked) FetchAll(ctx context.Context) error {
	c.background.Store(true)
	defer c.background.Store(false)
	c.wholeImage.Store(true)
	defer c.wholeImage.Store(false)
	bg := c.newBackground()
	last := (c.size - 1) / c.chunk
	for idx := int64(0); idx <= last; {
		if err := bg.alive(ctx); err != nil {
			return err
		}
		gaps, whole := c.missing(idx)
		if len(gaps) == 0 {
			idx++
			continue
		}
		if !bg.mayStart() {
			c.pause(ctx)
			continue
		}
		if whole {
			cl, dropped := c.start(idx, true)
			if dropped {
				c.pause(ctx) // every worker the background may take is busy
				continue
			}
			if cl != nil {
				bg.mine = append(bg.mine, cl.done)
				c.backgroundFetches.Add(1)
			}
		} else {
			// Readers fetched ranges of this chunk already: fetch only what lies between them,
			// so that no byte is fetched twice.
			for _, g := range gaps {
				for _, s := range c.prefetchRange(g[0], g[1]-g[0], true) {
					bg.mine = append(bg.mine, s.done)
				}
			}
			c.backgroundFetches.Add(1)
		}
		idx++
	}
	return bg.finish(ctx)
}

// FetchRanges fetches the given ranges of the image (offset, length), in order, into the
// caches, the way FetchAll fetches the whole image: demand reads first, at most half the
// workers. Ranges are fetched exactly (whole chunks where a range covers one), and what the
// caches hold already is skipped. It is the replay of an access profile: each range is one
// file's extent, in the order a workload first read them.
func (c *Chunked) FetchRanges(ctx context.Context, ranges iter.Seq2[int64, int64]) error {
	c.background.Store(true)
	defer c.background.Store(false)
	bg := c.newBackground()
	for off, n := range ranges {
		if off < 0 || n <= 0 || off >= c.size {
			continue
		}
		end := min(off+n, c.size)
		for pos := off; pos < end; {
			if err := bg.alive(ctx); err != nil {
				return err
			}
			if !bg.mayStart() {
				c.pause(ctx)
				continue
			}
			// A piece of up to a chunk's length at a time: a small file that straddles two chunks
			// goes out as one request (its two spans are coalesced), a large one chunk by chunk.
			idx := pos / c.chunk
			stop := min(end, pos+c.chunk)
			if _, whole := c.missing(idx); whole && pos == idx*c.chunk && stop == idx*c.chunk+int64(c.chunkLen(idx)) {
				cl, dropped := c.start(idx, true)
				if dropped {
					c.pause(ctx)
					continue
				}
				if cl != nil {
					bg.mine = append(bg.mine, cl.done)
				}
			} else {
				spans := c.prefetchRange(pos, stop-pos, true)
				for _, s := range spans {
					bg.mine = append(bg.mine, s.done)
				}
				// The next piece waits until this one's request is out, so that requests go out
				// in the order given, not in the order their goroutines happen to run.
				for _, s := range spans {
					select {
					case <-s.sent:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			c.backgroundFetches.Add(1)
			pos = stop
		}
	}
	return bg.finish(ctx)
}

// background is the bookkeeping of one background pass: the fetches it started, until they
// end, and how many it may have in flight.
type background struct {
	c     *Chunked
	limit int
	mine  []<-chan struct{}
}

func (c *Chunked) newBackground() *background {
	return &background{c: c, limit: max(1, c.workers/2)}
}

// alive reports why the pass must stop: its context ended or the layer closed.
func (b *background) alive(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.c.ctx.Err()
}

// mayStart reports whether the pass may start a fetch now: fewer than its limit in flight, no
// demand read waiting for a worker or turned away lately, the storage serving.
func (b *background) mayStart() bool {
	b.mine = running(b.mine)
	c := b.c
	return len(b.mine) < b.limit && c.demandWaiting.Load() == 0 && !c.readerStarved() && c.health.prefetchAllowed()
}

// finish waits for the pass's last fetches, so that a caller sees them cached on return.
func (b *background) finish(ctx context.Context) error {
	for _, done := range b.mine {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ExpectFetchAll says that FetchAll will run soon (a mount starts it after a delay): from now
// on a miss fetches its whole chunk, as during FetchAll, rather than a range that the
// background would then fetch around (see rangeMode). FetchAll ends the mode when it returns.
func (c *Chunked) ExpectFetchAll() { c.wholeImage.Store(true) }

// running keeps the fetches that have not ended.
func running(fetches []<-chan struct{}) []<-chan struct{} {
	keep := fetches[:0]
	for _, done := range fetches {
		select {
		case <-done:
		default:
			keep = append(keep, done)
		}
	}
	return keep
}

// readerStarved reports whether a reader's prefetch hint found no free worker recently.
func (c *Chunked) readerStarved() bool {
	return time.Now().UnixNano()-c.hintDropped.Load() < int64(100*time.Millisecond)
}

// pause waits a moment before the background fetch looks again: a worker frees up within one
// chunk's fetch, and an outage is probed by demand reads, not by this loop.
func (c *Chunked) pause(ctx context.Context) {
	t := time.NewTimer(2 * time.Millisecond)
	if !c.health.prefetchAllowed() {
		t.Reset(500 * time.Millisecond)
	}
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
}

// missing returns the parts of chunk idx that no cache holds and no fetch brings: none when
// it is in memory, being fetched, or whole in the disk cache; whole when nothing of it is
// anywhere; else the gaps between the ranges readers fetched.
func (c *Chunked) missing(idx int64) (gaps [][2]int64, whole bool) {
	c.mu.Lock()
	_, inflight := c.inflight[idx]
	held := inflight || c.mem.Has(idx)
	c.mu.Unlock()
	if held || (c.disk != nil && c.disk.has(idx, c.chunkLen(idx))) {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gapsLocked(idx)
}
