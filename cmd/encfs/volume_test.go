package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/volume"
)

func TestVolumeCreateBadInput(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	mustRun(t, "keygen", "--out", key)
	target := filepath.Join(dir, "vol")
	expectFail(t, `--size: size "10X"`, "volume", "create", "--key-file", key, "--size", "10X", target)
	expectFail(t, "multiple of 4 KiB", "volume", "create", "--key-file", key, "--size", "1000", target)
	expectFail(t, "--fs btrfs: want one of ext4, xfs", "volume", "create", "--key-file", key, "--size", "64M", "--fs", "btrfs", target)
	expectFail(t, "preallocation is for a volume in a local file", "volume", "create", "--key-file", key, "--size", "64M",
		"--preallocate", "https://account.blob.core.windows.net/container/vol")
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a refused create left %s behind (%v)", target, err)
	}
	expectFail(t, "not an encfs volume", "volume", "inspect", key)
}

// TestVolumeKeyslots: key add-slot and remove-slot recognise a volume by its magic. The volume
// is created preallocated, so the whole create path (store written whole, mkfs through FUSE and
// a loop device, inspect, verify) runs with that flag too.
func TestVolumeKeyslots(t *testing.T) {
	fstest.RequireFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("volume create needs root (loop devices)")
	}
	dir := t.TempDir()
	k1, k2 := filepath.Join(dir, "k1"), filepath.Join(dir, "k2")
	mustRun(t, "keygen", "--out", k1)
	mustRun(t, "keygen", "--out", k2)
	vol := filepath.Join(dir, "vol")
	mustRun(t, "volume", "create", "--key-file", k1, "--size", "32M", "--preallocate", vol)
	if st, err := os.Stat(vol); err != nil || st.Sys().(*syscall.Stat_t).Blocks*512 < st.Size() {
		t.Fatalf("a store created with --preallocate is not allocated whole: %v", err)
	}
	out := mustRun(t, "key", "add-slot", "--key-file", k1, "--new-key-file", k2, vol)
	b2, _ := os.ReadFile(k2)
	b1, _ := os.ReadFile(k1)
	if !strings.Contains(out, volume.Fingerprint(b2)) {
		t.Fatalf("add-slot output lacks the new fingerprint:\n%s", out)
	}
	out = mustRun(t, "volume", "inspect", "--key-file", k2, vol)
	if !strings.Contains(out, "filesystem: ext4") || strings.Count(out, "keyslot:") != 2 {
		t.Fatalf("inspect with the new key:\n%s", out)
	}
	mustRun(t, "key", "remove-slot", "--key-file", k2, "--fingerprint", volume.Fingerprint(b1), vol)
	expectFail(t, "wrong key", "volume", "inspect", "--key-file", k1, vol)
	mustRun(t, "volume", "verify", "-q", "--key-file", k2, vol)
}
