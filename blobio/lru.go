package blobio

import "container/list"

// chunkBuf is one fetched chunk. Its buffer is recycled for a later fetch once nobody uses it:
// refs counts the users (the memory cache, each reader copying out of it, the fetch writing it
// to the disk cache). refs is guarded by Chunked.mu. A mapped buffer (mapChunk) is unmapped
// when it is not recycled; any other is left to the garbage collector.
type chunkBuf struct {
	data     []byte
	refs     int
	mapped   bool
	fromDisk bool // read from the disk cache, not fetched
}

// memLRU is the in-memory chunk cache: least recently used out first, bounded by bytes. It
// holds one reference on each chunk it keeps and hands it back to release when the chunk
// leaves. It is not safe for concurrent use; Chunked holds its mutex around it.
type memLRU struct {
	max     int64
	total   int64
	ll      *list.List // front = most recent; values *memEntry
	m       map[int64]*list.Element
	release func(*chunkBuf)
}

type memEntry struct {
	idx int64
	buf *chunkBuf
}

func newMemLRU(max int64, release func(*chunkBuf)) *memLRU {
	return &memLRU{max: max, ll: list.New(), m: map[int64]*list.Element{}, release: release}
}

func (c *memLRU) get(idx int64) (*chunkBuf, bool) {
	e, ok := c.m[idx]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*memEntry).buf, true
}

// has reports whether chunk idx is cached, without making it more recent.
func (c *memLRU) has(idx int64) bool {
	_, ok := c.m[idx]
	return ok
}

// add inserts a chunk, taking a reference on it, and evicts until the total fits; a chunk
// larger than the whole cache is not kept (and no reference taken). It returns how many chunks
// were evicted.
func (c *memLRU) add(idx int64, b *chunkBuf) int {
	if int64(len(b.data)) > c.max {
		return 0
	}
	c.remove(idx)
	b.refs++
	c.m[idx] = c.ll.PushFront(&memEntry{idx: idx, buf: b})
	c.total += int64(len(b.data))
	n := 0
	for c.total > c.max {
		c.removeElem(c.ll.Back())
		n++
	}
	return n
}

// clear drops every chunk.
func (c *memLRU) clear() {
	for c.ll.Len() > 0 {
		c.removeElem(c.ll.Back())
	}
}

func (c *memLRU) remove(idx int64) {
	if e, ok := c.m[idx]; ok {
		c.removeElem(e)
	}
}

func (c *memLRU) removeElem(e *list.Element) {
	me := e.Value.(*memEntry)
	c.ll.Remove(e)
	delete(c.m, me.idx)
	c.total -= int64(len(me.buf.data))
	c.release(me.buf)
}
