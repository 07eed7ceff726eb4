// Package lru is a least-recently-used cache bounded by a total cost (bytes, or one per entry),
// shared by the chunk memory cache of blobio and the block caches of image. It is not safe for
// concurrent use: each user holds its own lock around it, which it needs anyway to keep the
// cache consistent with its other state.
package lru

// Cache maps keys to values, dropping the least recently used entries once the costs of those
// it holds add up to more than its bound. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	max, total int64
	m          map[K]*entry[K, V]
	root       entry[K, V] // root.next is the most recent entry, root.prev the least
	onRemove   func(K, V)
}

type entry[K comparable, V any] struct {
	key        K
	val        V
	cost       int64
	prev, next *entry[K, V]
}

// New returns a cache that holds entries of a total cost of at most max. onRemove, if not
// nil, is called with every entry that leaves the cache: evicted, replaced, removed or
// cleared.
func New[K comparable, V any](max int64, onRemove func(K, V)) *Cache[K, V] {
	c := &Cache[K, V]{max: max, m: make(map[K]*entry[K, V]), onRemove: onRemove}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

// Get returns the value of key and makes it the most recently used.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	e, ok := c.m[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(e)
	c.pushFront(e)
	return e.val, true
}

// Has reports whether key is cached, without making it more recent.
func (c *Cache[K, V]) Has(key K) bool {
	_, ok := c.m[key]
	return ok
}

// Add inserts or replaces key as the most recently used entry, then evicts the least
// recently used ones until the total cost fits. An entry that costs more than the whole
// bound is not kept (added is false, and key's earlier value stays). evicted counts the
// entries evicted to make room.
func (c *Cache[K, V]) Add(key K, val V, cost int64) (added bool, evicted int) {
	if cost > c.max {
		return false, 0
	}
	c.Remove(key)
	e := &entry[K, V]{key: key, val: val, cost: cost}
	c.m[key] = e
	c.pushFront(e)
	c.total += cost
	for c.total > c.max {
		c.drop(c.root.prev)
		evicted++
	}
	return true, evicted
}

// Remove drops key, if it is cached.
func (c *Cache[K, V]) Remove(key K) {
	if e, ok := c.m[key]; ok {
		c.drop(e)
	}
}

// Clear drops every entry, least recently used first.
func (c *Cache[K, V]) Clear() {
	for c.root.prev != &c.root {
		c.drop(c.root.prev)
	}
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int { return len(c.m) }

// Cost is the total cost of the entries, and Max its bound.
func (c *Cache[K, V]) Cost() int64 { return c.total }
func (c *Cache[K, V]) Max() int64  { return c.max }

func (c *Cache[K, V]) drop(e *entry[K, V]) {
	c.unlink(e)
	delete(c.m, e.key)
	c.total -= e.cost
	if c.onRemove != nil {
		c.onRemove(e.key, e.val)
	}
}

func (c *Cache[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &c.root, c.root.next
	c.root.next.prev = e
	c.root.next = e
}

func (c *Cache[K, V]) unlink(e *entry[K, V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}
