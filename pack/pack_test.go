package pack_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/pack"
)

func key() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func packOpts(keys ...[]byte) pack.Options {
	return pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: keys}}
}

func TestRefusesImageInsideSource(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	for _, img := range []string{filepath.Join(src, "x.img"), filepath.Join(src, "sub", "x.img")} {
		_, err := pack.Pack(context.Background(), src, img, packOpts(key()))
		if err == nil || !strings.Contains(err.Error(), "inside the source directory") {
			t.Errorf("%s: %v", img, err)
		}
	}
}

// TestTwoPackingsNeverShareAKey packs one tree twice with every input a caller can set held
// equal (release key, UUID, series, generation, creation time). XTS is deterministic per key
// and position, so a shared data key would show as equal ciphertext blocks at equal positions;
// there must be none, and the salts (the per-pack value every data key derives from) differ.
func TestTwoPackingsNeverShareAKey(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	uuid, series := [16]byte{4, 5, 6}, [16]byte{7, 8, 9}
	opts := pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{key()}, UUID: &uuid, Series: &series,
		Generation: 3, Created: time.Unix(1, 0)}}
	var images [][]byte
	var headers []*image.Header
	for i := 0; i < 2; i++ {
		p := filepath.Join(t.TempDir(), "img")
		res, err := pack.Pack(context.Background(), src, p, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		images, headers = append(images, b), append(headers, res.Header)
	}
	if headers[0].Salt == headers[1].Salt {
		t.Fatal("two packings drew the same salt")
	}
	if headers[0].ContentBlocks != headers[1].ContentBlocks {
		t.Fatalf("same tree, %d and %d content blocks", headers[0].ContentBlocks, headers[1].ContentBlocks)
	}
	for b := uint64(0); b < headers[0].ContentBlocks; b++ {
		off := image.HeaderSize + b*image.BlockSize
		if bytes.Equal(images[0][off:off+image.BlockSize], images[1][off:off+image.BlockSize]) {
			t.Fatalf("content block %d has the same ciphertext in both packings: a data key was reused", b)
		}
	}
}

func TestSpecialFilesSkipped(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "regular"), []byte("x"), 0o644)
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(src, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var logs bytes.Buffer
	opts := packOpts(key())
	opts.Log = slogTo(&logs)
	img := filepath.Join(t.TempDir(), "img")
	res, err := pack.Pack(context.Background(), src, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Files != 1 || !strings.Contains(logs.String(), "fifo") || !strings.Contains(logs.String(), "sock") {
		t.Fatalf("files %d, log %q", res.Index.Files, logs.String())
	}
}

func TestChangedFileReportedAndNothingLeft(t *testing.T) {
	src := t.TempDir()
	grow := filepath.Join(src, "growing.log")
	os.WriteFile(grow, make([]byte, 3<<20), 0o644)
	opts := packOpts(key())
	once := false
	opts.Progress = func(int64) { // runs after the first 1 MiB is read: the file grows under us
		if !once {
			once = true
			f, _ := os.OpenFile(grow, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("more"))
			f.Close()
		}
	}
	out := t.TempDir()
	_, err := pack.Pack(context.Background(), src, filepath.Join(out, "img"), opts)
	if err == nil || !strings.Contains(err.Error(), "growing.log changed while being packed") {
		t.Fatalf("err = %v", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Fatalf("a failed pack left %v behind", left)
	}
}

// TestUnreadableFileNamed packs a tree with a file the packer cannot read. Root reads
// everything, so as root the pack runs in a child process with the nobody user's uid.
func TestUnreadableFileNamed(t *testing.T) {
	if os.Getenv("ENCFS_PACK_CHILD") != "" {
		_, err := pack.Pack(context.Background(), os.Getenv("SRC"), os.Getenv("IMG"), packOpts(key()))
		if err == nil {
			os.Exit(3)
		}
		os.Stderr.WriteString(err.Error())
		os.Exit(2)
	}
	base, err := os.MkdirTemp("", "encfs-unreadable-") // t.TempDir's parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o777)
	src, out := filepath.Join(base, "src"), filepath.Join(base, "out")
	os.Mkdir(src, 0o755)
	os.Mkdir(out, 0o777)
	os.Chmod(out, 0o777) // past the umask
	os.WriteFile(filepath.Join(src, "ok"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(src, "secret"), []byte("x"), 0o000)
	img := filepath.Join(out, "img")
	if os.Getuid() != 0 {
		_, err = pack.Pack(context.Background(), src, img, packOpts(key()))
	} else {
		exe := filepath.Join(base, "pack.test")
		copyFile(t, os.Args[0], exe)
		cmd := exec.Command(exe, "-test.run=^TestUnreadableFileNamed$")
		cmd.Env = append(os.Environ(), "ENCFS_PACK_CHILD=1", "SRC="+src, "IMG="+img)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if runErr := cmd.Run(); runErr == nil || cmd.ProcessState.ExitCode() != 2 {
			t.Fatalf("child: %v %s", runErr, stderr.String())
		}
		err = errors.New(stderr.String())
	}
	if err == nil || !strings.Contains(err.Error(), filepath.Join(src, "secret")) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(img); statErr == nil {
		t.Fatal("image exists after a failed pack")
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestHugeFile packs a file of several GiB, generated on the fly, and reads it back. Each
// 8-byte word holds its own file offset, so a misplaced or stale block shows.
func TestHugeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and packs 3 GiB")
	}
	const size = 3<<30 + 12345
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		fillOffsets(buf, off)
		n := min(int64(len(buf)), size-off)
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	k := key()
	img := filepath.Join(t.TempDir(), "img")
	if _, err := pack.Pack(context.Background(), src, img, packOpts(k)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "huge")) // keep at most one copy besides the image on disk
	s, _ := blobio.OpenFile(img)
	im, err := image.Open(context.Background(), image.Plain(s), [][]byte{k}, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	in, err := im.LookupPath(context.Background(), "huge")
	if err != nil || in.Size != size {
		t.Fatalf("lookup: %v, size %d", err, in.Size)
	}
	want := make([]byte, len(buf))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := im.ReadFile(context.Background(), &in, buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read at %d: %v", off, err)
		}
		fillOffsets(want, off)
		if !bytes.Equal(buf[:n], want[:n]) {
			t.Fatalf("content differs in the 8 MiB at %d", off)
		}
	}
}

func fillOffsets(b []byte, off int64) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(off)+uint64(i))
	}
}

// TestMeasureMatchesPack: the pre-walk counts the files and bytes Pack packs, and FileDone is
// called once per file.
func TestMeasureMatchesPack(t *testing.T) {
	src := testtree.Build(t, filepath.Join(t.TempDir(), "src"))
	tot, err := pack.Measure(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	var done, nbytes atomic.Int64
	res, err := pack.Pack(context.Background(), src, filepath.Join(t.TempDir(), "img"), pack.Options{
		WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{make([]byte, 32)}},
		Progress:      func(n int64) { nbytes.Add(n) }, FileDone: func() { done.Add(1) }, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Files != int64(res.Index.Files) || tot.Bytes != int64(res.Index.FileBytes) {
		t.Errorf("Measure %+v; Pack packed %d files, %d bytes", tot, res.Index.Files, res.Index.FileBytes)
	}
	if done.Load() != tot.Files || nbytes.Load() != tot.Bytes {
		t.Errorf("progress: %d files, %d bytes; want %+v", done.Load(), nbytes.Load(), tot)
	}
}

// TestNoReplace refuses an existing image path and leaves the file as it was.
func TestNoReplace(t *testing.T) {
	src := testtree.Build(t, filepath.Join(t.TempDir(), "src"))
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := pack.Pack(context.Background(), src, img, pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{make([]byte, 32)}},
		NoReplace: true, Log: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, pack.ErrExists) {
		t.Fatalf("pack over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(img); string(b) != "precious" {
		t.Errorf("the file was changed")
	}
}

// TestFileAlignment checks where pack starts files: 1 MiB or more on a verification unit
// boundary, 4 KiB or more on a block boundary, smaller ones end to end; and that the content is
// whole units.
func TestFileAlignment(t *testing.T) {
	src := t.TempDir()
	sizes := map[string]int{"a-tiny": 100, "b-tiny": 7, "c-block": 5000, "d-mib": 1 << 20, "e-big": 3<<20 + 5}
	for name, n := range sizes {
		os.WriteFile(filepath.Join(src, name), testtree.Content(name, n), 0o644)
	}
	k := key()
	img := filepath.Join(t.TempDir(), "img")
	if _, err := pack.Pack(context.Background(), src, img, packOpts(k)); err != nil {
		t.Fatal(err)
	}
	s, err := blobio.OpenFile(img)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.Open(context.Background(), image.Plain(s), [][]byte{k}, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Header().ContentBlocks%image.BlocksPerUnit != 0 {
		t.Errorf("%d content blocks: not whole units", im.Header().ContentBlocks)
	}
	unaligned := 0
	for name, n := range sizes {
		in, err := im.LookupPath(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case n >= 1<<20 && in.DataOffset%image.UnitSize != 0:
			t.Errorf("%s (%d bytes) starts at content offset %d, not on a unit boundary", name, n, in.DataOffset)
		case n >= image.BlockSize && in.DataOffset%image.BlockSize != 0:
			t.Errorf("%s (%d bytes) starts at content offset %d, not on a block boundary", name, n, in.DataOffset)
		case in.DataOffset%image.BlockSize != 0:
			unaligned++
		}
	}
	if unaligned == 0 {
		t.Error("no small file was packed after another inside a block")
	}
}
