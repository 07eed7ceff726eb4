package sidecar

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
)

// TestReplayRangesFetchTheTreeFirst: an access profile's replay asks for the integrity tree
// before the profile's files when the tree fits an eighth of the caches, and not otherwise;
// then each file's extent in the profile's order, skipping inodes that are not regular files.
func TestReplayRangesFetchTheTreeFirst(t *testing.T) {
	src := t.TempDir()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), make([]byte, 50000+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := fstest.NewKey(t)
	im := fstest.OpenImage(t, fstest.Pack(t, src, key), key, image.Options{})
	ctx := context.Background()
	var inodes []uint64
	var files [][2]int64
	for _, name := range []string{"f2", "f0"} {
		in, err := im.LookupPath(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		off, n, _ := im.FileExtent(&in)
		inodes = append(inodes, in.Ino)
		files = append(files, [2]int64{off, n})
	}
	dir, err := im.LookupPath(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	inodes = append(inodes, dir.Ino, 1<<40) // a directory, and no inode at all
	m := &Mounted{Image: im}
	treeOff, treeLen := im.TreeExtent()
	for _, c := range []struct {
		room     int64
		withTree bool
	}{{8 * treeLen, true}, {8*treeLen - 1, false}} {
		var got [][2]int64
		for off, n := range m.replayRanges(ctx, inodes, c.room) {
			got = append(got, [2]int64{off, n})
		}
		want := files
		if c.withTree {
			want = append([][2]int64{{treeOff, treeLen}}, files...)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("caches of %d bytes: replay ranges %v, want %v", c.room, got, want)
		}
	}
}
