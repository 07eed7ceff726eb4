package fs_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
)

// recordingSource records the prefetch hints that reach the source.
type recordingSource struct {
	image.Source
	mu    sync.Mutex
	hints [][2]int64
}

func (r *recordingSource) Prefetch(off, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hints = append(r.hints, [2]int64{off, n})
}

// TestSequentialReaderPrefetches reads a file from start to end and checks that the source was
// asked to prefetch ahead of the reader, inside the file, reaching its end.
func TestSequentialReaderPrefetches(t *testing.T) {
	src := t.TempDir()
	const size = 24 << 20
	writeFiles(t, src, map[string]int{"seq": size})
	key := fstest.NewKey(t)
	path := fstest.Pack(t, src, key)
	file, err := blobio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingSource{Source: image.Plain(file)}
	im, err := image.Open(context.Background(), rec, [][]byte{key}, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	in, err := im.LookupPath(context.Background(), "seq")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MountImage(t, im, nil)
	f, err := os.Open(filepath.Join(m.Dir, "seq"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.hints) < 2 {
		t.Fatalf("%d prefetch hints for a 24 MiB sequential read, want several: %v", len(rec.hints), rec.hints)
	}
	start := int64(image.HeaderSize + in.DataOffset) // the file's first byte in the image
	var reach int64
	treeHints := 0
	for _, h := range rec.hints {
		if h[0] >= int64(im.Header().TreeOffset) { // the integrity tree blocks of the same reads
			treeHints++
			continue
		}
		if h[0] >= int64(image.HeaderSize+im.Superblock().MetaOffset) { // index lookups
			continue
		}
		if h[0] < start || h[0]+h[1] > start+size {
			t.Errorf("hint [%d, %d) outside the file [%d, %d)", h[0], h[0]+h[1], start, start+size)
		}
		reach = max(reach, h[0]+h[1])
	}
	if reach != start+size {
		t.Errorf("prefetch reached %d, want the end of the file at %d", reach, start+size)
	}
	if treeHints == 0 {
		t.Error("no hint for the integrity tree blocks of the stream")
	}
	if m.FS.Stats().PrefetchBytes == 0 {
		t.Error("prefetched bytes not counted")
	}
}
