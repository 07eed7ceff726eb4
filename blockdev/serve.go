package blockdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FsName is the mount-table source of the FUSE mount that serves a device. CleanStale and
// scripts/cleanup.sh recognise what a killed run left behind by it.
const FsName = "encfs-blockdev"

// fileName is the name of the one file in the FUSE mount.
const fileName = "device"

// maxRequest is the largest FUSE read or write: the kernel's limit (max_pages 256).
const maxRequest = 1 << 20

// MaxInFlight bounds the device's requests in the daemon at once, and with them its memory
// (MaxInFlight request buffers of 1 MiB). 32 keeps two cores busy with random 4 KiB I/O at
// queue depth 16 and sequential 1 MiB I/O alike.
const MaxInFlight = 32

// served is a Device being served as one file through FUSE.
type served struct {
	dir    string // the private directory the FUSE filesystem is mounted on
	path   string // dir/device, the file the loop device is attached to
	file   *fileNode
	server *fuse.Server
	done   chan struct{}
	once   sync.Once
	err    error
}

// serve mounts a FUSE filesystem holding one file, "device", whose bytes are dev's, on a new
// private directory. The file is opened with direct I/O: the kernel caches no page of it, so
// the filesystem above the loop device (which has its own page cache) is the only cache.
func serve(dev Device, readOnly bool, log *slog.Logger) (*served, error) {
	if dev.Size() <= 0 || dev.Size()%4096 != 0 {
		return nil, fmt.Errorf("device size %d is not a positive multiple of 4096", dev.Size())
	}
	dir, err := os.MkdirTemp("", FsName+"-")
	if err != nil {
		return nil, fmt.Errorf("create the directory to serve the device on: %w", err)
	}
	file := &fileNode{dev: dev, readOnly: readOnly, log: log}
	root := &rootNode{file: file}
	timeout := time.Hour // the one file never changes its name or size behind the kernel's back
	opts := []string{"default_permissions"}
	if readOnly {
		opts = append(opts, "ro")
	}
	server, err := fusefs.Mount(dir, root, &fusefs.Options{
		MountOptions: fuse.MountOptions{
			Options:     opts,
			DirectMount: os.Geteuid() == 0,
			FsName:      FsName,
			Name:        "encfs",
			MaxWrite:    maxRequest,
			// The loop device's requests arrive as asynchronous direct I/O, which FUSE counts as
			// background requests: at most MaxInFlight of them reach the daemon at once, each
			// with a request buffer of up to 1 MiB (and a Device may hold as much again).
			MaxBackground: MaxInFlight,
			// Data goes from go-fuse's request buffer straight to the Device and back.
			DisableSplice: true,
			// Asynchronous direct I/O: the loop device's concurrent reads and writes reach the
			// daemon concurrently instead of one at a time.
			ExtraCapabilities: fuse.CAP_ASYNC_DIO,
		},
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
	})
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("serve the device through FUSE at %s: %w", dir, err)
	}
	s := &served{dir: dir, path: filepath.Join(dir, fileName), file: file, server: server, done: make(chan struct{})}
	go func() {
		server.Wait()
		close(s.done)
	}()
	return s, nil
}

// stop unmounts the FUSE filesystem and removes its directory. The loop device must be
// detached first: it holds the file open.
func (s *served) stop() error {
	s.once.Do(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := unix.Unmount(s.dir, 0)
			if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				// Lazily detached, it goes away once the last user (a loop device that could not be
				// detached) lets go; the process exiting ends the connection in any case.
				unix.Unmount(s.dir, unix.MNT_DETACH)
				s.err = fmt.Errorf("unmount the device's FUSE filesystem at %s: %w (detached lazily)", s.dir, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
		if err := os.Remove(s.dir); err != nil && s.err == nil && !errors.Is(err, os.ErrNotExist) {
			s.err = err
		}
	})
	return s.err
}

// rootNode is the FUSE root: a directory holding the one file.
type rootNode struct {
	fusefs.Inode
	file *fileNode
}

var _ fusefs.NodeOnAdder = (*rootNode)(nil)

func (r *rootNode) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, r.file, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
	r.AddChild(fileName, ch, false)
}

// fileNode is the device as a file. It never allocates on the write path: the data comes in
// go-fuse's request buffer and goes to Device.WriteAt as it is; reads fill go-fuse's reply
// buffer. That matters because the loop device above this file can only free memory by
// writing through it (see doc.go, "Memory").
type fileNode struct {
	fusefs.Inode
	dev      Device
	readOnly bool
	log      *slog.Logger
	// failures counts Device errors; only the first few are logged, then every 1000th.
	mu       sync.Mutex
	failures int

	reads, bytesRead, writes, bytesWritten, flushes, readErrors, writeErrors, flushErrors atomic.Uint64
}

// Stats are the counters of the requests the loop device made of the device file.
type Stats struct {
	Reads, BytesRead     uint64
	Writes, BytesWritten uint64
	Flushes              uint64
	ReadErrors           uint64 // reads answered with EIO (the Device failed them)
	WriteErrors          uint64 // writes answered with EIO
	FlushErrors          uint64 // flushes (commits) answered with EIO
}

func (f *fileNode) stats() Stats {
	return Stats{Reads: f.reads.Load(), BytesRead: f.bytesRead.Load(), Writes: f.writes.Load(), BytesWritten: f.bytesWritten.Load(),
		Flushes: f.flushes.Load(), ReadErrors: f.readErrors.Load(), WriteErrors: f.writeErrors.Load(), FlushErrors: f.flushErrors.Load()}
}

var (
	_ fusefs.NodeGetattrer = (*fileNode)(nil)
	_ fusefs.NodeSetattrer = (*fileNode)(nil)
	_ fusefs.NodeOpener    = (*fileNode)(nil)
	_ fusefs.NodeReader    = (*fileNode)(nil)
	_ fusefs.NodeWriter    = (*fileNode)(nil)
	_ fusefs.NodeFsyncer   = (*fileNode)(nil)
	_ fusefs.NodeFlusher   = (*fileNode)(nil)
)

func (f *fileNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	if f.readOnly {
		out.Mode = syscall.S_IFREG | 0o400
	}
	out.Size = uint64(f.dev.Size())
	out.Blocks = out.Size / 512
	out.Blksize = 4096
	out.Nlink = 1
	return 0
}

// Setattr accepts what losetup and the loop driver do (nothing that changes the size).
func (f *fileNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && sz != uint64(f.dev.Size()) {
		return syscall.EPERM // a device's size changes through Grow, not truncate
	}
	return f.Getattr(ctx, fh, out)
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if f.readOnly && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	// Direct I/O: no page of the file is cached in the kernel (ext4 above has its own cache);
	// parallel direct writes: the loop device's concurrent writes are not serialised on the
	// inode lock.
	return nil, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES, 0
}

func (f *fileNode) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	size := f.dev.Size()
	if off >= size || off < 0 {
		return fuse.ReadResultData(nil), 0
	}
	n := int64(len(dest))
	if off+n > size {
		n = size - off
	}
	f.reads.Add(1)
	if err := f.dev.ReadAt(ctx, dest[:n], off); err != nil {
		f.readErrors.Add(1)
		return nil, f.fail("read", off, n, err)
	}
	f.bytesRead.Add(uint64(n))
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *fileNode) Write(ctx context.Context, fh fusefs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if f.readOnly {
		return 0, syscall.EROFS
	}
	if off < 0 || off+int64(len(data)) > f.dev.Size() {
		return 0, syscall.ENOSPC
	}
	f.writes.Add(1)
	if err := f.dev.WriteAt(ctx, data, off); err != nil {
		f.writeErrors.Add(1)
		return 0, f.fail("write", off, int64(len(data)), err)
	}
	f.bytesWritten.Add(uint64(len(data)))
	return uint32(len(data)), 0
}

// Fsync is the commit point: the loop device turns a filesystem's cache flush (a journal
// commit, an fsync by an application) into fsync on this file.
func (f *fileNode) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	return f.flush(ctx)
}

// Flush runs on every close of the file (the loop device's, at detach): nothing written may
// stay unflushed behind it.
func (f *fileNode) Flush(ctx context.Context, fh fusefs.FileHandle) syscall.Errno {
	if f.readOnly {
		return 0
	}
	return f.flush(ctx)
}

func (f *fileNode) flush(ctx context.Context) syscall.Errno {
	f.flushes.Add(1)
	if err := f.dev.Flush(ctx); err != nil {
		f.flushErrors.Add(1)
		return f.fail("flush", 0, 0, err)
	}
	return 0
}

// loggedError is implemented by Device errors that the Device has logged itself, such as a
// volume's integrity failure (logged once per block however often the block is read).
type loggedError interface {
	error
	Logged() bool
}

// fail logs a Device error (rate-limited: a dying store would otherwise log every request)
// and answers EIO, which the loop device passes up to the filesystem as an I/O error. An error
// the Device logged already gets no second line.
func (f *fileNode) fail(op string, off, n int64, err error) syscall.Errno {
	if le, ok := errors.AsType[loggedError](err); ok && le.Logged() {
		return syscall.EIO
	}
	f.mu.Lock()
	f.failures++
	k := f.failures
	f.mu.Unlock()
	if k <= 10 || k%1000 == 0 {
		f.log.Error("device "+op+" failed; the filesystem sees an I/O error", "offset", off, "length", n, "failures", k, "err", err)
	}
	return syscall.EIO
}
