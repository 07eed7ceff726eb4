package fs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/encfs/encfs/fs/fstest"
)

// TestLargeDirectory lists a directory of 100,000 entries and looks names up in it.
func TestLargeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	const n = 100_000
	src := t.TempDir()
	dir := filepath.Join(src, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%06d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	m := fstest.MountTree(t, src, nil)
	entries, err := os.ReadDir(filepath.Join(m.Dir, "many"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		if want := fmt.Sprintf("f%06d", i); e.Name() != want || !e.Type().IsRegular() {
			t.Fatalf("entry %d is %s (%v), want regular file %s", i, e.Name(), e.Type(), want)
		}
	}
	for _, i := range []int{0, 1, 50_000, 99_998, 99_999} {
		st, err := os.Stat(filepath.Join(m.Dir, "many", fmt.Sprintf("f%06d", i)))
		if err != nil || st.Size() != 0 {
			t.Errorf("f%06d: %v", i, err)
		}
	}
	for _, name := range []string{"f100000", "g", "f00000", "F000001"} {
		if _, err := os.Stat(filepath.Join(m.Dir, "many", name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
}
