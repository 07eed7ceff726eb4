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
	var mine []*call // the background's fetches, until they end
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
		mine = running(mine)
		if len(mine) >= limit || c.demandWaiting.Load() > 0 || c.readerStarved() || !c.health.prefetchAllowed() {
			c.pause(ctx)
			continue
		}
		cl, dropped := c.start(idx, true)
		if dropped {
			c.pause(ctx) // every worker the background may take is busy
			continue
		}
		if cl != nil {
			mine = append(mine, cl)
			c.backgroundFetches.Add(1)
		}
		idx++
	}
	// Wait for the last fetches, so that a caller sees the image wholly cached on return.
	for _, cl := range mine {
		select {
		case <-cl.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// running keeps the calls that have not ended.
func running(calls []*call) []*call {
	keep := calls[:0]
	for _, cl := range calls {
		select {
		case <-cl.done:
		default:
			keep = append(keep, cl)
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

// cachedOrDue reports whether chunk idx is in memory, being fetched, or whole in the disk
// cache: the background fetch then has nothing to do for it.
func (c *Chunked) cachedOrDue(idx int64) bool {
	c.mu.Lock()
	_, inflight := c.inflight[idx]
	held := inflight || c.mem.Has(idx)
	c.mu.Unlock()
	return held || (c.disk != nil && c.disk.has(idx, c.chunkLen(idx)))
}
