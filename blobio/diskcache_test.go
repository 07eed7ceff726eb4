package blobio

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestDiskCacheDirectIO: a whole chunk in the layer's aligned buffers goes to the disk cache
// and back with O_DIRECT, leaving none of its pages in the page cache; a short one (the image's
// last chunk) goes through the page cache; both read back intact.
func TestDiskCacheDirectIO(t *testing.T) {
	d, err := newDiskCache(t.TempDir(), 64<<20, "test v1", 2<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	whole := mapChunk(2 << 20)
	if whole == nil {
		t.Skip("no aligned chunk mapping on this machine")
	}
	defer unmapChunk(whole)
	rand.Read(whole)
	short := make([]byte, 12345)
	rand.Read(short)
	if err := d.put(0, whole); err != nil {
		t.Fatal(err)
	}
	if err := d.put(1, short); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(d.path(0)); err != nil || st.Size() != diskFileSize(len(whole)) {
		t.Fatalf("chunk file: %v, %v", st, err)
	}
	cached := 0
	for _, in := range resident(t, d.path(0)) {
		if in {
			cached++
		}
	}
	// A filesystem without O_DIRECT (tmpfs) writes through the page cache; this one is ext4 in CI.
	if cached > 1 {
		t.Errorf("%d pages of a chunk written with O_DIRECT are in the page cache", cached)
	}
	back := mapChunk(2 << 20)
	defer unmapChunk(back)
	if !d.get(0, back) || !bytes.Equal(back, whole) {
		t.Fatal("whole chunk did not read back")
	}
	backShort := make([]byte, len(short))
	if !d.get(1, backShort) || !bytes.Equal(backShort, short) {
		t.Fatal("short chunk did not read back")
	}
	if d.get(1, make([]byte, len(short)+diskAlign)) {
		t.Fatal("a chunk of another length was accepted")
	}
}

// TestDiskCacheRanges: a range of a cached chunk is read by itself; a file that lost its end
// makes the read a miss and is dropped. (Damaged bytes are for verification above the cache to
// find: TestChunkedDiskCacheCorruptChunk.)
func TestDiskCacheRanges(t *testing.T) {
	d, err := newDiskCache(t.TempDir(), 64<<20, "test v1", 1<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	data := make([]byte, 1<<20-100) // not a multiple of 4 KiB
	rand.Read(data)
	if err := d.put(3, data); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ off, n int }{{0, 1}, {65535, 2}, {100000, 200000}, {len(data) - 10, 10}, {0, len(data)}} {
		p := make([]byte, r.n)
		if !d.readRange(3, len(data), p, int64(r.off)) || !bytes.Equal(p, data[r.off:r.off+r.n]) {
			t.Fatalf("range %d+%d", r.off, r.n)
		}
	}
	// Whole aligned blocks into an aligned buffer are read into it directly; the same range
	// into a buffer that is not aligned goes through a bounce buffer.
	aligned := alignedBuf(1 << 20)
	for _, r := range []struct{ off, n int }{{8192, 65536}, {0, 4096}, {len(data) / 4096 * 4096, len(data) % 4096}} {
		for _, p := range [][]byte{aligned[:r.n], aligned[1 : 1+r.n]} {
			clear(aligned)
			if !d.readRange(3, len(data), p, int64(r.off)) || !bytes.Equal(p, data[r.off:r.off+r.n]) {
				t.Fatalf("range %d+%d into a buffer at alignment %d", r.off, r.n, uintptr(unsafe.Pointer(&p[0]))%diskAlign)
			}
		}
	}
	if d.readRange(3, len(data), make([]byte, 10), int64(len(data)-5)) {
		t.Fatal("a range past the chunk was served")
	}
	rand.Read(data)
	if err := d.put(3, data); err != nil {
		t.Fatal(err)
	}
	if p := make([]byte, 5000); !d.readRange(3, len(data), p, 70000) || !bytes.Equal(p, data[70000:75000]) {
		t.Fatal("a range of the replaced chunk file")
	}
	if err := os.Truncate(d.path(3), 500000); err != nil {
		t.Fatal(err)
	}
	if d.readRange(3, len(data), make([]byte, 10), 600000) {
		t.Fatal("a range past the end of a truncated file was served")
	}
	if d.has(3, len(data)) {
		t.Fatal("the damaged file is still in the cache")
	}
}

// BenchmarkDiskCacheRangeRead reads ranges at random offsets of 64 cached 8 MiB chunks (512 MiB
// on disk, more than the disk's cache of it): a shuffled epoch's reads of small files after the
// background fetch. "units" reads 13 whole 8 KiB units into an aligned buffer, as the image
// does (read directly); "unaligned" 100 KiB at any offset into any buffer (through a bounce
// buffer). cpu-µs/op is the process's user and system time per read.
func BenchmarkDiskCacheRangeRead(b *testing.B) {
	const chunk, chunks = 8 << 20, 64
	d, err := newDiskCache(b.TempDir(), 1<<30, "bench v1", chunk, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer d.close()
	data := alignedBuf(chunk)
	for i := range chunks {
		rand.Read(data[:4096])
		if err := d.put(int64(i), data); err != nil {
			b.Fatal(err)
		}
	}
	const unit = 8192
	for _, bc := range []struct {
		name  string
		p     []byte
		align int
	}{{"units", alignedBuf(13 * unit), unit}, {"unaligned", make([]byte, 100<<10), 1}} {
		b.Run(bc.name, func(b *testing.B) {
			n := len(bc.p)
			rng := mrand.New(mrand.NewPCG(1, 2))
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.SetBytes(int64(n))
			b.ResetTimer()
			for range b.N {
				off := int64(rng.IntN(chunk-n)) / int64(bc.align) * int64(bc.align)
				if !d.readRange(int64(rng.IntN(chunks)), chunk, bc.p, off) {
					b.Fatal("miss")
				}
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
