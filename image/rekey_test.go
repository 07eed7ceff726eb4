package image_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
)

// TestRekey re-encrypts an image under a new master key without its source: the tree reads
// the same, no ciphertext block and no data key is shared, the series is kept and the
// generation raised, and the old master key does not open the new image.
func TestRekey(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	oldKey, newRelease := newKey(t), newKey(t)
	oldPath := packTree(t, src, oldKey)
	old := openImage(t, oldPath, oldKey)
	oh := old.Header()
	out := filepath.Join(t.TempDir(), "rekeyed.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	nh, err := image.Rekey(context.Background(), old, f, image.WriterOptions{ReleaseKeys: [][]byte{newRelease}, Series: &oh.Series, Generation: oh.Generation + 1})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if nh.Series != oh.Series || nh.Generation != oh.Generation+1 || nh.Salt == oh.Salt || nh.Root == oh.Root || nh.ContentBlocks != oh.ContentBlocks {
		t.Fatalf("rekeyed header: series %v, generation %d, salt/root changed %v/%v, %d blocks", nh.Series == oh.Series, nh.Generation,
			nh.Salt != oh.Salt, nh.Root != oh.Root, nh.ContentBlocks)
	}
	rekeyed := openImage(t, out, newRelease)
	if err := rekeyed.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	testtree.Equal(t, testtree.Snapshot(t, src), snapshotImage(t, rekeyed))
	a, _ := os.ReadFile(oldPath)
	b, _ := os.ReadFile(out)
	for blk := uint64(0); blk < oh.ContentBlocks; blk++ {
		off := image.HeaderSize + blk*image.BlockSize
		if bytes.Equal(a[off:off+image.BlockSize], b[off:off+image.BlockSize]) {
			t.Fatalf("content block %d has the same ciphertext after rekey", blk)
		}
	}
	oldMaster, _ := image.MasterKeyForTest(oh, oldKey)
	newMaster, _ := image.MasterKeyForTest(nh, newRelease)
	if bytes.Equal(oldMaster, newMaster) {
		t.Fatal("rekey kept the master key")
	}
	if _, err := image.MasterKeyForTest(nh, oldKey); err == nil {
		t.Fatal("the old release key opens the rekeyed image, though it was not given")
	}
}
