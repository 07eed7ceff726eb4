package image_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
)

func dirInode() image.Inode  { return image.Inode{Mode: syscall.S_IFDIR | 0o755, Nlink: 2} }
func fileInode() image.Inode { return image.Inode{Mode: syscall.S_IFREG | 0o644, Nlink: 1} }

const (
	typeDir = syscall.S_IFDIR >> 12
	typeReg = syscall.S_IFREG >> 12
)

// TestHostileIndexRefused opens authentic images (made with the release key, as a key holder
// could) whose index is cyclic, reaches one directory twice, or lists an entry with another
// type than its inode's. Walk and Verify (encfs verify, ls -R) and LookupPath (ls, cat) must
// fail with ErrCorrupt, quickly, instead of looping or returning the wrong kind of file.
func TestHostileIndexRefused(t *testing.T) {
	cases := []struct {
		name   string
		inodes []image.Inode
		dirs   map[uint64][]image.DirEntry
		lookup string // a path whose lookup must fail
	}{
		{"entry back to an ancestor", []image.Inode{dirInode(), dirInode(), dirInode()}, map[uint64][]image.DirEntry{
			0: {{Name: "a", Ino: 1, Type: typeDir}},
			1: {{Name: "b", Ino: 2, Type: typeDir}},
			2: {{Name: "up", Ino: 1, Type: typeDir}},
		}, "a/b/up/b/up"},
		{"directory entry to itself", []image.Inode{dirInode(), dirInode()}, map[uint64][]image.DirEntry{
			0: {{Name: "a", Ino: 1, Type: typeDir}},
			1: {{Name: "self", Ino: 1, Type: typeDir}},
		}, "a/self"},
		{"ancestor listed as a file", []image.Inode{dirInode(), dirInode(), fileInode()}, map[uint64][]image.DirEntry{
			0: {{Name: "a", Ino: 1, Type: typeDir}},
			1: {{Name: "up", Ino: 1, Type: typeReg}},
		}, "a/up"},
		{"file listed as a directory", []image.Inode{dirInode(), fileInode()}, map[uint64][]image.DirEntry{
			0: {{Name: "f", Ino: 1, Type: typeDir}},
		}, "f"},
		{"one directory under two names", []image.Inode{dirInode(), dirInode()}, map[uint64][]image.DirEntry{
			0: {{Name: "a", Ino: 1, Type: typeDir}, {Name: "b", Ino: 1, Type: typeDir}},
			1: {},
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := newKey(t)
			im := openImage(t, fstest.IndexImage(t, key, c.inodes, c.dirs), key)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := im.Walk(ctx, func(string, *image.Inode) error { return nil }); !errors.Is(err, image.ErrCorrupt) {
				t.Errorf("walk: %v, want ErrCorrupt", err)
			}
			if err := im.Verify(ctx, nil); !errors.Is(err, image.ErrCorrupt) {
				t.Errorf("verify: %v, want ErrCorrupt", err)
			}
			if c.lookup != "" {
				if _, err := im.LookupPath(ctx, c.lookup); !errors.Is(err, image.ErrCorrupt) {
					t.Errorf("lookup %s: %v, want ErrCorrupt", c.lookup, err)
				}
			}
		})
	}
}
