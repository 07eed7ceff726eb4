package blobio

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alignedTo returns n bytes whose address is a multiple of align.
func alignedTo(n int, align int64) []byte {
	b := make([]byte, n+int(align))
	skip := (align - int64(uintptr(unsafe.Pointer(&b[0])))%align) % align
	return b[skip : skip+int64(n)]
}

// writeEvicted writes data to a new file, syncs it and asks the kernel to drop its pages, so
// that residency afterwards tells which reads went through the page cache.
func writeEvicted(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	return p
}

// resident reports, page by page, whether the file's pages are in the page cache.
func resident(t *testing.T, path string) []bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	// x/sys/unix has no Mincore wrapper.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	out := make([]bool, len(vec))
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out
}

func TestFileSourceReads(t *testing.T) {
	const page = 4096
	data := make([]byte, 40*page+123) // a partial page at the end
	rand.Read(data)
	path := writeEvicted(t, data)
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.useDirectIO() {
		t.Logf("%s has no direct I/O: every read is buffered", filepath.Dir(path))
	}
	align := max(s.memAlign, page)
	ctx := context.Background()
	check := func(name string, p []byte, off int64, wantErr error) {
		t.Helper()
		n, err := s.ReadAt(ctx, p, off)
		want := data[min(off, int64(len(data))):min(off+int64(len(p)), int64(len(data)))]
		if !errors.Is(err, wantErr) || n != len(want) || !bytes.Equal(p[:n], want) {
			t.Errorf("%s: read %d at %d = %d bytes, %v; want %d bytes, %v, and the file's bytes", name, len(p), off, n, err, len(want), wantErr)
		}
	}
	check("large, aligned", alignedTo(16*page, align), page, nil)               // pages 1-16, direct
	check("small, aligned", alignedTo(page, align), 20*page, nil)               // page 20, buffered
	check("unaligned buffer", alignedTo(16*page+1, align)[1:], 22*page, nil)    // pages 22-37, buffered
	check("large, through the end", alignedTo(16*page, align), 38*page, io.EOF) // pages 38-40, buffered
	check("past the end", alignedTo(16*page, align), 41*page, io.EOF)

	if s.direct == nil {
		return
	}
	// The large aligned read bypassed the page cache; the others went through it.
	res := resident(t, path)
	for pg, want := range map[int]bool{1: false, 8: false, 16: false, 20: true, 22: true, 37: true, 38: true} {
		if res[pg] != want {
			t.Errorf("page %d resident = %v, want %v (only large aligned reads bypass the page cache)", pg, res[pg], want)
		}
	}
}
