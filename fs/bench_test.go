package fs_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/pack"
)

const benchFileSize = 256 << 20

var (
	benchOnce sync.Once
	benchDir  string // removed by TestMain
	benchImg  string
	benchKey  []byte
	benchErr  error
)

// benchImage packs one 256 MiB file once per test binary.
func benchImage(b *testing.B) (string, []byte) {
	b.Helper()
	benchOnce.Do(func() {
		if benchDir, benchErr = os.MkdirTemp("", "encfs-bench-"); benchErr != nil {
			return
		}
		src := filepath.Join(benchDir, "src")
		os.Mkdir(src, 0o755)
		if benchErr = os.WriteFile(filepath.Join(src, "big"), testtree.Content("big", benchFileSize), 0o644); benchErr != nil {
			return
		}
		benchKey = fstest.NewKey(b)
		benchImg = filepath.Join(benchDir, "bench.img")
		_, benchErr = pack.Pack(context.Background(), src, benchImg, pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{benchKey}}})
		os.RemoveAll(src)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchImg, benchKey
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// BenchmarkSequentialRead reads a 256 MiB file through a fresh mount each time, so every
// byte is fetched, verified and decrypted (the image file itself may be in the page cache).
func BenchmarkSequentialRead(b *testing.B) {
	img, key := benchImage(b)
	buf := make([]byte, 1<<20)
	b.SetBytes(benchFileSize)
	var reads, bytes uint64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		m := fstest.Mount(b, img, key, nil)
		f, err := os.Open(filepath.Join(m.Dir, "big"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := io.CopyBuffer(io.Discard, f, buf)
		if err != nil || n != benchFileSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		b.StopTimer()
		f.Close()
		m.Point.Unmount()
		st := m.FS.Stats()
		reads, bytes = reads+st.Reads, bytes+st.BytesRead
		b.StartTimer()
	}
	// How large the kernel's requests were: 1 MiB when read_ahead_kb and max_read work.
	b.ReportMetric(float64(bytes)/float64(max(reads, 1))/1024, "KiB/request")
}

// BenchmarkImageRead is the same read without FUSE: the image reader alone, 1 MiB at a time.
func BenchmarkImageRead(b *testing.B) {
	img, key := benchImage(b)
	im := fstest.OpenImage(b, img, key, image.Options{})
	ctx := context.Background()
	in, err := im.LookupPath(ctx, "big")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < benchFileSize; off += int64(len(buf)) {
			if _, err := im.ReadFile(ctx, &in, buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}
