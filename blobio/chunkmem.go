package blobio

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Chunk buffers whose size is a multiple of 2 MiB live outside the Go heap, each in its own
// anonymous mapping aligned to 2 MiB and advised for transparent huge pages (MADV_HUGEPAGE,
// which Linux honours with transparent_hugepage set to "madvise" or "always").
//
// Why: a local image is read with O_DIRECT into these buffers. Into 4 KiB pages, one 4 MiB
// read is 1,024 pages that the kernel pins and maps one by one, and more segments than one
// request of a virtio disk takes (254), so it goes out as five requests; into huge pages it
// is two pages and one request, which made direct reads markedly faster on the benchmark VM
// (docs/PERFORMANCE.md, "Chunk buffers in 2 MiB-aligned mappings"). A socket writing a
// remote chunk into them takes fewer TLB misses as well. The Go heap cannot promise either
// the alignment or the advice, and its scavenger may split the pages again.

const hugePageSize = 2 << 20

// mappedChunks counts the live mappings, for the tests that check none is leaked.
var mappedChunks atomic.Int64

// mapChunk returns an n-byte buffer in a mapping of its own, or nil when n is not a multiple
// of hugePageSize or the mapping fails; the caller then allocates on the heap. The buffer must
// be given back with unmapChunk, and not used after.
func mapChunk(n int) []byte {
	if n <= 0 || n%hugePageSize != 0 {
		return nil
	}
	// Map one huge page more than needed and trim the unaligned ends.
	size := uintptr(n + hugePageSize)
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	head := (hugePageSize - uintptr(p)%hugePageSize) % hugePageSize
	if head > 0 {
		_ = unix.MunmapPtr(p, head)
	}
	if tail := size - head - uintptr(n); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(p, head+uintptr(n)), tail)
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, head)), n)
	// Without huge pages (advice refused, THP off or no 2 MiB page free) the buffer still works.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	mappedChunks.Add(1)
	return b
}

// unmapChunk releases a buffer from mapChunk.
func unmapChunk(b []byte) {
	_ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
	mappedChunks.Add(-1)
}
