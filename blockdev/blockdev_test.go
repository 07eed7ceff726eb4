package blockdev_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/blockdev"
	"github.com/encfs/encfs/fs/fstest"
)

// requireLoop skips a test that cannot attach loop devices or make ext4 here (failing under
// CI=true instead, where it must run).
func requireLoop(t testing.TB, fsTypes ...string) {
	t.Helper()
	fstest.RequireFUSE(t)
	reason := ""
	if os.Geteuid() != 0 {
		reason = "loop devices and mount(2) need root"
	} else if _, err := os.Stat("/dev/loop-control"); err != nil {
		reason = "no /dev/loop-control: " + err.Error()
	}
	for _, fs := range append([]string{"ext4"}, fsTypes...) {
		if _, err := exec.LookPath("mkfs." + fs); err != nil && reason == "" {
			reason = "mkfs." + fs + " is not installed"
		}
	}
	if reason == "" {
		if err := blockdev.CleanStale(slog.New(slog.DiscardHandler)); err != nil {
			t.Logf("cleaning up after earlier runs: %v", err)
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("loop devices are required under CI=true: %s", reason)
	}
	t.Skip(reason)
}

// faultyDevice wraps a Device and fails the operations asked for; it counts flushes.
type faultyDevice struct {
	blockdev.Device
	failReads, failWrites, failFlush atomic.Bool
	flushes                          atomic.Int64
}

var errInjected = errors.New("injected storage fault")

func (d *faultyDevice) ReadAt(ctx context.Context, p []byte, off int64) error {
	if d.failReads.Load() {
		return errInjected
	}
	return d.Device.ReadAt(ctx, p, off)
}

func (d *faultyDevice) WriteAt(ctx context.Context, p []byte, off int64) error {
	if d.failWrites.Load() {
		return errInjected
	}
	return d.Device.WriteAt(ctx, p, off)
}

func (d *faultyDevice) Flush(ctx context.Context) error {
	d.flushes.Add(1)
	if d.failFlush.Load() {
		return errInjected
	}
	return d.Device.Flush(ctx)
}

func newFileDevice(t *testing.T, size int64) *blockdev.FileDevice {
	t.Helper()
	d, err := blockdev.CreateFileDevice(filepath.Join(t.TempDir(), "dev.img"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mountT mounts dev at a new directory and unmounts it at the end of the test if the test
// did not.
func mountT(t *testing.T, dev blockdev.Device, o blockdev.Options) *blockdev.Mounted {
	t.Helper()
	if o.Log == nil {
		o.Log = quiet()
	}
	m, err := blockdev.Mount(context.Background(), dev, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unmount(context.Background()) })
	return m
}

// assertGone fails if the mount point is still mounted or the loop device still attached.
func assertGone(t *testing.T, m *blockdev.Mounted) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && (f[1] == m.Mountpoint || f[0] == m.Loop) {
			t.Errorf("still mounted after Unmount: %s", line)
		}
	}
	out, err := exec.Command("losetup", "-a").CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -a: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, m.Loop+":") {
			t.Errorf("loop device still attached after Unmount: %s", line)
		}
	}
}

func TestMkfsMountRemount(t *testing.T) {
	requireLoop(t)
	testMkfsMountRemount(t, "ext4")
}

func TestXFS(t *testing.T) {
	requireLoop(t, "xfs")
	testMkfsMountRemount(t, "xfs")
}

func testMkfsMountRemount(t *testing.T, fs string) {
	ctx := context.Background()
	dev := newFileDevice(t, 320<<20) // xfs wants 300 MiB at least
	if err := blockdev.Mkfs(ctx, dev, fs); err != nil {
		t.Fatal(err)
	}
	m := mountT(t, dev, blockdev.Options{FS: fs})
	t.Logf("%s on %s, direct I/O %v", fs, m.Loop, m.DirectIO)
	want := map[string][]byte{}
	for _, name := range []string{"a", "b/c", "b/d/e"} {
		p := filepath.Join(m.Mountpoint, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 3<<20+17)
		rand.Read(data)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = data
	}
	if err := m.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m)

	if got, err := blockdev.Detect(ctx, dev); err != nil || got != fs {
		t.Fatalf("Detect: %q, %v; want %q", got, err, fs)
	}
	m2 := mountT(t, dev, blockdev.Options{ReadOnly: true}) // the filesystem type detected
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(m2.Mountpoint, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes that differ from the %d written", name, len(got), len(data))
		}
	}
	if err := os.WriteFile(filepath.Join(m2.Mountpoint, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to a read-only mount: got %v, want EROFS", err)
	}
	if err := m2.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m2)
}

func TestFsyncReachesFlush(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := &faultyDevice{Device: newFileDevice(t, 64<<20)}
	if err := blockdev.Mkfs(ctx, dev, ""); err != nil {
		t.Fatal(err)
	}
	m := mountT(t, dev, blockdev.Options{})
	f, err := os.Create(filepath.Join(m.Mountpoint, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("committed")); err != nil {
		t.Fatal(err)
	}
	before := dev.flushes.Load()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if dev.flushes.Load() == before {
		t.Fatal("fsync in the filesystem did not reach Device.Flush")
	}
	if st := m.Stats(); st.Flushes == 0 || st.Writes == 0 || st.BytesWritten == 0 || st.FlushErrors != 0 {
		t.Fatalf("stats after a write and an fsync: %+v", st)
	}

	// A flush that fails reaches the application as an error.
	if _, err := f.Write([]byte(" and more")); err != nil {
		t.Fatal(err)
	}
	dev.failFlush.Store(true)
	if err := f.Sync(); err == nil {
		t.Fatal("fsync succeeded although Device.Flush failed")
	} else {
		t.Logf("fsync with a failing flush: %v", err)
	}
	dev.failFlush.Store(false)
	if st := m.Stats(); st.FlushErrors == 0 {
		t.Fatalf("a failed flush is not counted: %+v", st)
	}
}

func TestWriteFaultFailsFsync(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := &faultyDevice{Device: newFileDevice(t, 64<<20)}
	if err := blockdev.Mkfs(ctx, dev, ""); err != nil {
		t.Fatal(err)
	}
	m := mountT(t, dev, blockdev.Options{})
	dev.failWrites.Store(true)
	err := writeSync(filepath.Join(m.Mountpoint, "lost"), make([]byte, 1<<20))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("write+fsync while the device fails writes: got %v, want EIO", err)
	}
	dev.failWrites.Store(false)
	// Unmount finishes (ext4 has aborted its journal; nothing hangs).
	done := make(chan error, 1)
	go func() { done <- m.Unmount(ctx) }()
	select {
	case err := <-done:
		t.Logf("unmount after the fault: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Unmount hangs after a write fault")
	}
	assertGone(t, m)
}

func writeSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

func TestReadFaultIsEIO(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := &faultyDevice{Device: newFileDevice(t, 64<<20)}
	if err := blockdev.Mkfs(ctx, dev, ""); err != nil {
		t.Fatal(err)
	}
	m := mountT(t, dev, blockdev.Options{})
	p := filepath.Join(m.Mountpoint, "f")
	if err := writeSync(p, bytes.Repeat([]byte("x"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	dev.failReads.Store(true)
	// O_DIRECT: past ext4's page cache, to the device.
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := alignedBuf(t, 1<<20)
	_, err = unix.Pread(fd, buf, 0)
	unix.Close(fd)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read while the device fails reads: got %v, want EIO", err)
	}
	dev.failReads.Store(false)
	if err := m.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m)
}

// alignedBuf returns n bytes aligned for O_DIRECT (page-aligned anonymous memory).
func alignedBuf(t *testing.T, n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestMountWithoutFilesystem(t *testing.T) {
	requireLoop(t)
	dev := newFileDevice(t, 16<<20)
	_, err := blockdev.Mount(context.Background(), dev, t.TempDir(), blockdev.Options{Log: quiet()})
	if !errors.Is(err, blockdev.ErrNoFilesystem) {
		t.Fatalf("mount of an empty device: got %v, want ErrNoFilesystem", err)
	}
	// With the type given, the kernel refuses, and nothing stays attached.
	before, _ := exec.Command("losetup", "-a").Output()
	if _, err := blockdev.Mount(context.Background(), dev, t.TempDir(), blockdev.Options{FS: "ext4", Log: quiet()}); err == nil {
		t.Fatal("mount of an empty device as ext4 succeeded")
	}
	after, _ := exec.Command("losetup", "-a").Output()
	if strings.Count(string(after), "\n") > strings.Count(string(before), "\n") {
		t.Fatalf("a loop device stayed attached after a failed mount:\n%s", after)
	}
}
