package fs_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	for _, dir := range []string{benchDir, shuffleDir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
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

// BenchmarkSmallFileRead reads one whole 100 KiB file of a local image at a time, a random
// one, without FUSE: the daemon's own work for each file of a shuffled epoch (a direct read
// of the file's units, verification and decryption). Besides the time per file (which
// includes the disk's latency) it reports the CPU time per file, which is what the reader of
// an epoch competes for on a shared core:
//
//	GOMAXPROCS=1 go test -run '^$' -bench SmallFileRead -benchtime 20000x ./fs/
func BenchmarkSmallFileRead(b *testing.B) {
	img, key, names := shuffleImage(b)
	im := fstest.OpenImage(b, img, key, image.Options{})
	ctx := context.Background()
	inodes := make([]image.Inode, len(names))
	for i, name := range names {
		in, err := im.LookupPath(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		inodes[i] = in
	}
	buf := make([]byte, 128<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	b.SetBytes(shuffleFileSize)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		in := &inodes[rng.IntN(len(inodes))]
		if n, err := im.ReadFile(ctx, in, buf, 0); n != shuffleFileSize || (err != nil && err != io.EOF) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/file")
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const (
	shuffleFiles    = 2000
	shuffleFileSize = 100 << 10
	shuffleReaders  = 8
)

var (
	shuffleOnce  sync.Once
	shuffleDir   string // removed by TestMain
	shuffleImg   string
	shuffleKey   []byte
	shuffleNames []string
	shuffleErr   error
)

// shuffleImage packs 2,000 files of 100 KiB, 100 to a directory, once per test binary.
func shuffleImage(b *testing.B) (string, []byte, []string) {
	b.Helper()
	shuffleOnce.Do(func() {
		if shuffleDir, shuffleErr = os.MkdirTemp("", "encfs-bench-shuffle-"); shuffleErr != nil {
			return
		}
		src := filepath.Join(shuffleDir, "src")
		for i := range shuffleFiles {
			name := filepath.Join(fmt.Sprintf("d%02d", i/100), fmt.Sprintf("f%04d", i))
			os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755)
			if shuffleErr = os.WriteFile(filepath.Join(src, name), testtree.Content(name, shuffleFileSize), 0o644); shuffleErr != nil {
				return
			}
			shuffleNames = append(shuffleNames, name)
		}
		shuffleKey = fstest.NewKey(b)
		shuffleImg = filepath.Join(shuffleDir, "shuffle.img")
		_, shuffleErr = pack.Pack(context.Background(), src, shuffleImg, pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{shuffleKey}}})
		os.RemoveAll(src)
	})
	if shuffleErr != nil {
		b.Fatal(shuffleErr)
	}
	return shuffleImg, shuffleKey, shuffleNames
}

// BenchmarkShuffledRead is the data-loader pattern of scripts/bench.sh's shuffled benchmark
// as a Go benchmark: 8 readers read 2,000 files of 100 KiB once each, in a new shuffled order,
// through a fresh mount each time (the image file itself may be in the page cache).
func BenchmarkShuffledRead(b *testing.B) {
	img, key, names := shuffleImage(b)
	b.SetBytes(shuffleFiles * shuffleFileSize)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		m := fstest.Mount(b, img, key, nil)
		order := rng.Perm(len(names))
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, shuffleReaders)
		b.StartTimer()
		for range shuffleReaders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1<<20)
				for i := next.Add(1) - 1; i < int64(len(order)); i = next.Add(1) - 1 {
					f, err := os.Open(filepath.Join(m.Dir, names[order[i]]))
					if err != nil {
						errs <- err
						return
					}
					n, err := io.CopyBuffer(io.Discard, f, buf)
					f.Close()
					if err != nil || n != shuffleFileSize {
						errs <- fmt.Errorf("%s: %d bytes, %v", names[order[i]], n, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		m.Point.Unmount()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*shuffleFiles)/b.Elapsed().Seconds(), "files/s")
}
