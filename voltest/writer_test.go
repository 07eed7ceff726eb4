package voltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blockdev"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/volume"
)

// TestSecondWriterRefused: while one process has a volume mounted read-write, a second
// writer is refused with a message that names the holder; once the first has stopped, the
// second mounts and sees what the first wrote.
func TestSecondWriterRefused(t *testing.T) {
	e := newEnv(t)
	store := filepath.Join(e.dir, "vol")
	e.create(store, "64M")
	d := e.mount(store)
	if err := writeDurably(filepath.Join(d.mnt, "f"), []byte("first writer")); err != nil {
		t.Fatal(err)
	}
	out, err := e.run("volume", "mount", "--key-file", e.key, store, filepath.Join(e.dir, "second"))
	if err == nil {
		t.Fatalf("a second writer mounted the volume:\n%s", out)
	}
	if !strings.Contains(out, "in use") || !strings.Contains(out, "pid") {
		t.Errorf("the refusal does not say who holds the volume:\n%s", out)
	}
	d.stop()
	d = e.mount(store)
	if got, err := os.ReadFile(filepath.Join(d.mnt, "f")); err != nil || string(got) != "first writer" {
		t.Fatalf("after the first writer stopped: %q, %v", got, err)
	}
	d.stop()
}

// TestPageBlobVolume creates, mounts and remounts a volume in a page blob in Azurite; a second
// writer is refused while the first holds the blob's lease.
func TestPageBlobVolume(t *testing.T) {
	e := newEnv(t)
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "vols", false)
	e.extraEnv = []string{"AZURE_STORAGE_CONNECTION_STRING=" + az.ConnectionString}
	url := az.BlobURL("vols", "v1")
	e.create(url, "64M")
	d := e.mount(url)
	data := bytes.Repeat([]byte("page blob "), 100000)
	if err := writeDurably(filepath.Join(d.mnt, "f"), data); err != nil {
		t.Fatal(err)
	}
	out, err := e.run("volume", "mount", "--key-file", e.key, url, filepath.Join(e.dir, "second"))
	if err == nil {
		t.Fatalf("a second writer mounted the leased volume:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "lease") {
		t.Errorf("the refusal does not name the lease:\n%s", out)
	}
	d.stop()
	d = e.mount(url, "--read-only")
	if got, err := os.ReadFile(filepath.Join(d.mnt, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back from the page blob: %d bytes, %v", len(got), err)
	}
	d.stop()
	if out, err := e.run("volume", "verify", "-q", "--key-file", e.key, url); err != nil {
		t.Fatalf("volume verify: %v\n%s", err, out)
	}
}

// TestMountConfig mounts an image and a read_write volume from one configuration with
// `encfs mount --config`, the volume published as a symlink (publish_symlink); on SIGTERM the
// symlink goes first, and the volume is flushed and released.
func TestMountConfig(t *testing.T) {
	e := newEnv(t)
	store := filepath.Join(e.dir, "vol")
	e.create(store, "64M")
	key, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "hello"), []byte("from the image"), 0o644)
	img := fstest.Pack(t, tree, key)

	imgMnt, volMnt := filepath.Join(e.dir, "img"), filepath.Join(e.dir, "vol-mnt")
	cfg, _ := json.Marshal(map[string]any{"azure_filesystems": []map[string]any{
		{"mount_point": imgMnt, "azure_url": img, "key_file": e.key, "read_write": false},
		{"mount_point": volMnt, "azure_url": store, "key_file": e.key, "read_write": true, "publish_symlink": true},
	}})
	cfgFile := filepath.Join(e.dir, "config.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(e.dir, "ready")
	d := e.start([]string{"mount", "--config", cfgFile, "--dev-allow-key-file", "--ready-file", ready}, volMnt, ready)
	if got, err := os.ReadFile(filepath.Join(imgMnt, "hello")); err != nil || string(got) != "from the image" {
		t.Fatalf("image beside the volume: %q, %v", got, err)
	}
	if st, err := os.Lstat(volMnt); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the volume's mount point is not published as a symlink: %v, %v", st, err)
	}
	if err := os.WriteFile(filepath.Join(volMnt, "result"), []byte("written by the job"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.stop() // no fsync: the shutdown flushes
	if _, err := os.Lstat(volMnt); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the published symlink is still there after the sidecar stopped: %v", err)
	}
	d = e.mount(store)
	if got, err := os.ReadFile(filepath.Join(d.mnt, "result")); err != nil || string(got) != "written by the job" {
		t.Fatalf("after the sidecar stopped: %q, %v", got, err)
	}
	d.stop()
}

// faultyStore is a volume.Store whose writes and flushes fail while failing is set: storage
// that went away under a mounted volume.
type faultyStore struct {
	volume.Store
	failing atomic.Bool
}

var errStorage = errors.New("injected storage fault")

func (s *faultyStore) WriteAt(ctx context.Context, p []byte, off int64) error {
	if s.failing.Load() {
		return errStorage
	}
	return s.Store.WriteAt(ctx, p, off)
}

func (s *faultyStore) Flush(ctx context.Context) error {
	if s.failing.Load() {
		return errStorage
	}
	return s.Store.Flush(ctx)
}

// TestStorageFaultDuringFlush: storage that fails while a mounted volume commits makes the
// fsync fail with EIO (the filesystem sees the error), nothing hangs, and what was
// acknowledged before is still there afterwards.
func TestStorageFaultDuringFlush(t *testing.T) {
	e := newEnv(t)
	store := filepath.Join(e.dir, "vol")
	e.create(store, "64M")
	key, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	open := func(fs *faultyStore) *volume.Volume {
		s, err := volume.OpenFileStore(store, false)
		if err != nil {
			t.Fatal(err)
		}
		fs.Store = s
		v, err := volume.Open(ctx, fs, [][]byte{key}, volume.OpenOptions{Log: log})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fs := &faultyStore{}
	v := open(fs)
	m, err := blockdev.Mount(ctx, v, t.TempDir(), blockdev.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeDurably(filepath.Join(m.Mountpoint, "acked"), []byte("acknowledged")); err != nil {
		t.Fatal(err)
	}
	fs.failing.Store(true)
	err = writeDurably(filepath.Join(m.Mountpoint, "lost"), bytes.Repeat([]byte("x"), 1<<20))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("write and fsync while storage fails: got %v, want EIO", err)
	}
	t.Logf("fsync while storage fails: %v", err)
	if err := m.Unmount(ctx); err == nil {
		t.Error("unmount reported success although the final flush failed")
	}
	v.Close(ctx)

	fs = &faultyStore{}
	v = open(fs)
	m, err = blockdev.Mount(ctx, v, t.TempDir(), blockdev.Options{Log: log})
	if err != nil {
		t.Fatalf("the volume does not mount after the fault: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(m.Mountpoint, "acked")); err != nil || string(got) != "acknowledged" {
		t.Errorf("acknowledged file after the fault: %q, %v", got, err)
	}
	if err := m.Unmount(ctx); err != nil {
		t.Error(err)
	}
	if err := v.Close(ctx); err != nil {
		t.Error(err)
	}
	e.fsck(store)
}

// TestXFSVolume: a volume made with --fs xfs mounts with its type detected and keeps what was
// written across a remount.
func TestXFSVolume(t *testing.T) {
	e := newEnv(t, "mkfs.xfs")
	store := filepath.Join(e.dir, "vol")
	e.create(store, "512M", "--fs", "xfs")
	d := e.mount(store)
	data := bytes.Repeat([]byte("xfs "), 1<<18)
	if err := writeDurably(filepath.Join(d.mnt, "f"), data); err != nil {
		t.Fatal(err)
	}
	d.stop()
	d = e.mount(store, "--read-only")
	if got, err := os.ReadFile(filepath.Join(d.mnt, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back from xfs: %d bytes, %v", len(got), err)
	}
	if !isMountedAs(d.mnt, "xfs") {
		t.Error("the volume is not mounted as xfs")
	}
	d.stop()
}

// isMountedAs reports whether dir is mounted with filesystem type fsType.
func isMountedAs(dir, fsType string) bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == dir && f[2] == fsType {
			return true
		}
	}
	return false
}
