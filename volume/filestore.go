package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileStore is a Store in a local file, for development and for volumes on local disks. A
// writer holds flock(LOCK_EX) on the file for as long as it is open, a reader LOCK_SH, so a
// second writer (or a writer while readers are open) is refused with ErrLocked. The writer
// records who it is (pid, host, start time) in a sidecar file, path + ".lock", which the
// refusal quotes; the lock itself is the flock, so a stale sidecar left by a crash is harmless.
type FileStore struct {
	f        *os.File
	path     string
	readOnly bool
	size     atomic.Int64

	// direct is the file opened with O_DIRECT (writers only; nil where the filesystem refuses
	// it, as tmpfs does). Large aligned writes go through it, past the page cache: they reach
	// the disk as they are written instead of waiting as dirty pages for writeback, and the
	// commit's fdatasync (during which the device above admits no write) is left only the
	// disk's cache flush and the small writes. Against buffered writes with early writeback,
	// random 4 KiB writes on a sparse volume rose from about 14,400 to 21,300 per second and
	// sequential writes from 289 to 410 MB/s (medians of three alternating rounds,
	// docs/bench/2026-11-30-0712-direct-writes.md): ext4 above the loop device writes its
	// journal in large sequential writes even while the application writes at random.
	direct *os.File

	// Early writeback (writers only): what is written is handed to the kernel's writeback as it
	// accumulates, so that Flush's fdatasync finds little left to write. Left to itself the kernel
	// starts writing a file's dirty pages only after 30 seconds or at 10% of memory dirty, which
	// costs twice. (1) Flush is the volume's commit, and while it runs the FUSE file above the
	// volume admits no write (the kernel holds the file's inode lock through a FUSE fsync): each
	// commit would stand the device still while it writes everything since the previous one. (2)
	// This file's dirty pages count against the same system-wide dirty limit as the filesystem's
	// above the loop device, whose writers the kernel throttles when the sum is high: the volume's
	// own backlog would slow the application writing to it. Large writes (sequential ones) go
	// through direct where they can; where not, they start the writeback of their own ranges
	// every writebackEvery bytes. Small ones (random ones) start that of the whole file a while
	// after the first of them (see filestore_writeback.go).
	unstarted byteRanges    // the ranges of large writes since the last writeback was started
	small     atomic.Int64  // bytes of small writes since the last writeback of the whole file
	started   []byteRange   // the ranges the writeback goroutine last handed to the kernel, for tests
	starts    atomic.Int64  // writebacks of large writes' ranges started, for tests
	kick      chan struct{} // wakes the writeback goroutine for large writes
	smallKick chan struct{} // wakes it for the first small write since the last whole-file start
	stop      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the writeback goroutine has returned
	closeOnce sync.Once
}

// lockSuffix names the sidecar file in which a writer records itself.
const lockSuffix = ".lock"

// CreateFileStore creates path (which must not exist) as a sparse file of size bytes and opens
// it for writing. Create then resizes it to what the volume format needs.
func CreateFileStore(path string, size int64) (*FileStore, error) {
	if size < 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("store size %d is not a multiple of %d", size, PageSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	s, err := lockFile(f, path, false)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		s.Close()
		return nil, err
	}
	s.size.Store(size)
	return s, nil
}

// OpenFileStore opens an existing store file, for writing unless readOnly.
func OpenFileStore(path string, readOnly bool) (*FileStore, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	s, err := lockFile(f, path, readOnly)
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.size.Store(st.Size())
	return s, nil
}

func lockFile(f *os.File, path string, readOnly bool) (*FileStore, error) {
	how := unix.LOCK_EX
	if readOnly {
		how = unix.LOCK_SH
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockedError{Store: path, Holder: lockHolder(path, readOnly)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	s := &FileStore{f: f, path: path, readOnly: readOnly}
	if !readOnly {
		s.kick, s.smallKick = make(chan struct{}, 1), make(chan struct{}, 1)
		s.stop, s.stopped = make(chan struct{}), make(chan struct{})
		if d, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
			s.direct = d
		} // else written through the page cache, with early writeback
		go s.writeback()
		host, _ := os.Hostname()
		info := fmt.Sprintf("pid %d on host %s since %s", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
		// Best effort: the flock is the lock, the sidecar only names its holder.
		_ = os.WriteFile(path+lockSuffix, []byte(info+"\n"), 0o644)
	}
	return s, nil
}

// lockHolder says who holds the lock, from the writer's sidecar file.
func lockHolder(path string, readOnly bool) string {
	b, err := os.ReadFile(path + lockSuffix)
	info := strings.TrimSpace(string(b))
	if err != nil || info == "" || len(info) > 200 {
		if readOnly {
			return "a writer holds it (it did not record itself in " + path + lockSuffix + ")"
		}
		return "another process has it open (a reader, or a writer that did not record itself in " + path + lockSuffix + ")"
	}
	if readOnly {
		return "held for writing by " + info + " (from " + path + lockSuffix + ")"
	}
	return "held by " + info + " (from " + path + lockSuffix + "), or by readers if that process is gone"
}

func (s *FileStore) check(off int64, n int) error {
	if off < 0 || off%PageSize != 0 || n%PageSize != 0 {
		return fmt.Errorf("%s: access %d+%d is not aligned to %d bytes", s.path, off, n, PageSize)
	}
	return nil
}

// ReadAt fills p from off; reading past the end is an error.
func (s *FileStore) ReadAt(_ context.Context, p []byte, off int64) error {
	if err := s.check(off, len(p)); err != nil {
		return err
	}
	n, err := s.f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = errors.New("short read")
	}
	return fmt.Errorf("read %s at %d+%d: %w", s.path, off, len(p), err)
}

// WriteAt writes p at off.
func (s *FileStore) WriteAt(_ context.Context, p []byte, off int64) error {
	if s.readOnly {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	if err := s.check(off, len(p)); err != nil {
		return err
	}
	if len(p) > MaxWrite {
		return fmt.Errorf("%s: write of %d bytes is larger than %d", s.path, len(p), MaxWrite)
	}
	if s.direct != nil && len(p) >= writebackMinWrite && directAligned(p, off) {
		if _, err := s.direct.WriteAt(p, off); err != nil {
			return fmt.Errorf("write %s at %d+%d: %w", s.path, off, len(p), err)
		}
		return nil
	}
	if _, err := s.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("write %s at %d+%d: %w", s.path, off, len(p), err)
	}
	s.noteWritten(off, len(p))
	return nil
}

// directAlign is the alignment a write through O_DIRECT needs (offset, length and buffer):
// 4 KiB, the largest logical block size of the disks a store lies on.
const directAlign = 4096

// directAligned reports whether a write of p at off may go through O_DIRECT. The volume's
// large writes are: whole blocks, from buffers that Go allocates page-aligned.
func directAligned(p []byte, off int64) bool {
	return off%directAlign == 0 && len(p)%directAlign == 0 && uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// Flush makes completed writes durable (fdatasync).
func (s *FileStore) Flush(context.Context) error {
	if s.readOnly {
		return nil
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", s.path, err)
	}
	return nil
}

// Size is the file size.
func (s *FileStore) Size() int64 { return s.size.Load() }

// Resize sets the file size; new bytes read as zero. The extension is sparse, unless the store
// is preallocated (every byte of it allocated on disk, see Preallocate): then it stays so.
func (s *FileStore) Resize(ctx context.Context, size int64) error {
	if s.readOnly {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	if size < 0 || size%PageSize != 0 {
		return fmt.Errorf("%s: size %d is not a multiple of %d", s.path, size, PageSize)
	}
	old := s.size.Load()
	thick := old > 0 && s.allocated() >= old
	if err := s.f.Truncate(size); err != nil {
		return err
	}
	if thick && size > old {
		if err := s.zero(ctx, old, size); err != nil {
			return err
		}
	}
	if err := unix.Fsync(int(s.f.Fd())); err != nil { // the size is metadata: fdatasync may not keep it
		return fmt.Errorf("fsync %s: %w", s.path, err)
	}
	s.size.Store(size)
	return nil
}

// Preallocate writes zeros over the whole store, so that every byte of it is allocated and
// written on disk (a "thick" store, as a fixed-size VHD is), and makes that durable. In a
// sparse store the first write to each slot costs ext4 an allocation and, when the write
// reaches the disk, the conversion of a new extent; a volume writes each block's shadow slot
// for the first time long after it was created, so random 4 KiB writes paid that cost for a
// long while (about a tenth fewer of them per second, docs/PERFORMANCE.md). The price is the
// whole store on disk at once, about twice the volume's size, and writing it (about a second
// per GiB on the benchmark machine). Create calls it before writing the header, while the
// store holds nothing.
func (s *FileStore) Preallocate(ctx context.Context) error {
	if s.readOnly {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	return s.zero(ctx, 0, s.size.Load())
}

// zero writes zeros over [from, to) with O_DIRECT (where the filesystem allows it), so that
// none of it stays in the page cache, and makes it durable.
func (s *FileStore) zero(ctx context.Context, from, to int64) error {
	const step = 4 << 20
	f := s.direct
	if f == nil { // tmpfs and others without direct I/O
		f = s.f
	}
	raw := make([]byte, step+directAlign) // zeros, aligned below for direct I/O
	zeros := raw[directAlign-int(uintptr(unsafe.Pointer(&raw[0]))%directAlign):][:step]
	for off := from; off < to; off += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(zeros[:min(step, to-off)], off); err != nil {
			return fmt.Errorf("preallocate %s at %d: %w", s.path, off, err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", s.path, err)
	}
	return nil
}

// allocated is how many bytes of the file are allocated on disk.
func (s *FileStore) allocated() int64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(s.f.Fd()), &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// Close releases the lock (removing the writer's sidecar) and closes the file.
func (s *FileStore) Close() error {
	if !s.readOnly {
		s.closeOnce.Do(func() { close(s.stop) })
		<-s.stopped
		os.Remove(s.path + lockSuffix)
		if s.direct != nil {
			s.direct.Close()
		}
	}
	return s.f.Close() // closing the last descriptor releases the flock
}

// String is the file's path.
func (s *FileStore) String() string { return s.path }
