// Package fstest mounts encfs images in tests: it packs a tree, mounts the image with real
// FUSE, and unmounts it in t.Cleanup. A test that cannot mount is skipped with the reason,
// except under CI=true, where it fails: CI must actually mount. Mounts made here carry the
// source name TestFsName, so that CleanStale can remove the ones a killed test run left behind
// without touching real mounts.
package fstest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/mount"
	"github.com/encfs/encfs/pack"
)

// TestFsName is the mount-table source of every mount made by this package.
const TestFsName = "encfs-test"

var (
	fuseOnce   sync.Once
	fuseReason string // why FUSE cannot be used; empty if it can
)

// RequireFUSE skips the test if this process cannot mount FUSE filesystems, saying why; with
// CI=true in the environment it fails instead.
func RequireFUSE(t testing.TB) {
	t.Helper()
	fuseOnce.Do(func() {
		f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
		if err != nil {
			fuseReason = "cannot open /dev/fuse: " + err.Error()
			return
		}
		f.Close()
		if os.Geteuid() != 0 {
			if _, err := exec.LookPath("fusermount3"); err != nil {
				fuseReason = "not root and no fusermount3 in PATH"
			}
		}
	})
	if fuseReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE is required under CI=true: %s", fuseReason)
	}
	t.Skipf("cannot mount FUSE here: %s", fuseReason)
}

// NewKey returns a random release key.
func NewKey(t testing.TB) []byte {
	k := make([]byte, image.ReleaseKeySize)
	rand.Read(k)
	return k
}

// WriteKey writes key to a new file in a temp dir and returns its path.
func WriteKey(t testing.TB, key []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "release.key")
	if err := os.WriteFile(p, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Pack packs dir into a new image in a temp dir and returns the image's path.
func Pack(t testing.TB, dir string, keys ...[]byte) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "test.img")
	opts := pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: keys}, Log: slog.New(slog.DiscardHandler)}
	if _, err := pack.Pack(context.Background(), dir, img, opts); err != nil {
		t.Fatalf("pack %s: %v", dir, err)
	}
	return img
}

// OpenImage opens an image file with key, through the same source as encfs mount; it is closed
// in cleanup.
func OpenImage(t testing.TB, path string, key []byte, opts image.Options) *image.Image {
	t.Helper()
	f, err := blobio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// As encfs mount reads a local image: through the chunked layer where direct I/O works.
	src := image.Plain(f)
	if c, ok := f.ForMount(); ok {
		src = c
	}
	im, err := image.Open(context.Background(), src, [][]byte{key}, opts)
	if err != nil {
		src.Close()
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

// Options tune Mount. The zero value mounts with the product's defaults.
type Options struct {
	Image image.Options
	FS    encfs.Options // Log is replaced by the capture behind Mounted.Logs
	Mount mount.Options // Mountpoint defaults to a new temp dir; FsName is always TestFsName
}

// Mounted is an image mounted for a test.
type Mounted struct {
	Dir   string // the mount point (the published symlink, with Mount.Publish)
	FS    *encfs.FS
	Image *image.Image
	Point *mount.Point
	logs  syncbuf.Buffer
}

// Logs returns what the filesystem has logged so far (slog text format).
func (m *Mounted) Logs() string { return m.logs.String() }

// Mount mounts the image at imagePath and unmounts it in cleanup, failing the test if the
// unmount fails or leaves the mount behind.
func Mount(t testing.TB, imagePath string, key []byte, o *Options) *Mounted {
	t.Helper()
	RequireFUSE(t)
	if o == nil {
		o = &Options{}
	}
	return MountImage(t, OpenImage(t, imagePath, key, o.Image), o)
}

// MountImage mounts an opened image (for tests that open it over a source of their own);
// o.Image is not used.
func MountImage(t testing.TB, im *image.Image, o *Options) *Mounted {
	t.Helper()
	RequireFUSE(t)
	CleanStale(t)
	if o == nil {
		o = &Options{}
	}
	m := &Mounted{Image: im}
	log := slog.New(slog.NewTextHandler(&m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fo := o.FS
	fo.Log = log
	var err error
	if m.FS, err = encfs.New(context.Background(), im, fo); err != nil {
		t.Fatal(err)
	}
	mo := o.Mount
	if mo.Mountpoint == "" {
		mo.Mountpoint = filepath.Join(t.TempDir(), "mnt")
	}
	mo.FsName = TestFsName
	mo.Log = log
	if mo.UnmountTimeout == 0 {
		mo.UnmountTimeout = 2 * time.Second
	}
	if m.Point, err = mount.Mount(m.FS, mo); err != nil {
		t.Fatalf("mount: %v", err)
	}
	m.Dir = m.Point.Target
	t.Cleanup(func() {
		if err := m.Point.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if ms, _ := mount.MountsAt(m.Point.Dir); len(ms) > 0 {
			t.Errorf("still mounted after Unmount: %+v", ms)
		}
	})
	return m
}

// MountTree packs dir with a new key and mounts the image.
func MountTree(t testing.TB, dir string, o *Options) *Mounted {
	t.Helper()
	key := NewKey(t)
	return Mount(t, Pack(t, dir, key), key, o)
}

// CleanStale lazily unmounts test mounts (source TestFsName) under the temp directory whose
// daemon is gone, as a test process that was killed leaves them. Live ones, which belong to
// tests running right now in other processes, are left alone.
func CleanStale(t testing.TB) {
	t.Helper()
	ms, err := mount.Mounts()
	if err != nil {
		return
	}
	tmp := os.TempDir()
	for _, m := range ms {
		if m.Source != TestFsName || !isUnder(m.MountPoint, tmp) || !dead(m.MountPoint) {
			continue
		}
		t.Logf("removing a stale test mount at %s", m.MountPoint)
		if err := mount.CleanStale(m.MountPoint, slog.New(slog.DiscardHandler)); err != nil {
			t.Logf("cannot remove stale test mount %s: %v", m.MountPoint, err)
		}
	}
}

func isUnder(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
}

// dead reports whether the mount at p has lost its daemon. A daemon that does not answer at
// all (stopped) counts as alive: it may yet resume.
func dead(p string) bool {
	res := make(chan bool, 1)
	go func() { res <- mount.Disconnected(p) }()
	select {
	case d := <-res:
		return d
	case <-time.After(time.Second):
		return false
	}
}
