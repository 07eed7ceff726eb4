package pack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirectorySwappedAfterLstat replaces a directory, after the walk's lstat, by a symlink to
// another directory and by another directory: listing it must refuse both rather than pack
// what is now there.
func TestDirectorySwappedAfterLstat(t *testing.T) {
	root := t.TempDir()
	elsewhere := filepath.Join(root, "elsewhere")
	os.Mkdir(elsewhere, 0o755)
	os.WriteFile(filepath.Join(elsewhere, "secret"), []byte("x"), 0o600)
	for name, swap := range map[string]func(p string){
		"symlink": func(p string) { os.Remove(p); os.Symlink(elsewhere, p) },
		"other directory": func(p string) { // made while the old one exists, so its inode differs
			os.Mkdir(p+".new", 0o755)
			os.Remove(p)
			os.Rename(p+".new", p)
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(root, strings.ReplaceAll(name, " ", "-"))
			os.Mkdir(p, 0o755)
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			if names, err := readDirNames(p, &st); err != nil || len(names) != 0 {
				t.Fatalf("unchanged directory: %v, %v", names, err)
			}
			swap(p)
			if names, err := readDirNames(p, &st); err == nil || !strings.Contains(err.Error(), "changed while being packed") {
				t.Fatalf("swapped directory listed: %v, %v", names, err)
			}
		})
	}
}
