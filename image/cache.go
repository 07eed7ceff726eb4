package image

import (
	"sync"

	"github.com/encfs/encfs/internal/lru"
)

// blockCache is a bounded LRU of immutable, verified entries of one size (plaintext units, or
// tree blocks). Values are never modified after insertion, so a caller may read a returned
// slice without holding the lock.
type blockCache struct {
	mu  sync.Mutex
	lru *lru.Cache[uint64, []byte] // each entry costs 1: the bound is in entries
}

func newBlockCache(bytes int64, entrySize int64) *blockCache {
	return &blockCache{lru: lru.New[uint64, []byte](max(bytes/entrySize, 16), nil)}
}

func (c *blockCache) get(key uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(key)
}

// has reports whether key is cached, without making it the most recently used.
func (c *blockCache) has(key uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Has(key)
}

// put caches an entry; one already cached keeps its first copy (they are equal: both were
// verified) and becomes the most recently used.
func (c *blockCache) put(key uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.lru.Get(key); !ok {
		c.lru.Add(key, data, 1)
	}
}
