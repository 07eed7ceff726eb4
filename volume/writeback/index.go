package writeback

// slotIndex maps slot numbers (offset / slotSize) to arena positions: an open-addressing
// hash table with linear probing, sized once at New, so that the write path never allocates
// (a Go map may grow, or rehash after many deletions).
type slotIndex struct {
	keys []int64 // slot numbers; empty marks a free cell
	vals []int32 // arena positions
	mask uint64
}

const empty = -1

// newSlotIndex makes a table for up to n entries, at most half full.
func newSlotIndex(n int) slotIndex {
	size := 1
	for size < 2*n {
		size *= 2
	}
	x := slotIndex{keys: make([]int64, size), vals: make([]int32, size), mask: uint64(size - 1)}
	for i := range x.keys {
		x.keys[i] = empty
	}
	return x
}

func (x *slotIndex) home(key int64) uint64 {
	return (uint64(key) * 0x9e3779b97f4a7c15 >> 17) & x.mask
}

// find returns the arena position of key, or -1.
func (x *slotIndex) find(key int64) int32 {
	for i := x.home(key); x.keys[i] != empty; i = (i + 1) & x.mask {
		if x.keys[i] == key {
			return x.vals[i]
		}
	}
	return -1
}

// insert adds key, which must not be present; the table never holds more than it was sized for.
func (x *slotIndex) insert(key int64, val int32) {
	i := x.home(key)
	for x.keys[i] != empty {
		i = (i + 1) & x.mask
	}
	x.keys[i], x.vals[i] = key, val
}

// remove deletes key, shifting back the entries after it so that no probe chain breaks.
func (x *slotIndex) remove(key int64) {
	i := x.home(key)
	for x.keys[i] != key {
		if x.keys[i] == empty {
			return
		}
		i = (i + 1) & x.mask
	}
	for j := i; ; {
		j = (j + 1) & x.mask
		if x.keys[j] == empty {
			break
		}
		// The entry at j may move back to i unless its home lies cyclically in (i, j].
		k := x.home(x.keys[j])
		if (i < j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		x.keys[i], x.vals[i] = x.keys[j], x.vals[j]
		i = j
	}
	x.keys[i] = empty
}
