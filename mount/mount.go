package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	encfs "github.com/encfs/encfs/fs"
)

// MaxRequest is the size of the largest FUSE read request: 1 MiB, the kernel's limit
// (max_pages 256).
const MaxRequest = 1 << 20

// Options say where and how to mount.
type Options struct {
	// Mountpoint is the path consumers use. Its parent directory must exist; the mount point
	// itself is created if missing, and then removed again by Unmount.
	Mountpoint string
	// Publish mounts at HiddenDir(Mountpoint) and then atomically makes Mountpoint a symlink
	// to it; Unmount removes the symlink first.
	Publish bool
	// HiddenDir overrides where a published mount really lives (default HiddenDir(Mountpoint));
	// configurations in the reference sidecar's shape use <dir>/.filesystem-N.
	HiddenDir string
	// AllowOther lets users other than the mounting one in (the consumers of a sidecar run as
	// other users). Unprivileged, it needs user_allow_other in /etc/fuse.conf.
	AllowOther bool
	// FsName is the source column of the mount table (default "encfs"). Tests use their own
	// name so that their cleanup never touches a real mount.
	FsName string
	// ReadAheadKB is set as the mount's read_ahead_kb (default DefaultReadAheadKB; negative
	// keeps the kernel's default).
	ReadAheadKB int
	// UnmountTimeout is how long Unmount retries a busy mount before detaching it lazily
	// (default 10s).
	UnmountTimeout time.Duration
	// Debug logs every FUSE request (go-fuse's debug output, on the standard logger).
	Debug bool
	// Log receives warnings; default slog.Default().
	Log *slog.Logger
}

// Point is a live mount.
type Point struct {
	Target string // the path consumers use
	Dir    string // where the filesystem is mounted: Target, or the hidden directory
	Dev    string // major:minor of the mounted filesystem

	opts   Options
	log    *slog.Logger
	server *fuse.Server
	done   chan struct{}
	// createdDir: Mount created Dir, so Unmount removes it (leaving the directory as it was).
	createdDir bool
	once       sync.Once
	err        error
}

// Mount serves f at o.Mountpoint, read-only, and returns once the mount answers. A stale FUSE
// mount left at the same place by a crashed run is removed first.
func Mount(f *encfs.FS, o Options) (*Point, error) {
	if o.FsName == "" {
		o.FsName = "encfs"
	}
	if o.ReadAheadKB == 0 {
		o.ReadAheadKB = DefaultReadAheadKB
	}
	if o.UnmountTimeout <= 0 {
		o.UnmountTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	target, err := canonical(o.Mountpoint)
	if err != nil {
		return nil, err
	}
	m := &Point{Target: target, Dir: target, opts: o, log: o.Log, done: make(chan struct{})}
	if o.Publish {
		m.Dir = o.HiddenDir
		if m.Dir == "" {
			m.Dir = HiddenDir(target)
		}
		if err := CleanStale(target, o.Log); err != nil {
			return nil, err
		}
	}
	if err := CleanStale(m.Dir, o.Log); err != nil {
		return nil, err
	}
	if m.createdDir, err = MakeMountPoint(m.Dir); err != nil {
		return nil, err
	}
	timeout := encfs.Timeout
	m.server, err = fusefs.Mount(m.Dir, f.Root(), &fusefs.Options{
		MountOptions:    mountOptions(o),
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		RootStableAttr:  f.RootStableAttr(),
	})
	if err != nil {
		if m.createdDir || o.Publish {
			os.Remove(m.Dir)
		}
		return nil, explainMountError(m.Dir, err)
	}
	go func() {
		m.server.Wait()
		close(m.done)
	}()
	if m.Dev, err = devOf(m.Dir); err != nil {
		m.log.Warn("cannot find the new mount in the mount table", "path", m.Dir, "err", err)
	} else if o.ReadAheadKB > 0 {
		if err := SetReadAhead(m.Dev, o.ReadAheadKB); err != nil {
			m.log.Warn("cannot raise read_ahead_kb; sequential reads will come in 128 KiB requests and be slower",
				"path", m.Dir, "dev", m.Dev, "err", err)
		}
	}
	if o.Publish {
		if err := Publish(target, m.Dir); err != nil {
			m.Unmount()
			return nil, err
		}
	}
	return m, nil
}

// MakeMountPoint creates dir if it is missing (its parent must exist) and reports whether it
// did. Anything but a directory at dir is refused.
func MakeMountPoint(dir string) (created bool, err error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && st.IsDir():
		return false, nil
	case err == nil:
		return false, fmt.Errorf("mount point %s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("mount point %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return false, fmt.Errorf("create mount point %s: %w", dir, err)
	}
	return true, nil
}

// mountOptions are the go-fuse options of every mount.
func mountOptions(o Options) fuse.MountOptions {
	root := os.Geteuid() == 0
	return fuse.MountOptions{
		AllowOther: o.AllowOther,
		// ro makes the kernel refuse writes before they reach the daemon; default_permissions
		// makes it apply the modes stored in the image, as any filesystem would, rather than
		// letting every user who can reach the mount read everything.
		Options:          []string{"ro", "default_permissions"},
		DirectMount:      root,
		DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
		MaxWrite:         MaxRequest,
		MaxReadAhead:     MaxRequest,
		// Enough asynchronous (readahead) requests for several sequential readers to each
		// keep a read_ahead_kb window in flight; go-fuse's default is 12.
		MaxBackground:            64,
		FsName:                   o.FsName,
		Name:                     "encfs",
		EnableSymlinkCaching:     true, // targets never change
		ExplicitDataCacheControl: true, // nor does content: never drop the page cache on attribute refresh
		// Reads return plaintext from memory (ReadResultData), never a file descriptor, so
		// splicing gains nothing: go-fuse would copy the data into a pipe first, and a 1 MiB
		// reply plus its header does not fit the default pipe-max-size, failing every time.
		// Without it the reply goes out in one writev.
		DisableSplice: true,
		Debug:         o.Debug,
	}
}

// devOf finds the device number of the FUSE mount at dir.
func devOf(dir string) (string, error) {
	ms, err := MountsAt(dir)
	if err != nil {
		return "", err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].IsFUSE() {
			return ms[i].Dev, nil
		}
	}
	return "", fmt.Errorf("no FUSE mount at %s", dir)
}

// Done is closed when the filesystem stops being served: after Unmount, or when someone
// else unmounted it.
func (m *Point) Done() <-chan struct{} { return m.done }

// Unmount removes the published symlink (if any), unmounts, waits for the daemon side to
// finish and removes the hidden directory. A busy mount is retried for UnmountTimeout, then
// detached lazily and its connection aborted (through fusectl, where it is mounted), so that
// nothing is left in the mount table and the process can exit. Calling it again returns the
// first result.
func (m *Point) Unmount() error {
	m.once.Do(func() { m.err = m.unmount() })
	return m.err
}

func (m *Point) unmount() error {
	var errs []error
	if m.opts.Publish {
		if err := Unpublish(m.Target, m.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove symlink %s: %w", m.Target, err))
		}
	}
	lazy, err := unmountDir(m.Dir, m.opts.UnmountTimeout, m.log)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("unmount %s: %w", m.Dir, err))...)
	}
	if !m.waitServed(500*time.Millisecond) && lazy && m.Dev != "" {
		if err := abortConnection(m.Dev); err != nil {
			// Harmless when the process is about to exit: that ends the connection too.
			m.log.Info("cannot abort the detached FUSE connection; it ends when its last open file is closed or this process exits",
				"dev", m.Dev, "err", err)
		} else {
			m.waitServed(5 * time.Second)
		}
	}
	if m.opts.Publish || m.createdDir {
		if err := os.Remove(m.Dir); err != nil && !lazy && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the mount point encfs created: %w", err))
		}
	}
	return errors.Join(errs...)
}

// waitServed waits up to d for the request loops to exit.
func (m *Point) waitServed(d time.Duration) bool {
	select {
	case <-m.done:
		return true
	case <-time.After(d):
		return false
	}
}
