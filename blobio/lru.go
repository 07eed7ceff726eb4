package blobio

import "container/list"

// memLRU is the in-memory chunk cache: least recently used out first, bounded by bytes.
// It is not safe for concurrent use; Chunked holds its mutex around it.
type memLRU struct {
	max   int64
	total int64
	ll    *list.List // front = most recent; values *memEntry
	m     map[int64]*list.Element
}

type memEntry struct {
	idx  int64
	data []byte
}

func newMemLRU(max int64) *memLRU {
	return &memLRU{max: max, ll: list.New(), m: map[int64]*list.Element{}}
}

func (c *memLRU) get(idx int64) ([]byte, bool) {
	e, ok := c.m[idx]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*memEntry).data, true
}

// add inserts a chunk and evicts until the total fits; a chunk larger than the whole cache is
// not kept. It returns how many chunks were evicted.
func (c *memLRU) add(idx int64, data []byte) int {
	if int64(len(data)) > c.max {
		return 0
	}
	if e, ok := c.m[idx]; ok {
		c.total -= int64(len(e.Value.(*memEntry).data))
		e.Value.(*memEntry).data = data
		c.total += int64(len(data))
		c.ll.MoveToFront(e)
	} else {
		c.m[idx] = c.ll.PushFront(&memEntry{idx: idx, data: data})
		c.total += int64(len(data))
	}
	n := 0
	for c.total > c.max {
		c.removeElem(c.ll.Back())
		n++
	}
	return n
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
	c.total -= int64(len(me.data))
}
