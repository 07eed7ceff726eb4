package sidecar

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blockdev"
	"github.com/encfs/encfs/image"
)

// memoryOverhead is what the sidecar uses beyond the caches it is configured with: the Go
// runtime and its code, FUSE request buffers (up to 64 requests of 1 MiB in flight), HTTP
// connections and TLS state, directories loaded by lookups.
const memoryOverhead = 160 << 20

// volumeMemory is what a mounted volume adds: blockdev's requests in flight (each in a FUSE
// request buffer of up to 1 MiB) and as much again of the volume's working buffers, plus its
// integrity tree nodes in memory.
const volumeMemory = 2*blockdev.MaxInFlight<<20 + 32<<20

// memoryBudget is the memory the mounts of specs stay within (docs/OPERATIONS.md, "Memory"):
// for each mount its plaintext and tree caches and its chunk layer's buffers, plus
// memoryOverhead once. heap is the part of it on the Go heap; the rest (whole chunk buffers)
// lives in mappings of its own that the Go runtime does not count.
func memoryBudget(specs []MountSpec) (total, heap int64) {
	total, heap = memoryOverhead, memoryOverhead
	for _, s := range specs {
		if s.Volume != nil {
			total += volumeMemory
			heap += volumeMemory
			if blobio.IsRemote(s.Image) && !s.Volume.ReadOnly {
				total += pageBlobMemory
				heap += pageBlobMemory
			}
			continue
		}
		caches := image.Options{CacheBytes: s.CacheBytes}.MemoryBound()
		total += caches
		heap += caches
		if blobio.IsRemote(s.Image) {
			total += s.Source.Chunk.MemoryBound()
			heap += s.Source.Chunk.HeapBound()
		} else {
			total += blobio.MountMemoryBound()
			heap += blobio.MountHeapBound()
		}
	}
	return total, heap
}

// setMemoryLimit gives the Go runtime a soft memory limit of heap bytes, so that the garbage
// collector keeps the heap near what the caches hold instead of letting it grow to twice the
// live heap (GOGC's default), which can take the process past its budget. A GOMEMLIMIT set in
// the environment is the operator's choice and stays.
func setMemoryLimit(heap int64, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info("GOMEMLIMIT is set; the Go memory limit is left as it says")
		return
	}
	debug.SetMemoryLimit(heap)
}
