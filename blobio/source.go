// Package blobio is where image bytes come from: the Source interface every backend
// implements, a local file (FileSource, with O_DIRECT where the filesystem allows it), the
// error kinds every remote failure wraps, and the chunk layer in front of a source. It knows
// nothing about the image format: it moves ciphertext.
//
//   - Source and FileSource are in source.go; ErrNotFound, ErrAuth, ErrUnreachable,
//     ErrChanged, ErrBadResponse and *Error in errors.go; IsRemote, Display and Redact name a
//     location without its secrets (location.go).
//   - Chunked (chunked.go) fetches aligned chunks in parallel with deduplication, prefetch and
//     background fetch (background.go), a memory cache (lru.go over internal/lru, buffers from
//     chunkmem.go), an optional disk cache (diskcache.go, diskauto.go) and a storage health
//     breaker (health.go).
//   - The backends are packages of their own: blobio/azure (Azure Blob Storage, with
//     credentials and upload) and blobio/httpsrc (any server that honours Range), sharing
//     blobio/internal/remote (retries, ranged reads); blobio/location opens a location with the
//     backend that serves it.
//   - Tests use azuritetest (a real Azurite) and faultproxy (injected storage faults).
package blobio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Source is a read-only, immutable byte range: an encfs image wherever it is stored.
//
// ReadAt follows io.ReaderAt: it returns len(p) bytes or an error, and io.EOF only when the
// range runs past Size. Implementations are safe for concurrent use. Errors never contain
// secrets (SAS signatures, tokens).
type Source interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// Size is the length of the image in bytes, fixed when the source was opened.
	Size() int64
	// String names the source for logs and errors, with any secret removed.
	String() string
	Close() error
}

// ErrChanged reports that the object behind a source was replaced after it was opened, so that
// bytes of two versions are never mixed.
var ErrChanged = errors.New("the image changed while mounted")

// FileSource reads an image from a local file.
type FileSource struct {
	f    *os.File
	size int64
	// direct is the same file opened with O_DIRECT once useDirectIO succeeded, and memAlign and
	// offAlign the alignment direct reads need of buffer addresses and of offsets and lengths.
	direct             *os.File
	memAlign, offAlign int64
}

// OpenFile opens a local image file.
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return &FileSource{f: f, size: st.Size()}, nil
}

// mountChunks are the fetch options of a local image a mount reads with O_DIRECT: 4 MiB
// chunks prefetched ahead of sequential readers (up to 8 in flight), any other read straight
// from the file (ReadThrough). 4 MiB by measurement (docs/PERFORMANCE.md, "A local image is
// read with O_DIRECT"): the virtio disk of the benchmark machine reads 1 MiB requests much
// more slowly than 4 MiB ones.
var mountChunks = ChunkOptions{ChunkSize: 4 << 20, Workers: 8, CacheBytes: 64 << 20, ReadThrough: true}

// MountMemoryBound is the most memory the chunk layer of ForMount holds, and MountHeapBound
// the part of it on the Go heap (see ChunkOptions.MemoryBound and HeapBound).
func MountMemoryBound() int64 { return mountChunks.MemoryBound() }
func MountHeapBound() int64   { return mountChunks.HeapBound() }

// ForMount returns the layer a mount should read s through; call it before the first read.
// Where the file's filesystem allows direct I/O, that is s reading with O_DIRECT behind a
// prefetching Chunked layer (which then owns s), and ok is true; elsewhere it is nil and ok
// false: read s itself, buffered.
//
// A mount caches the image once, as plaintext in the FUSE page cache. Buffered reads would
// cache its ciphertext as well: twice the memory (charged to the sidecar's cgroup) and one more
// copy per byte. But direct reads get no kernel readahead, hence the prefetching layer.
func (s *FileSource) ForMount() (c *Chunked, ok bool) {
	if !s.useDirectIO() {
		return nil, false
	}
	return NewChunked(s, mountChunks), true
}

// useDirectIO makes aligned reads bypass the page cache (O_DIRECT) and reports whether the
// file's filesystem allows that. Other reads stay buffered.
func (s *FileSource) useDirectIO() bool {
	var stx unix.Statx_t
	if err := unix.Statx(int(s.f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err != nil ||
		stx.Mask&unix.STATX_DIOALIGN == 0 || stx.Dio_mem_align == 0 || stx.Dio_offset_align == 0 {
		return false
	}
	// Reopen the open file itself, not its path, which may name another file by now.
	d, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", s.f.Fd()), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	s.direct, s.memAlign, s.offAlign = d, int64(stx.Dio_mem_align), int64(stx.Dio_offset_align)
	return true
}

// directMin is the smallest read that bypasses the page cache. Smaller reads are an image's
// metadata (index and integrity-tree blocks of 4 KiB, which lie together, so the kernel's
// readahead serves the next ones) and the partial blocks at the edges of small files; read
// directly, each would wait on the disk alone.
const directMin = 64 << 10

// directOK reports whether a read of p at off bypasses the page cache: large enough, aligned
// buffer, offset and length, and wholly inside the file (a short direct read at the end would
// leave the rest to be read at an unaligned offset).
func (s *FileSource) directOK(p []byte, off int64) bool {
	n := int64(len(p))
	return s.direct != nil && n >= directMin && off%s.offAlign == 0 && n%s.offAlign == 0 && off+n <= s.size &&
		int64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))%s.memAlign == 0
}

func (s *FileSource) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	if s.directOK(p, off) {
		n, err := s.direct.ReadAt(p, off)
		if !errors.Is(err, syscall.EINVAL) {
			return n, err
		}
		// The filesystem refused this direct read after all: read it through the cache.
	}
	n, err := s.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

func (s *FileSource) Size() int64    { return s.size }
func (s *FileSource) String() string { return s.f.Name() }

func (s *FileSource) Close() error {
	if s.direct != nil {
		s.direct.Close()
	}
	return s.f.Close()
}
