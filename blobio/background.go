package blobio

import (
	"context"
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
	limit := max(1, c.workers/2)
	var mine []<-chan struct{} // the background's fetches, until they end
	last := (c.size - 1) / c.chunk
	for idx := int64(0); idx <= last; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		gaps, whole := c.missing(idx)
		if len(gaps) == 0 {
			idx++
			continue
		}
		mine = running(mine)
		if len(mine) >= limit || c.demandWaiting.Load() > 0 || c.readerStarved() || !c.health.prefetchAllowed() {
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
				mine = append(mine, cl.done)
				c.backgroundFetches.Add(1)
			}
		} else {
			// Readers fetched ranges of this chunk already: fetch only what lies between them,
			// so that no byte is fetched twice.
			for _, g := range gaps {
				for _, s := range c.prefetchRange(g[0], g[1]-g[0], true) {
					mine = append(mine, s.done)
				}
			}
			c.backgroundFetches.Add(1)
		}
		idx++
	}
	// Wait for the last fetches, so that a caller sees the image wholly cached on return.
	for _, done := range mine {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

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
