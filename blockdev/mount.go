package blockdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Options say how to mount a device's filesystem.
type Options struct {
	// FS is the filesystem type, "ext4" or "xfs"; empty detects it (Detect).
	FS string
	// ReadOnly attaches the loop device read-only and mounts the filesystem read-only; the
	// Device is never written.
	ReadOnly bool
	// MountOptions are passed to mount(2) as its data ("noatime,discard"...).
	MountOptions string
	// UnmountTimeout is how long Unmount retries a busy filesystem before detaching it lazily
	// (default 10s).
	UnmountTimeout time.Duration
	// Log receives warnings and device errors; default slog.Default().
	Log *slog.Logger
}

// Filesystems are the filesystem types Mkfs and Mount accept.
var Filesystems = []string{"ext4", "xfs"}

func checkFS(fs string) (string, error) {
	if fs == "" {
		return "ext4", nil
	}
	for _, ok := range Filesystems {
		if fs == ok {
			return fs, nil
		}
	}
	return "", fmt.Errorf("filesystem %q is not supported: use one of %s", fs, strings.Join(Filesystems, ", "))
}

// Mkfs makes a new filesystem (fs: "ext4", the default, or "xfs") on dev: it serves dev,
// attaches a loop device, runs mkfs on it, then detaches and flushes dev.
func Mkfs(ctx context.Context, dev Device, fs string) error {
	fs, err := checkFS(fs)
	if err != nil {
		return err
	}
	var args []string
	switch fs {
	case "ext4":
		// nodiscard: a fresh device reads as zeros already; discards would only be refused.
		// 4096-byte blocks: the loop device's sectors are 4096 bytes, and mkfs would choose
		// 1024 for a small device.
		args = []string{"mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard"}
	case "xfs":
		args = []string{"mkfs.xfs", "-q", "-f", "-K"}
	}
	bin, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("%s is not installed (Debian: apt-get install %s): %w", args[0], mkfsPackage(fs), err)
	}
	st, err := start(dev, false, slog.Default())
	if err != nil {
		return err
	}
	out, mkfsErr := exec.CommandContext(ctx, bin, append(args[1:], st.loop.path)...).CombinedOutput()
	if mkfsErr != nil {
		mkfsErr = fmt.Errorf("%s: %w: %s", args[0], mkfsErr, strings.TrimSpace(string(out)))
	}
	return errors.Join(mkfsErr, st.stop(ctx, dev))
}

func mkfsPackage(fs string) string {
	if fs == "xfs" {
		return "xfsprogs"
	}
	return "e2fsprogs"
}

// stack is a device served through FUSE with a loop device attached to it.
type stack struct {
	srv      *served
	loop     *loopDev
	readOnly bool
}

func start(dev Device, readOnly bool, log *slog.Logger) (*stack, error) {
	setIOFlusher(log)
	srv, err := serve(dev, readOnly, log)
	if err != nil {
		return nil, err
	}
	loop, err := attachLoop(srv.path, readOnly)
	if err != nil {
		srv.stop()
		return nil, err
	}
	if !loop.directIO {
		log.Info("the loop device runs buffered: the kernel refused direct I/O on the FUSE file; random I/O will be slower",
			"loop", loop.path)
	}
	return &stack{srv: srv, loop: loop, readOnly: readOnly}, nil
}

// stop detaches the loop device, flushes dev and unmounts the FUSE filesystem, in that order:
// the loop device's last writes reach dev before the flush, and the FUSE file is free to
// unmount only once the loop device has let go of it.
func (s *stack) stop(ctx context.Context, dev Device) error {
	var errs []error
	if err := s.loop.detach(); err != nil {
		errs = append(errs, err)
	}
	if !s.readOnly {
		if err := dev.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush the device: %w", err))
		}
	}
	if err := s.srv.stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Mounted is a device's filesystem mounted at a directory.
type Mounted struct {
	Mountpoint string
	FS         string // ext4 or xfs
	Loop       string // the loop device, /dev/loopN
	DirectIO   bool   // the loop device runs in direct-I/O mode

	dev   Device
	opts  Options
	log   *slog.Logger
	stack *stack
	once  sync.Once
	err   error
}

// Mount serves dev, attaches a loop device to it and mounts its filesystem (made by Mkfs) at
// mountpoint, an existing directory.
func Mount(ctx context.Context, dev Device, mountpoint string, o Options) (*Mounted, error) {
	fs := o.FS
	if fs == "" {
		var err error
		if fs, err = Detect(ctx, dev); err != nil {
			return nil, fmt.Errorf("find the filesystem on the device: %w (make one with mkfs first)", err)
		}
	}
	fs, err := checkFS(fs)
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.UnmountTimeout <= 0 {
		o.UnmountTimeout = 10 * time.Second
	}
	if st, err := os.Stat(mountpoint); err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("mount point %s is not a directory", mountpoint)
	}
	st, err := start(dev, o.ReadOnly, o.Log)
	if err != nil {
		return nil, err
	}
	var flags uintptr = unix.MS_NODEV
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	data := o.MountOptions
	if o.ReadOnly {
		// A journal left by a crash cannot be replayed on a read-only device, and ext4 and xfs
		// would refuse the mount: norecovery mounts the state before the replay instead (mount
		// read-write once to replay it).
		data = strings.TrimPrefix(data+",norecovery", ",")
	}
	if err := unix.Mount(st.loop.path, mountpoint, fs, flags, data); err != nil {
		stopErr := st.stop(ctx, dev)
		hint := ""
		if errors.Is(err, unix.EINVAL) {
			hint = fmt.Sprintf(" (no %s filesystem on the device? make one with mkfs first)", fs)
		}
		return nil, errors.Join(fmt.Errorf("mount %s on %s: %w%s", fs, mountpoint, err, hint), stopErr)
	}
	return &Mounted{Mountpoint: mountpoint, FS: fs, Loop: st.loop.path, DirectIO: st.loop.directIO,
		dev: dev, opts: o, log: o.Log, stack: st}, nil
}

// Stats are the counters of the loop device's requests to the device so far.
func (m *Mounted) Stats() Stats { return m.stack.srv.file.stats() }

// Done is closed when the FUSE filesystem serving the device ends: after Unmount, or when
// someone else unmounted it (the filesystem on top then sees I/O errors).
func (m *Mounted) Done() <-chan struct{} { return m.stack.srv.done }

// Unmount syncs and unmounts the filesystem, detaches the loop device, flushes the Device and
// unmounts the FUSE filesystem, in that order. A filesystem still busy after UnmountTimeout is
// detached lazily; what is written to it after that is lost, and Unmount says so. Calling it
// again returns the first result.
func (m *Mounted) Unmount(ctx context.Context) error {
	m.once.Do(func() { m.err = m.unmount(ctx) })
	return m.err
}

func (m *Mounted) unmount(ctx context.Context) error {
	var errs []error
	if !m.opts.ReadOnly {
		// syncfs first, so that a busy filesystem that ends up detached lazily has at least
		// everything written so far on the device.
		if fd, err := unix.Open(m.Mountpoint, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
			if err := unix.Syncfs(fd); err != nil {
				errs = append(errs, fmt.Errorf("sync the filesystem at %s: %w", m.Mountpoint, err))
			}
			unix.Close(fd)
		}
	}
	deadline := time.Now().Add(m.opts.UnmountTimeout)
	for {
		err := unix.Unmount(m.Mountpoint, 0)
		if err == nil || errors.Is(err, unix.EINVAL) {
			break
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
			errs = append(errs, fmt.Errorf("unmount %s: %w; detached it lazily: files still open there keep the filesystem alive, and what they write now is lost", m.Mountpoint, err))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := m.stack.stop(ctx, m.dev); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Attached is a device served through FUSE with a loop device attached and nothing mounted:
// for tools that work on the block device itself (fsck, resize2fs).
type Attached struct {
	Loop string // /dev/loopN

	dev   Device
	stack *stack
	once  sync.Once
	err   error
}

// Attach serves dev and attaches a loop device to it, read-only if asked.
func Attach(ctx context.Context, dev Device, readOnly bool, log *slog.Logger) (*Attached, error) {
	if log == nil {
		log = slog.Default()
	}
	st, err := start(dev, readOnly, log)
	if err != nil {
		return nil, err
	}
	return &Attached{Loop: st.loop.path, dev: dev, stack: st}, nil
}

// Detach detaches the loop device, flushes the Device and unmounts the FUSE filesystem.
// Calling it again returns the first result.
func (a *Attached) Detach(ctx context.Context) error {
	a.once.Do(func() { a.err = a.stack.stop(ctx, a.dev) })
	return a.err
}
