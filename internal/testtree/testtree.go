// Package testtree builds the varied directory trees that the format, pack and mount tests
// pack, and compares an unpacked view against the source. It is for tests only.
package testtree

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Mtime is the modification time given to every entry, so trees are reproducible.
var Mtime = time.Date(2024, 5, 17, 12, 34, 56, 789_000_000, time.UTC)

// Content returns deterministic pseudo-random bytes for a file, seeded by its name.
func Content(name string, n int) []byte {
	var seed uint64
	for _, c := range []byte(name) {
		seed = seed*131 + uint64(c)
	}
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Build writes the varied tree under dir: empty files, files around the block size, a
// multi-MiB file, deep paths, long and non-ASCII names, symlinks, a hard link, unusual modes
// and, where the filesystem supports them, user xattrs. It returns dir.
func Build(t testing.TB, dir string) string {
	t.Helper()
	files := map[string]int{
		"empty":                               0,
		"one":                                 1,
		"b4095":                               4095,
		"b4096":                               4096,
		"b4097":                               4097,
		"multi/mib3":                          3<<20 + 123,
		"small/a.txt":                         100,
		"small/b.txt":                         2000,
		"small/c.txt":                         3000,
		"ünïcödé/日本語.txt":                     77,
		strings.Repeat("L", 255):              10,
		strings.Repeat("d/", 40) + "deep.txt": 42,
	}
	for name, n := range files {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, Content(name, n), 0o644))
	}
	must(t, os.Symlink("small/a.txt", filepath.Join(dir, "link-rel")))
	must(t, os.Symlink("/etc/does-not-exist", filepath.Join(dir, "link-dangling")))
	must(t, os.Link(filepath.Join(dir, "b4097"), filepath.Join(dir, "small/hardlink-b4097")))
	must(t, os.MkdirAll(filepath.Join(dir, "emptydir"), 0o700))
	for name, mode := range map[string]fs.FileMode{"one": 0o600, "b4095": 0o755, "small/c.txt": 0o755 | fs.ModeSetuid, "emptydir": 0o777 | fs.ModeSticky} {
		must(t, os.Chmod(filepath.Join(dir, name), mode))
	}
	if err := unix.Setxattr(filepath.Join(dir, "small/a.txt"), "user.encfs.test", []byte("value"), 0); err != nil {
		t.Logf("no user xattrs on this filesystem (%v); xattrs not covered", err)
	}
	Touch(t, dir)
	return dir
}

// Touch sets every mtime under dir (without following symlinks) to Mtime.
func Touch(t testing.TB, dir string) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(Mtime.UnixNano()), unix.NsecToTimespec(Mtime.UnixNano())}
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		must(t, err)
		paths = append(paths, p)
		return nil
	})
	for i := len(paths) - 1; i >= 0; i-- { // children before parents
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// Entry is what a test compares for one path.
type Entry struct {
	Mode    uint32 // st_mode
	Size    int64  // regular files only
	Mtime   int64  // nanoseconds
	Target  string // symlinks
	Content []byte // regular files
	Nlink   uint32 // regular files
	Xattr   string // user.encfs.test, if present
}

// Snapshot reads a tree (the source, or a mount of its image) into a map by relative path.
func Snapshot(t testing.TB, dir string) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := Entry{Mode: st.Mode, Mtime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.Size, e.Nlink = st.Size, uint32(st.Nlink)
			if e.Content, err = os.ReadFile(p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			buf := make([]byte, 64)
			if n, err := unix.Getxattr(p, "user.encfs.test", buf); err == nil {
				e.Xattr = string(buf[:n])
			}
		}
		out[rel] = e
		return nil
	}))
	return out
}

// Equal reports the differences between two snapshots.
func Equal(t testing.TB, want, got map[string]Entry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing", p)
		case w.Mode != g.Mode:
			t.Errorf("%s: mode %o, want %o", p, g.Mode, w.Mode)
		case w.Size != g.Size || !bytes.Equal(w.Content, g.Content):
			t.Errorf("%s: content differs (size %d, want %d)", p, g.Size, w.Size)
		case w.Target != g.Target:
			t.Errorf("%s: symlink target %q, want %q", p, g.Target, w.Target)
		case w.Mtime != g.Mtime:
			t.Errorf("%s: mtime %d, want %d", p, g.Mtime, w.Mtime)
		case w.Nlink != g.Nlink:
			t.Errorf("%s: nlink %d, want %d", p, g.Nlink, w.Nlink)
		case w.Xattr != g.Xattr:
			t.Errorf("%s: xattr %q, want %q", p, g.Xattr, w.Xattr)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected", p)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
