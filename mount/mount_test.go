package mount_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/mount"
)

func sampleTree(t *testing.T) string {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func mounted(t *testing.T, dir string) bool {
	ms, err := mount.MountsAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms) > 0
}

func TestReadAheadRaised(t *testing.T) {
	m := fstest.MountTree(t, sampleTree(t), nil)
	kb, err := mount.ReadAhead(m.Point.Dev)
	if err != nil || kb != mount.DefaultReadAheadKB {
		t.Errorf("read_ahead_kb of %s: %d, %v; want %d", m.Point.Dev, kb, err, mount.DefaultReadAheadKB)
	}
	ms, _ := mount.MountsAt(m.Dir)
	if len(ms) != 1 || ms[0].FSType != "fuse.encfs" || ms[0].Source != fstest.TestFsName {
		t.Errorf("mount table: %+v", ms)
	}
}

func TestPublishSymlink(t *testing.T) {
	parent := t.TempDir()
	target := filepath.Join(parent, "share")
	if err := os.Mkdir(target, 0o755); err != nil { // an empty directory is replaced
		t.Fatal(err)
	}
	m := fstest.MountTree(t, sampleTree(t), &fstest.Options{Mount: mount.Options{Mountpoint: target, Publish: true}})
	if link, err := os.Readlink(target); err != nil || link != ".share.encfs-mnt" {
		t.Fatalf("target: %q, %v; want a symlink to .share.encfs-mnt", link, err)
	}
	if m.Point.Dir != mount.HiddenDir(target) || !mounted(t, m.Point.Dir) {
		t.Errorf("mounted at %s, want %s", m.Point.Dir, mount.HiddenDir(target))
	}
	if b, err := os.ReadFile(filepath.Join(target, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("read through the symlink: %q, %v", b, err)
	}
	if err := m.Point.Unmount(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{target, m.Point.Dir} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after unmount: %v", p, err)
		}
	}
}

func TestPublishRefusesToReplaceAFile(t *testing.T) {
	fstest.RequireFUSE(t)
	target := filepath.Join(t.TempDir(), "share")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := fstest.NewKey(t)
	im := fstest.OpenImage(t, fstest.Pack(t, sampleTree(t), key), key, image.Options{})
	f, err := encfs.New(t.Context(), im, encfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := mount.Mount(f, mount.Options{Mountpoint: target, Publish: true, FsName: fstest.TestFsName}); err == nil {
		p.Unmount()
		t.Fatal("published over a regular file")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the file was changed: %q", b)
	}
	if mounted(t, mount.HiddenDir(target)) {
		t.Error("hidden mount left behind after the failed publish")
	}
}

// TestUnmountBusy holds a file open on the mount: Unmount retries, then detaches lazily,
// leaving nothing in the mount table.
func TestUnmountBusy(t *testing.T) {
	m := fstest.MountTree(t, sampleTree(t), &fstest.Options{Mount: mount.Options{UnmountTimeout: 300 * time.Millisecond}})
	f, err := os.Open(filepath.Join(m.Dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if err := m.Point.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("unmount of a busy mount returned after %v, before the retry timeout", el)
	}
	if mounted(t, m.Point.Dir) {
		t.Error("still in the mount table")
	}
	// The connection ends now (aborted through fusectl) or, where fusectl is not mounted,
	// once the last open file is closed.
	f.Close()
	select {
	case <-m.Point.Done():
	case <-time.After(10 * time.Second):
		t.Error("the server still runs after the unmount and the last close")
	}
}
