package blobio

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Span files: range fetches (spans.go) kept in the disk cache beside whole chunks, one file per
// GET, named by image offset and length, in the chunk files' format (data, padding, trailer
// with CRCs). The store accounts and evicts them like chunk files; the index here is only a
// map of where they are, checked against the store at every use.

const spanExt = ".span" + chunkExt

// diskExtent is bytes [off, end) of the image in the disk cache: a whole chunk, or a span file.
type diskExtent struct {
	off, end int64
	chunk    int64 // whole: the chunk's index
	whole    bool
}

// spanPath names the file of the span at off of n bytes.
func (d *diskCache) spanPath(off, n int64) string {
	return filepath.Join(d.sub, fmt.Sprintf("%016x-%x%s", off, n, spanExt))
}

// loadSpans indexes the span files an earlier run left in this source's directory.
func (d *diskCache) loadSpans() {
	entries, _ := os.ReadDir(d.sub)
	d.spanMu.Lock()
	defer d.spanMu.Unlock()
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), spanExt)
		if !ok {
			continue
		}
		var off, n int64
		if _, err := fmt.Sscanf(name, "%x-%x", &off, &n); err != nil || off < 0 || n <= 0 {
			continue
		}
		d.insertSpanLocked(diskExtent{off: off, end: off + n})
	}
}

func (d *diskCache) insertSpanLocked(e diskExtent) {
	idx := e.off / d.chunk
	list := d.spans[idx]
	i := sort.Search(len(list), func(i int) bool { return list[i].off >= e.off })
	if i < len(list) && list[i].off == e.off {
		list[i] = e
		return
	}
	list = append(list, diskExtent{})
	copy(list[i+1:], list[i:])
	list[i] = e
	d.spans[idx] = list
}

// live reports whether the store still holds the span file of e (it may have evicted it).
func (d *diskCache) live(e diskExtent) bool {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	_, ok := d.store.m[d.spanPath(e.off, e.end-e.off)]
	return ok
}

// spanAt finds the span file holding byte pos.
func (d *diskCache) spanAt(pos int64) (diskExtent, bool) {
	idx := pos / d.chunk
	d.spanMu.Lock()
	list := d.spans[idx]
	i := sort.Search(len(list), func(i int) bool { return list[i].end > pos })
	var e diskExtent
	found := i < len(list) && list[i].off <= pos
	if found {
		e = list[i]
	}
	d.spanMu.Unlock()
	if found && !d.live(e) {
		d.dropSpan(e)
		return diskExtent{}, false
	}
	return e, found
}

// nextSpanStart returns where the first span file after pos (in pos's chunk) starts, or limit.
func (d *diskCache) nextSpanStart(pos, limit int64) int64 {
	d.spanMu.Lock()
	defer d.spanMu.Unlock()
	list := d.spans[pos/d.chunk]
	i := sort.Search(len(list), func(i int) bool { return list[i].off > pos })
	if i < len(list) && list[i].off < limit {
		return list[i].off
	}
	return limit
}

func (d *diskCache) dropSpan(e diskExtent) {
	idx := e.off / d.chunk
	d.spanMu.Lock()
	list := d.spans[idx]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(d.spans, idx)
	} else {
		d.spans[idx] = list
	}
	d.spanMu.Unlock()
}

// putSpan stores the span at off; a span that crosses chunks is stored as one file per chunk,
// so that each lies in one chunk's index.
func (d *diskCache) putSpan(off int64, data []byte) error {
	for len(data) > 0 {
		n := min(int64(len(data)), (off/d.chunk+1)*d.chunk-off)
		if err := d.putSpanFile(off, data[:n]); err != nil {
			return err
		}
		off, data = off+n, data[n:]
	}
	return nil
}

func (d *diskCache) putSpanFile(off int64, data []byte) error {
	if err := d.putFile(d.spanPath(off, int64(len(data))), fmt.Sprintf("span-%d", off), data); err != nil {
		return err
	}
	d.spanMu.Lock()
	d.insertSpanLocked(diskExtent{off: off, end: off + int64(len(data))})
	d.spanMu.Unlock()
	return nil
}

// readExtent copies the image bytes at off, which lie in e, into p.
func (d *diskCache) readExtent(e diskExtent, p []byte, off int64) bool {
	if e.whole {
		return d.readRange(e.chunk, int(e.end-e.off), p, off-e.off)
	}
	path := d.spanPath(e.off, e.end-e.off)
	if !d.readFileRange(path, int(e.end-e.off), p, off-e.off) {
		d.dropSpan(e)
		return false
	}
	now := time.Now()
	d.store.touch(path, now)
	return true
}

// removeSpans drops the span files overlapping [off, end).
func (d *diskCache) removeSpans(off, end int64) {
	var gone []diskExtent
	d.spanMu.Lock()
	for idx := off / d.chunk; idx <= (end-1)/d.chunk; idx++ {
		for _, e := range d.spans[idx] {
			if e.off < end && off < e.end {
				gone = append(gone, e)
			}
		}
	}
	d.spanMu.Unlock()
	for _, e := range gone {
		d.dropSpan(e)
		d.store.forget(d.spanPath(e.off, e.end-e.off))
	}
}
