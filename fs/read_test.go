package fs_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/testtree"
)

// writeFiles writes files of the given sizes with testtree.Content under dir.
func writeFiles(t testing.TB, dir string, sizes map[string]int) {
	t.Helper()
	for name, n := range sizes {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, testtree.Content(name, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentRandomReads has 32 readers doing random reads of random lengths, half of them
// with O_DIRECT so that their requests reach the filesystem instead of the page cache. Run
// under -race it also checks the read path for data races.
func TestConcurrentRandomReads(t *testing.T) {
	src := t.TempDir()
	sizes := map[string]int{"big": 12<<20 + 77, "mid": 1<<20 + 5, "small": 3000, "tiny": 1}
	writeFiles(t, src, sizes)
	m := fstest.MountTree(t, src, nil)
	names := []string{"big", "mid", "small", "tiny"}
	contents := map[string][]byte{}
	for _, name := range names {
		contents[name] = testtree.Content(name, sizes[name])
	}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			flags := os.O_RDONLY
			if g%2 == 1 {
				flags |= syscall.O_DIRECT
			}
			files := map[string]*os.File{}
			for _, name := range names {
				f, err := os.OpenFile(filepath.Join(m.Dir, name), flags, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				files[name] = f
			}
			buf := make([]byte, 1<<20)
			for range 100 {
				name := names[rng.IntN(len(names))]
				want := contents[name]
				off := rng.IntN(len(want) + 100)
				n := 1 + rng.IntN(len(buf)-1)
				if rng.IntN(4) == 0 {
					n = 4096 // small page-sized reads, the data-loader pattern
				}
				got, err := files[name].ReadAt(buf[:n], int64(off))
				if err != nil && !errors.Is(err, io.EOF) {
					t.Errorf("%s: read %d at %d: %v", name, n, off, err)
					return
				}
				start := min(off, len(want))
				if !bytes.Equal(buf[:got], want[start:min(off+n, len(want))]) {
					t.Errorf("%s: read %d at %d: wrong bytes (%d returned)", name, n, off, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := m.FS.Stats(); st.FilesRead != uint64(len(names)) || st.ReadErrors != 0 {
		t.Errorf("after all readers: %+v, want %d files read and no errors", st, len(names))
	}
}

func TestReadsPastEOF(t *testing.T) {
	src := t.TempDir()
	sizes := map[string]int{"empty": 0, "b4097": 4097}
	writeFiles(t, src, sizes)
	m := fstest.MountTree(t, src, nil)
	for _, direct := range []bool{false, true} {
		flags := os.O_RDONLY
		if direct {
			flags |= syscall.O_DIRECT
		}
		f, err := os.OpenFile(filepath.Join(m.Dir, "b4097"), flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		want := testtree.Content("b4097", 4097)
		buf := make([]byte, 8192)
		for _, c := range []struct {
			off      int64
			n, wantN int
		}{{4097, 100, 0}, {4090, 100, 7}, {4096, 4096, 1}, {1 << 40, 10, 0}, {0, 8192, 4097}} {
			got, err := f.ReadAt(buf[:c.n], c.off)
			if got != c.wantN || (got < c.n && !errors.Is(err, io.EOF)) {
				t.Errorf("direct=%v: read %d at %d: %d bytes, %v; want %d bytes and EOF", direct, c.n, c.off, got, err, c.wantN)
			}
			if !bytes.Equal(buf[:got], want[min(c.off, 4097):min(c.off, 4097)+int64(got)]) {
				t.Errorf("direct=%v: read %d at %d: wrong bytes", direct, c.n, c.off)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(m.Dir, "empty"))
	if err != nil || len(b) != 0 {
		t.Errorf("empty file: %d bytes, %v", len(b), err)
	}
}

// TestOpensAndClosesStayInTheKernel reads files through many opens. The filesystem answers the
// first OPEN and FLUSH with ENOSYS, so the kernel opens and closes files by itself from then on
// and keeps their pages across opens: reading a file again through a new open sends no read
// request, and every file still reads back right.
func TestOpensAndClosesStayInTheKernel(t *testing.T) {
	src := t.TempDir()
	sizes := map[string]int{"a": 300 << 10, "b": 5000, "c": 2<<20 + 3}
	writeFiles(t, src, sizes)
	m := fstest.MountTree(t, src, nil)
	for name, n := range sizes {
		for i := range 3 {
			got, err := os.ReadFile(filepath.Join(m.Dir, name))
			if err != nil || !bytes.Equal(got, testtree.Content(name, n)) {
				t.Fatalf("%s, read %d: %d bytes, %v; want its %d bytes", name, i+1, len(got), err, n)
			}
		}
	}
	before := m.FS.Stats()
	for name := range sizes {
		if _, err := os.ReadFile(filepath.Join(m.Dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	after := m.FS.Stats()
	if after.Reads != before.Reads {
		t.Errorf("reading the files again through new opens sent %d read requests; want 0 (pages kept across opens)", after.Reads-before.Reads)
	}
	if after.FilesRead != uint64(len(sizes)) {
		t.Errorf("files read: %d, want %d", after.FilesRead, len(sizes))
	}
}
