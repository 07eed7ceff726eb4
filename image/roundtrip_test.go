package image_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/pack"
)

func newKey(t testing.TB) []byte {
	k := make([]byte, image.ReleaseKeySize)
	rand.Read(k)
	return k
}

// packTree packs dir into a new image in a temp dir and returns its path.
func packTree(t testing.TB, dir string, keys ...[]byte) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "test.img")
	if _, err := pack.Pack(context.Background(), dir, img, pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: keys}}); err != nil {
		t.Fatalf("pack: %v", err)
	}
	return img
}

func openImage(t testing.TB, path string, key []byte) *image.Image {
	t.Helper()
	src, err := blobio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.Open(context.Background(), image.Plain(src), [][]byte{key}, image.Options{})
	if err != nil {
		src.Close()
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

// snapshotImage reads an image through the library into the same shape testtree reads a
// directory into.
func snapshotImage(t testing.TB, im *image.Image) map[string]testtree.Entry {
	t.Helper()
	ctx := context.Background()
	out := map[string]testtree.Entry{}
	err := im.Walk(ctx, func(p string, in *image.Inode) error {
		rel := strings.TrimPrefix(p, "/")
		if rel == "" {
			rel = "."
		}
		e := testtree.Entry{Mode: in.Mode, Mtime: in.MtimeSec*1e9 + int64(in.MtimeNsec)}
		switch {
		case in.IsRegular():
			e.Size, e.Nlink = int64(in.Size), in.Nlink
			e.Content = make([]byte, in.Size)
			if n, err := im.ReadFile(ctx, in, e.Content, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(e.Content)) {
				return err
			}
		case in.IsSymlink():
			target, err := im.Readlink(ctx, in)
			if err != nil {
				return err
			}
			e.Target = target
		}
		xs, err := im.Xattrs(ctx, in)
		if err != nil {
			return err
		}
		for _, x := range xs {
			if x.Name == "user.encfs.test" {
				e.Xattr = string(x.Value)
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	key := newKey(t)
	img := packTree(t, src, key)
	im := openImage(t, img, key)
	testtree.Equal(t, testtree.Snapshot(t, src), snapshotImage(t, im))
	if err := im.Verify(context.Background(), nil); err != nil {
		t.Fatalf("verify: %v", err)
	}
	sb := im.Superblock()
	if sb.Symlinks != 2 || sb.Dirs < 40 {
		t.Errorf("superblock counts %+v", sb)
	}
}

func TestReadFileEdges(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	key := newKey(t)
	im := openImage(t, packTree(t, src, key), key)
	ctx := context.Background()
	in, err := im.LookupPath(ctx, "multi/mib3")
	if err != nil {
		t.Fatal(err)
	}
	want := testtree.Content("multi/mib3", int(in.Size))
	for _, c := range []struct{ off, n int }{{0, 1}, {4095, 2}, {4096, 4096}, {1, 1 << 20}, {12345, 300000}, {len(want) - 10, 100}} {
		buf := make([]byte, c.n)
		n, err := im.ReadFile(ctx, &in, buf, int64(c.off))
		end := min(c.off+c.n, len(want))
		// The file's end, as its inode says, shortens a read; it is never an error.
		if err != nil || n != end-c.off || !bytes.Equal(buf[:n], want[c.off:end]) {
			t.Errorf("read %d@%d: got %d bytes, err %v", c.n, c.off, n, err)
		}
	}
	for _, off := range []int64{int64(len(want)), int64(len(want)) + 4096} {
		if n, err := im.ReadFile(ctx, &in, make([]byte, 10), off); n != 0 || err != nil {
			t.Errorf("read at %d, at or past the end: %d bytes, %v", off, n, err)
		}
	}
	if _, err := im.LookupPath(ctx, "nope/x"); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("lookup of a missing path: %v", err)
	}
	if _, err := im.LookupPath(ctx, path.Join("one", "x")); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("lookup through a file: %v", err)
	}
}

func TestMultipleKeyslots(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	img := packTree(t, src, k1, k2)
	openImage(t, img, k1)
	openImage(t, img, k2)
	ctx := context.Background()
	srcF, _ := blobio.OpenFile(img)
	defer srcF.Close()
	_, err := image.Open(ctx, image.Plain(srcF), [][]byte{k3}, image.Options{})
	var wk *image.WrongKeyError
	if !errors.As(err, &wk) || !strings.Contains(err.Error(), "fingerprint") || !strings.Contains(err.Error(), image.Fingerprint(k1)) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := image.AddKeyslot(ctx, openRW(t, img), k2, k3); err != nil {
		t.Fatal(err)
	}
	openImage(t, img, k3)
	if err := image.RemoveKeyslot(ctx, openRW(t, img), k3, image.Fingerprint(k1)); err != nil {
		t.Fatal(err)
	}
	if _, err := image.Open(ctx, image.Plain(srcF), [][]byte{k1}, image.Options{}); !errors.Is(err, image.ErrWrongKey) {
		t.Fatalf("removed key still opens: %v", err)
	}
	if err := image.AddKeyslot(ctx, openRW(t, img), k1, newKey(t)); !errors.Is(err, image.ErrWrongKey) {
		t.Fatalf("add-slot with a removed key: %v", err)
	}
	openImage(t, img, k2)
	testtree.Equal(t, testtree.Snapshot(t, src), snapshotImage(t, openImage(t, img, k3)))
}

// openRW opens an image file for a keyslot edit, closed when the test ends.
func openRW(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
