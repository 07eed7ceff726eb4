package volume

import (
	"path/filepath"
	"testing"
)

// TestWriteAndCommitAllocateNothing: once the tree nodes a write touches are in memory, neither
// writes nor the commit of a Flush allocate. The volume is served to a loop device through
// FUSE: if it needed memory that the kernel could only free by writing through that same loop
// device, both would wait for each other (blockdev/doc.go, "Memory").
func TestWriteAndCommitAllocateNothing(t *testing.T) {
	s, err := CreateFileStore(filepath.Join(t.TempDir(), "vol"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	v := openVolume(t, s, OpenOptions{})
	defer v.Close(ctx)
	big, small := make([]byte, 1<<20), make([]byte, 100)
	work := func() {
		for _, w := range []struct {
			p   []byte
			off int64
		}{{big, 0}, {big[:BlockSize], 40 << 20}, {small, 8<<20 + 10}} {
			if err := v.WriteAt(ctx, w.p, w.off); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // load the nodes, grow the maps and lists to their working size
		work()
	}
	if n := testing.AllocsPerRun(20, work); n != 0 {
		t.Errorf("three writes and a commit allocate %v times", n)
	}
}
