package blobio

import "github.com/encfs/encfs/internal/lru"

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
	*lru.Cache[int64, *chunkBuf]
}

func newMemLRU(max int64, release func(*chunkBuf)) memLRU {
	return memLRU{lru.New(max, func(_ int64, b *chunkBuf) { release(b) })}
}

// add inserts a chunk, taking a reference on it, and evicts until the total fits; a chunk
// larger than the whole cache is not kept (and no reference taken). It returns how many chunks
// were evicted.
func (c memLRU) add(idx int64, b *chunkBuf) int {
	if int64(len(b.data)) > c.Max() {
		return 0
	}
	b.refs++
	_, evicted := c.Add(idx, b, int64(len(b.data)))
	return evicted
}
