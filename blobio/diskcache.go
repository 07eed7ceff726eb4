package blobio

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
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
)

// The on-disk chunk cache. Layout: DIR/<hash of source identity and chunk size>/<index>.chunk,
// each file the chunk's ciphertext followed by an 8-byte trailer (magic, CRC-32C). The
// identity includes the blob's ETag, so a replaced blob never meets chunks of the old one; the
// CRC turns a torn or corrupted file into a miss instead of a verification failure on every
// read. Files are written to a temporary name and renamed, so a crash leaves whole chunks or
// nothing. One process per directory: a second process would not see the first's accounting.

const (
	diskMagic   = "ENC1"
	diskTrailer = 8
	chunkExt    = ".chunk"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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
		return nil, fmt.Errorf("disk cache: %w; choose a writable directory for --disk-cache", err)
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
		s.m[f.path] = s.ll.PushFront(&diskEntry{f.path, f.size})
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
}

func newDiskCache(dir string, max int64, identity string, chunkSize int64, log *slog.Logger) (*diskCache, error) {
	st, err := openDiskStore(dir, max, log)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("encfs chunk cache v1\x00%s\x00%d", identity, chunkSize)))
	sub := filepath.Join(st.dir, hex.EncodeToString(h[:16]))
	if err := os.MkdirAll(sub, 0o700); err != nil {
		st.release()
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	return &diskCache{store: st, sub: sub}, nil
}

func (d *diskCache) path(idx int64) string {
	return filepath.Join(d.sub, fmt.Sprintf("%012d%s", idx, chunkExt))
}

// has reports whether chunk idx of n bytes is in the cache's accounting, without reading it.
func (d *diskCache) has(idx int64, n int) bool {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	e, ok := d.store.m[d.path(idx)]
	return ok && e.Value.(*diskEntry).size == int64(n+diskTrailer)
}

// get fills dst with chunk idx if it is cached whole and intact.
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
	var tr [diskTrailer]byte
	f, err := os.Open(p)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() != int64(want+diskTrailer) {
			err = fmt.Errorf("%d bytes, want %d", st.Size(), want+diskTrailer)
		}
		if err == nil {
			_, err = io.ReadFull(f, dst)
		}
		if err == nil {
			_, err = io.ReadFull(f, tr[:])
		}
		f.Close()
	}
	if err != nil || string(tr[:4]) != diskMagic || binary.LittleEndian.Uint32(tr[4:]) != crc32.Checksum(dst, castagnoli) {
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			d.store.log.Warn("disk cache: dropping a damaged chunk file", "path", p)
		}
		d.store.forget(p)
		return false
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // the LRU order for the next run
	return true
}

// put stores a chunk atomically (temporary file, then rename) and evicts to the bound.
func (d *diskCache) put(idx int64, data []byte) error {
	size := int64(len(data) + diskTrailer)
	if size > d.store.max {
		return nil
	}
	f, err := os.CreateTemp(d.sub, ".tmp-*")
	if err != nil {
		return err
	}
	var tr [diskTrailer]byte
	copy(tr[:4], diskMagic)
	binary.LittleEndian.PutUint32(tr[4:], crc32.Checksum(data, castagnoli))
	_, err = f.Write(data)
	if err == nil {
		_, err = f.Write(tr[:])
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	p := d.path(idx)
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
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
		s.m[p] = s.ll.PushFront(&diskEntry{p, size})
	}
	s.total += size
	s.evictLocked()
	s.mu.Unlock()
	return nil
}

func (d *diskCache) remove(idx int64) { d.store.forget(d.path(idx)) }

func (d *diskCache) close() { d.store.release() }
