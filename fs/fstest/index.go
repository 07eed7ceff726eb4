package fstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/encfs/encfs/image"
)

// IndexImage writes an authentic image (a real master key and keyslot for key) around an
// index given record by record, as a buggy or hostile key holder could: inodes[i] is inode i
// (0, the root, must be a directory) and dirs[i] the entry list of directory inode i, written
// as given, unsorted or cyclic. Directory sizes, entry counts and offsets are filled in. It
// returns the image's path.
func IndexImage(t testing.TB, key []byte, inodes []image.Inode, dirs map[uint64][]image.DirEntry) string {
	t.Helper()
	var meta []byte
	for i := range inodes {
		if list, ok := dirs[uint64(i)]; ok {
			start := len(meta)
			for _, e := range list {
				meta = image.AppendDirent(meta, e)
			}
			inodes[i].DataOffset, inodes[i].Size, inodes[i].Entries = uint64(start), uint64(len(meta)-start), uint32(len(list))
		}
	}
	path := filepath.Join(t.TempDir(), "index.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := image.NewWriter(f, image.WriterOptions{ReleaseKeys: [][]byte{key}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	sb := image.Superblock{MetaOffset: 0, MetaLength: uint64(len(meta)), InodeCount: uint64(len(inodes))}
	w.Write(meta)
	w.PadToBlock()
	sb.InodeTableOffset = w.Offset()
	rec := make([]byte, image.InodeSize)
	for _, in := range inodes {
		in.Marshal(rec)
		w.Write(rec)
	}
	if _, err := w.Finish(&sb); err != nil {
		t.Fatal(err)
	}
	return path
}
