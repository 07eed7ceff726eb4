package image

import (
	"container/list"
	"sync"
)

// blockCache is a byte-bounded LRU of immutable, verified 4 KiB blocks. Values are never
// modified after insertion, so a caller may read a returned slice without holding the lock.
type blockCache struct {
	mu       sync.Mutex
	capacity int // in blocks
	ll       *list.List
	items    map[uint64]*list.Element
}

type cacheEntry struct {
	key  uint64
	data []byte
}

func newBlockCache(bytes int64) *blockCache {
	c := int(bytes / BlockSize)
	if c < 16 {
		c = 16
	}
	return &blockCache{capacity: c, ll: list.New(), items: make(map[uint64]*list.Element)}
}

func (c *blockCache) get(key uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).data, true
	}
	return nil, false
}

func (c *blockCache) put(key uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, data: data})
	for c.ll.Len() > c.capacity {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}
