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
// and no reader's readahead hint was turned away in the last 100 ms, and it takes at most
// Workers-1 workers. It pauses while the storage is not serving (an outage,
// or the breaker open) and carries on when it is again. The chunks it brings are verified
// when they are read, like any other.
func (c *Chunked) FetchAll(ctx context.Context) error {
	c.background.Store(true)
	defer c.background.Store(false)
	last := (c.size - 1) / c.chunk
	for idx := int64(0); idx <= last; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if c.cachedOrDue(idx) {
			idx++
			continue
		}
		if c.demandWaiting.Load() > 0 || c.readerStarved() || !c.health.prefetchAllowed() {
			c.pause(ctx)
			continue
		}
		if _, dropped := c.start(idx, true); dropped {
			c.pause(ctx) // every worker the background may take is busy
			continue
		}
		c.backgroundFetches.Add(1)
		idx++
	}
	// Wait for the last fetches, so that a caller sees the image wholly cached on return.
	for idx := max(0, last-int64(c.workers)); idx <= last; idx++ {
		c.mu.Lock()
		cl := c.inflight[idx]
		c.mu.Unlock()
		if cl != nil {
			select {
			case <-cl.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
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

// cachedOrDue reports whether chunk idx is in memory, being fetched, or whole in the disk
// cache: the background fetch then has nothing to do for it.
func (c *Chunked) cachedOrDue(idx int64) bool {
	c.mu.Lock()
	_, inflight := c.inflight[idx]
	held := inflight || c.mem.Has(idx)
	c.mu.Unlock()
	return held || (c.disk != nil && c.disk.has(idx, c.chunkLen(idx)))
}
