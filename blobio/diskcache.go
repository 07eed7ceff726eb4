package blobio

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// The on-disk chunk cache. Layout: DIR/<hash of source identity and chunk size>/<index>.chunk,
// each file the chunk's ciphertext, zero-padded to a multiple of diskAlign. The identity
// includes the blob's ETag, so a replaced blob never meets chunks of the old one. Files are
// written to a temporary name and renamed, so a crash leaves whole chunks or nothing. One
// process per directory: a second process would not see the first's accounting.
//
// The files carry no checksums of their own: every byte taken from them is verified against
// the image's integrity tree at every use, and a cached copy that fails is dropped and fetched
// again from storage (Chunked.Invalidate, counted as encfs_disk_cache_corrupt_total). Earlier
// versions kept a CRC-32C per 64 KiB segment in a trailer block; checking them was a tenth of
// the daemon's CPU in a shuffled epoch, for a guarantee verification gives anyway.
//
// Whole chunks are written and read with O_DIRECT (hence the padding): through the page cache,
// copying every fetched chunk into fresh page-cache pages was half of the daemon's CPU while it
// fetched a whole image in the background, and the cached copy doubled the memory the image
// took.

const (
	diskAlign = 4096 // direct I/O's unit: offsets, lengths and buffers aligned to it
	chunkExt  = ".chunk"
)

// diskFileSize is the size of the file of an n-byte chunk.
func diskFileSize(n int) int64 { return int64((n + diskAlign - 1) / diskAlign * diskAlign) }

// alignedBuf returns a zeroed n-byte buffer aligned for direct I/O.
func alignedBuf(n int) []byte {
	b := make([]byte, n+diskAlign)
	off := (diskAlign - int(uintptr(unsafe.Pointer(&b[0]))%diskAlign)) % diskAlign
	return b[off : off+n : off+n]
}

// directOK reports whether b can be read or written with O_DIRECT.
func directOK(b []byte) bool {
	return len(b) > 0 && len(b)%diskAlign == 0 && uintptr(unsafe.Pointer(&b[0]))%diskAlign == 0
}

// openMaybeDirect opens a file with O_DIRECT added to flag when direct is set and the
// filesystem allows it (tmpfs, for one, does not), and says whether it did.
func openMaybeDirect(name string, flag int, direct bool) (*os.File, bool, error) {
	if direct {
		f, err := os.OpenFile(name, flag|syscall.O_DIRECT, 0o600)
		if !errors.Is(err, syscall.EINVAL) {
			return f, err == nil, err
		}
	}
	f, err := os.OpenFile(name, flag, 0o600)
	return f, false, err
}

// diskStore is one cache directory with its LRU accounting, shared by every Chunked in the
// process that uses the same directory.
type diskStore struct {
	dir   string
	log   *slog.Logger
	mu    sync.Mutex
	max   int64 // the bound asked for, lowered when the filesystem fills up first
	total int64
	ll    *list.List // front = most recent; values *diskEntry
	m     map[string]*list.Element
	refs  int
	full  bool // the filesystem ran out of space once: logged, and max lowered
}

type diskEntry struct {
	path string
	size int64
}

var (
	diskStoresMu sync.Mutex
	diskStores   = map[string]*diskStore{}
)

// openDiskStore opens (or joins) the cache at dir, bounded by max bytes. At first open it
// scans what earlier runs left, oldest first by modification time (which hits refresh).
func openDiskStore(dir string, max int64, log *slog.Logger) (*diskStore, error) {
	if max <= 0 {
		return nil, fmt.Errorf("disk cache %s: give a size bound greater than zero", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	diskStoresMu.Lock()
	defer diskStoresMu.Unlock()
	if s, ok := diskStores[abs]; ok {
		s.refs++
		if max < s.max {
			s.max = max
		}
		return s, nil
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiskCache, err)
	}
	s := &diskStore{dir: abs, log: log, max: max, ll: list.New(), m: map[string]*list.Element{}, refs: 1}
	type found struct {
		path  string
		size  int64
		mtime time.Time
	}
	var files []found
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			_ = os.Remove(p) // left by a crash mid-write
			return nil
		}
		if !strings.HasSuffix(d.Name(), chunkExt) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		files = append(files, found{p, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk cache %s: %w", abs, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mtime.Before(files[j].mtime) })
	for _, f := range files {
		s.m[f.path] = s.ll.PushFront(&diskEntry{path: f.path, size: f.size})
		s.total += f.size
	}
	s.evictLocked()
	diskStores[abs] = s
	return s, nil
}

func (s *diskStore) release() {
	diskStoresMu.Lock()
	defer diskStoresMu.Unlock()
	s.refs--
	if s.refs == 0 {
		delete(diskStores, s.dir)
	}
}

func (s *diskStore) evictLocked() {
	for s.total > s.max && s.ll.Len() > 0 {
		e := s.ll.Back()
		de := e.Value.(*diskEntry)
		s.ll.Remove(e)
		delete(s.m, de.path)
		s.total -= de.size
		_ = os.Remove(de.path)
	}
}

// bound is the size bound in force.
func (s *diskStore) bound() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// bytes is what the cache holds now.
func (s *diskStore) bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// shrinkToFit lowers the bound below what the cache holds when the filesystem ran out of
// space before the bound was reached (a bound larger than the free space, or another user of
// the filesystem), so that the cache keeps working within what there is. It logs once.
func (s *diskStore) shrinkToFit(chunk int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.max
	// The file that failed did not fit beside what the cache holds: keep room for one.
	s.max = max(s.total-chunk, 0)
	s.evictLocked()
	if !s.full {
		s.full = true
		s.log.Warn("disk cache: the filesystem is full; shrinking the cache to fit (logged once)",
			"dir", s.dir, "bound_was", old, "bound_now", s.max)
	}
}

// holds reports whether the store accounts a file at path of the given size.
func (s *diskStore) holds(path string, size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[path]
	return ok && e.Value.(*diskEntry).size == size
}

func (s *diskStore) forget(path string) {
	s.mu.Lock()
	if e, ok := s.m[path]; ok {
		s.ll.Remove(e)
		delete(s.m, path)
		s.total -= e.Value.(*diskEntry).size
	}
	s.mu.Unlock()
	_ = os.Remove(path)
}

// diskCache is one source's view of a diskStore.
type diskCache struct {
	store *diskStore
	sub   string
	chunk int64

	spanMu sync.Mutex
	spans  map[int64][]diskExtent // span files by chunk index, sorted by offset (diskspans.go)
}

func newDiskCache(dir string, max int64, identity string, chunkSize int64, log *slog.Logger) (*diskCache, error) {
	st, err := openDiskStore(dir, max, log)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("encfs chunk cache v2\x00%s\x00%d", identity, chunkSize)))
	sub := filepath.Join(st.dir, hex.EncodeToString(h[:16]))
	if err := os.MkdirAll(sub, 0o700); err != nil {
		st.release()
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	d := &diskCache{store: st, sub: sub, chunk: chunkSize, spans: map[int64][]diskExtent{}}
	d.loadSpans()
	return d, nil
}

func (d *diskCache) path(idx int64) string {
	return filepath.Join(d.sub, fmt.Sprintf("%012d%s", idx, chunkExt))
}

// has reports whether chunk idx of n bytes is in the cache's accounting, without reading it.
func (d *diskCache) has(idx int64, n int) bool {
	return d.store.holds(d.path(idx), diskFileSize(n))
}

// get fills dst with chunk idx if it is cached whole.
func (d *diskCache) get(idx int64, dst []byte) bool {
	p := d.path(idx)
	d.store.mu.Lock()
	e, ok := d.store.m[p]
	if ok {
		d.store.ll.MoveToFront(e)
	}
	d.store.mu.Unlock()
	if !ok {
		return false
	}
	want := len(dst)
	f, _, err := openMaybeDirect(p, os.O_RDONLY, directOK(dst))
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() != diskFileSize(want) {
			err = fmt.Errorf("%d bytes, want %d", st.Size(), diskFileSize(want))
		}
		if err == nil {
			_, err = io.ReadFull(f, dst)
		}
		f.Close()
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.store.log.Warn("disk cache: dropping a damaged chunk file", "path", p, "err", err)
		}
		d.store.forget(p)
		return false
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // the LRU order for the next run
	return true
}

// readRange reads p from offset off of cached chunk idx (n bytes long).
func (d *diskCache) readRange(idx int64, n int, p []byte, off int64) bool {
	return d.readFileRange(d.path(idx), n, p, off)
}

// readFileRange reads p from offset off of the cached file path holding n bytes.
//
// It reads with O_DIRECT, as chunks are written, into p or a reused aligned buffer. A shuffled
// epoch reads every file of a dataset once from here, in random order; through the page cache
// each small read started the disk's readahead (megabytes) around it, and the daemon spent more
// CPU on those pages, and on allocating and zeroing a fresh buffer per read, than on decrypting.
func (d *diskCache) readFileRange(path string, n int, p []byte, off int64) bool {
	if off < 0 || off+int64(len(p)) > int64(n) || !d.store.holds(path, diskFileSize(n)) {
		return false
	}
	f, _, err := openMaybeDirect(path, os.O_RDONLY, true)
	if err != nil {
		d.store.forget(path)
		return false
	}
	defer f.Close()
	// A read of whole aligned blocks into an aligned buffer (the image reads whole verification
	// units into such buffers) goes straight into p: copying from a bounce buffer was 4% of the
	// daemon's CPU in a shuffled epoch of 2 MiB files. Any other reads the aligned blocks around
	// it (the end of a short last chunk is padded on disk, diskFileSize) and copies.
	buf, lo := p, off
	bounce := off%diskAlign != 0 || !directOK(p)
	if bounce {
		lo = off / diskAlign * diskAlign
		hi := (off + int64(len(p)) + diskAlign - 1) / diskAlign * diskAlign
		buf = getAligned(int(hi - lo))
		defer putAligned(buf)
	}
	if _, err := f.ReadAt(buf, lo); err != nil {
		d.store.log.Warn("disk cache: dropping a damaged chunk file", "path", path, "err", err)
		d.store.forget(path)
		return false
	}
	if bounce {
		copy(p, buf[off-lo:])
	}
	return true
}

// alignedPools hold reusable aligned buffers by size class: class c holds buffers of
// diskAlign<<c bytes.
var alignedPools [16]sync.Pool

// getAligned returns a buffer of n bytes aligned for direct I/O, reused when one of its size
// class is free. Its contents are whatever it last held.
func getAligned(n int) []byte {
	c := 0
	for diskAlign<<c < n {
		c++
	}
	if c < len(alignedPools) {
		if b, ok := alignedPools[c].Get().(*[]byte); ok {
			return (*b)[:n]
		}
	}
	return alignedBuf(diskAlign << c)[:n]
}

// putAligned gives back a buffer from getAligned.
func putAligned(b []byte) {
	b = b[:cap(b)]
	c := 0
	for diskAlign<<c < len(b) {
		c++
	}
	if c < len(alignedPools) && diskAlign<<c == len(b) {
		alignedPools[c].Put(&b)
	}
}

// touch makes path the most recently used file of the store.
func (s *diskStore) touch(path string, now time.Time) {
	s.mu.Lock()
	if e, ok := s.m[path]; ok {
		s.ll.MoveToFront(e)
	}
	s.mu.Unlock()
	_ = os.Chtimes(path, now, now)
}

// put stores a chunk atomically (temporary file, then rename) and evicts to the bound. Span
// files inside the chunk are then redundant and removed.
func (d *diskCache) put(idx int64, data []byte) error {
	if err := d.putFile(d.path(idx), fmt.Sprint(idx), data); err != nil {
		return err
	}
	d.removeSpans(idx*d.chunk, idx*d.chunk+int64(len(data)))
	return nil
}

// putFile writes data as the cache file p (tmpTag names its temporary file), then accounts it.
func (d *diskCache) putFile(p, tmpTag string, data []byte) error {
	size := diskFileSize(len(data))
	if size > d.store.max {
		return nil
	}
	tmp := filepath.Join(d.sub, fmt.Sprintf(".tmp-%s-%d", tmpTag, time.Now().UnixNano()))
	err := writeChunkFile(tmp, data)
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			d.store.shrinkToFit(size)
		}
		return err
	}
	s := d.store
	s.mu.Lock()
	if e, ok := s.m[p]; ok {
		s.total -= e.Value.(*diskEntry).size
		e.Value.(*diskEntry).size = size
		s.ll.MoveToFront(e)
	} else {
		s.m[p] = s.ll.PushFront(&diskEntry{path: p, size: size})
	}
	s.total += size
	s.evictLocked()
	s.mu.Unlock()
	return nil
}

// writeChunkFile writes one chunk file: the data and its padding. A whole chunk from the
// layer's aligned buffers goes with O_DIRECT; anything else through the page cache.
func writeChunkFile(name string, data []byte) error {
	f, direct, err := openMaybeDirect(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, directOK(data))
	if err != nil {
		return err
	}
	var pad []byte
	if rem := len(data) % diskAlign; rem != 0 {
		pad = make([]byte, diskAlign-rem)
	}
	_, err = f.Write(data)
	if err == nil && pad != nil {
		_, err = f.Write(pad)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil && direct && errors.Is(err, syscall.EINVAL) {
		// The filesystem took O_DIRECT at open but not these writes: once more, buffered.
		_ = os.Remove(name)
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.Write(data)
			if err == nil && pad != nil {
				_, err = f.Write(pad)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	return err
}

func (d *diskCache) remove(idx int64) { d.store.forget(d.path(idx)) }

func (d *diskCache) close() { d.store.release() }
