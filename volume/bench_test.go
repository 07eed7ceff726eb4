package volume

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// benchSize is the volume size of the benchmarks: 1 GiB in a sparse local file.
const benchSize = 1 << 30

func benchVolume(b *testing.B) *Volume {
	b.Helper()
	s, err := CreateFileStore(filepath.Join(b.TempDir(), "vol"), 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: benchSize}); err != nil {
		b.Fatal(err)
	}
	v := openVolume(b, s, OpenOptions{})
	b.Cleanup(func() { v.Close(ctx) })
	return v
}

// BenchmarkWrite4K writes random aligned 4 KiB blocks (no flush: the page cache absorbs them,
// as the kernel's does between the loop device's flushes).
func BenchmarkWrite4K(b *testing.B) {
	v := benchVolume(b)
	rng := rand.New(rand.NewPCG(1, 1))
	p := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.WriteAt(ctx, p, rng.Int64N(benchSize/BlockSize)*BlockSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeqWrite1M writes 1 MiB requests in order, as the loop device sends a large file
// write, flushing every 64 MiB.
func BenchmarkSeqWrite1M(b *testing.B) {
	v := benchVolume(b)
	p := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(i) * (1 << 20) % benchSize
		if err := v.WriteAt(ctx, p, off); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			if err := v.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRead4K reads random 4 KiB blocks of a 64 MiB written region.
func BenchmarkRead4K(b *testing.B) {
	v := benchVolume(b)
	const region = 64 << 20
	p := make([]byte, 1<<20)
	for off := int64(0); off < region; off += 1 << 20 {
		if err := v.WriteAt(ctx, p, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	b.SetBytes(BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.ReadAt(ctx, p[:BlockSize], rng.Int64N(region/BlockSize)*BlockSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlush commits 16 random 4 KiB writes at a time: the cost of a commit with a small
// change (tree nodes, two fdatasyncs, one header) on a 1 GiB volume.
func BenchmarkFlush(b *testing.B) {
	v := benchVolume(b)
	rng := rand.New(rand.NewPCG(3, 3))
	p := make([]byte, BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for range 16 {
			if err := v.WriteAt(ctx, p, rng.Int64N(benchSize/BlockSize)*BlockSize); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := v.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlushClean is a Flush with nothing written since the last one, which the kernel
// sends often.
func BenchmarkFlushClean(b *testing.B) {
	v := benchVolume(b)
	for i := 0; i < b.N; i++ {
		if err := v.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainWrite4K and BenchmarkPlainSeqWrite1M write the same patterns straight to a
// FileStore, without the volume: the baseline the volume's cost is measured against.
func BenchmarkPlainWrite4K(b *testing.B) {
	s := benchStore(b)
	rng := rand.New(rand.NewPCG(1, 1))
	p := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.WriteAt(ctx, p, rng.Int64N(benchSize/BlockSize)*BlockSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlainSeqWrite1M(b *testing.B) {
	s := benchStore(b)
	p := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.WriteAt(ctx, p, int64(i)*(1<<20)%benchSize); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchStore(b *testing.B) *FileStore {
	s, err := CreateFileStore(filepath.Join(b.TempDir(), "plain"), benchSize)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkWrite4KParallel writes random aligned 4 KiB blocks from many goroutines at once, as
// the loop device's queue depth 16 arrives through FUSE; BenchmarkPlainWrite4KParallel is its
// baseline on the bare FileStore.
func BenchmarkWrite4KParallel(b *testing.B) { benchWrite4KParallel(b, benchVolume(b).WriteAt) }

func BenchmarkPlainWrite4KParallel(b *testing.B) { benchWrite4KParallel(b, benchStore(b).WriteAt) }

// benchWrite4KParallel runs write on random aligned 4 KiB blocks from 8 goroutines per core.
func benchWrite4KParallel(b *testing.B, write func(context.Context, []byte, int64) error) {
	b.SetBytes(BlockSize)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		p := make([]byte, BlockSize)
		for pb.Next() {
			if err := write(ctx, p, rng.Int64N(benchSize/BlockSize)*BlockSize); err != nil {
				b.Fatal(err)
			}
		}
	})
}
