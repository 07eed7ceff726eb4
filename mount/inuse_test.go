package mount_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/mount"
)

// newFS opens a small packed image as an encfs filesystem, ready to mount.
func newFS(t *testing.T) *encfs.FS {
	t.Helper()
	fstest.RequireFUSE(t)
	key := fstest.NewKey(t)
	im := fstest.OpenImage(t, fstest.Pack(t, sampleTree(t), key), key, image.Options{})
	f, err := encfs.New(t.Context(), im, encfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRefuseLiveForeignFUSE mounts a go-fuse loopback filesystem (a user's own read-write FUSE
// filesystem) and asks encfs to mount at the same place: it is refused, naming the type and
// source, and the loopback keeps serving.
func TestRefuseLiveForeignFUSE(t *testing.T) {
	f := newFS(t)
	backing, dir := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
	if err := os.WriteFile(filepath.Join(backing, "mine"), []byte("user data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := fusefs.NewLoopbackRoot(backing)
	if err != nil {
		t.Fatal(err)
	}
	server, err := fusefs.Mount(dir, root, &fusefs.Options{MountOptions: fuse.MountOptions{
		FsName: "someones-loopback", Name: "loopback", DirectMount: os.Geteuid() == 0}})
	if err != nil {
		t.Fatalf("loopback mount: %v", err)
	}
	t.Cleanup(func() { server.Unmount() })
	held, err := os.Open(filepath.Join(dir, "mine")) // a reader in the middle of its work
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	if err := mount.Check(mount.Options{Mountpoint: dir}); !errors.Is(err, mount.ErrInUse) {
		t.Errorf("Check of a live FUSE mount point: %v", err)
	}
	p, err := mount.Mount(f, mount.Options{Mountpoint: dir, FsName: fstest.TestFsName})
	if err == nil {
		p.Unmount()
		t.Fatal("mounted over a live FUSE filesystem")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, mount.ErrInUse) || !strings.Contains(err.Error(), "fuse.loopback") || !strings.Contains(err.Error(), "someones-loopback") {
		t.Errorf("error does not name the live mount's type and source: %v", err)
	}
	b := make([]byte, 64)
	if n, err := held.ReadAt(b, 0); string(b[:n]) != "user data" {
		t.Errorf("the held file no longer reads: %q, %v", b[:n], err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644); err != nil {
		t.Errorf("the loopback stopped serving writes: %v", err)
	}
	if ms, _ := mount.MountsAt(dir); len(ms) != 1 || ms[0].Source != "someones-loopback" {
		t.Errorf("mount table at %s: %+v; want only the loopback", dir, ms)
	}
}

// TestRefuseOtherMount refuses a mount point that is itself a mount of another kind (tmpfs).
func TestRefuseOtherMount(t *testing.T) {
	f := newFS(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("encfs-test-tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	p, err := mount.Mount(f, mount.Options{Mountpoint: dir, FsName: fstest.TestFsName})
	if err == nil {
		p.Unmount()
		t.Fatal("mounted over a tmpfs")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, mount.ErrInUse) || !strings.Contains(err.Error(), "tmpfs") || !strings.Contains(err.Error(), "encfs-test-tmpfs") {
		t.Errorf("error does not name the tmpfs: %v", err)
	}
	if ms, _ := mount.MountsAt(dir); len(ms) != 1 || ms[0].FSType != "tmpfs" {
		t.Errorf("mount table: %+v", ms)
	}
}

// TestMountPointCreatedAndRemoved: a missing mount point is created and removed at unmount; one
// that existed is left in place.
func TestMountPointCreatedAndRemoved(t *testing.T) {
	f := newFS(t)
	dir := filepath.Join(t.TempDir(), "new-mnt")
	p, err := mount.Mount(f, mount.Options{Mountpoint: dir, FsName: fstest.TestFsName})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hello")); string(b) != "hello\n" {
		t.Fatalf("read: %q, %v", b, err)
	}
	if err := p.Unmount(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the mount point encfs created is still there: %v", err)
	}

	existing := filepath.Join(t.TempDir(), "kept")
	if err := os.Mkdir(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	p, err = mount.Mount(newFS(t), mount.Options{Mountpoint: existing, FsName: fstest.TestFsName})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Unmount(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(existing); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("a mount point that existed was not left as it was: %v, %v", st, err)
	}
}

// TestMountPointMissingParent names the missing directory instead of creating a whole path.
func TestMountPointMissingParent(t *testing.T) {
	f := newFS(t)
	parent := filepath.Join(t.TempDir(), "no-such-dir")
	p, err := mount.Mount(f, mount.Options{Mountpoint: filepath.Join(parent, "mnt"), FsName: fstest.TestFsName})
	if err == nil {
		p.Unmount()
		t.Fatal("mounted under a missing parent")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), parent+" does not exist") || !strings.Contains(err.Error(), "create it first") {
		t.Errorf("error does not name the missing parent: %v", err)
	}
	if _, err := os.Lstat(parent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing parent was created: %v", err)
	}
}
