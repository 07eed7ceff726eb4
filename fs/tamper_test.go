package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
)

// TestTamperedBlock flips one byte in one data block of one file. Exactly the reads that need
// the verification unit holding it (8 KiB, image.UnitSize) fail with EIO, with one log line
// naming the inode and the unit's first block (not the path, file offset or size), and are
// counted; every other read of that file, the neighbouring units included, and of every other
// file returns the right bytes, never different ones. With LogPaths the line also names the
// file.
func TestTamperedBlock(t *testing.T) {
	for _, logPaths := range []bool{false, true} {
		t.Run(fmt.Sprintf("LogPaths=%v", logPaths), func(t *testing.T) { testTamperedBlock(t, logPaths) })
	}
}

func testTamperedBlock(t *testing.T, logPaths bool) {
	src := t.TempDir()
	sizes := map[string]int{"victim": 4<<20 + 10, "other": 3<<20 + 1, "dir/small": 5000}
	writeFiles(t, src, sizes)
	key := fstest.NewKey(t)
	img := fstest.Pack(t, src, key)

	// Aim at the block holding victim's byte 2 MiB + 100.
	const target = 2<<20 + 100
	im := fstest.OpenImage(t, img, key, image.Options{})
	in, err := im.LookupPath(context.Background(), "victim")
	if err != nil {
		t.Fatal(err)
	}
	badUnit := (in.DataOffset + target) / image.UnitSize
	badBlock := badUnit * image.BlocksPerUnit                        // the first block of the unit, which the log names
	badStart := int64(badUnit*image.UnitSize) - int64(in.DataOffset) // file offset where the unit starts
	badEnd := badStart + image.UnitSize
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[image.HeaderSize+in.DataOffset+target] ^= 0x01
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}

	m := fstest.Mount(t, img, key, &fstest.Options{FS: encfs.Options{LogPaths: logPaths}})
	want := testtree.Content("victim", sizes["victim"])
	f, err := os.Open(filepath.Join(m.Dir, "victim"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	read := func(off int64, n int) error {
		got, err := f.ReadAt(buf[:n], off)
		if got > 0 && !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
			t.Fatalf("read %d at %d returned different bytes", n, off)
		}
		return err
	}
	// Reads that need the unit fail, however they overlap it, even where the flipped byte is
	// in another of its blocks.
	for _, c := range []struct {
		off int64
		n   int
	}{{badStart, 1}, {badStart + 4095, 1}, {badEnd - 1, 1}, {badStart + 4096, 4096}, {badEnd - 4096, 4096},
		{badStart - 10, 20}, {badEnd - 10, 20}, {badStart - 1<<19, 1 << 20}} {
		if err := read(c.off, c.n); !errors.Is(err, syscall.EIO) {
			t.Errorf("read %d at %d (needs the bad unit): %v, want EIO", c.n, c.off, err)
		}
	}
	if _, err := os.ReadFile(filepath.Join(m.Dir, "victim")); !errors.Is(err, syscall.EIO) {
		t.Errorf("reading the whole file: %v, want EIO", err)
	}
	// Reads that do not need it succeed, including the blocks and units on either side.
	for _, c := range []struct {
		off int64
		n   int
	}{{0, 4096}, {badStart - 4096, 4096}, {badEnd, 4096}, {badStart - image.UnitSize, image.UnitSize},
		{badEnd, image.UnitSize}, {badStart - 1, 1}, {badEnd, 1}, {3 << 20, 1 << 20}} {
		if err := read(c.off, c.n); err != nil {
			t.Errorf("read %d at %d (does not need the bad unit): %v", c.n, c.off, err)
		}
	}
	// Other files are untouched.
	for _, name := range []string{"other", "dir/small"} {
		got, err := os.ReadFile(filepath.Join(m.Dir, name))
		if err != nil || !bytes.Equal(got, testtree.Content(name, sizes[name])) {
			t.Errorf("%s: %d bytes, %v; want the source", name, len(got), err)
		}
	}

	logs := m.Logs()
	lines := strings.Count(logs, "msg=\"integrity check failed")
	if lines != 1 {
		t.Errorf("%d integrity log lines, want exactly 1 for one bad unit:\n%s", lines, logs)
	}
	for _, s := range []string{fmt.Sprintf("inode=%d", in.Ino), fmt.Sprintf("block=%d", badBlock)} {
		if !strings.Contains(logs, s) {
			t.Errorf("log does not say %q:\n%s", s, logs)
		}
	}
	private := []string{"victim", "path=", "offset=", fmt.Sprint(sizes["victim"])}
	for _, s := range private {
		if got := strings.Contains(logs, s); got != (logPaths && s != fmt.Sprint(sizes["victim"])) {
			t.Errorf("log mentions %q: %v, want %v (LogPaths %v):\n%s", s, got, !got, logPaths, logs)
		}
	}
	if st := m.FS.Stats(); st.IntegrityErrors == 0 || st.IntegrityErrors != st.ReadErrors {
		t.Errorf("stats %+v: want integrity errors counted, and no other errors", st)
	}
	if m.Image.Stats().IntegrityFailures == 0 {
		t.Error("image counted no integrity failures")
	}
}
