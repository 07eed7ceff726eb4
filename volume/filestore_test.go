package volume

import (
	"bytes"
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestFileStoreStartsWriteback checks that a writer hands what it writes to the kernel's
// writeback as it goes, instead of leaving it all for the next flush (see FileStore), and that
// Close stops the goroutine that does it.
func TestFileStoreStartsWriteback(t *testing.T) {
	before := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), "store")
	s, err := CreateFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	withoutDirect(s)
	const written = 4 * writebackEvery
	if err := s.Resize(ctx, written); err != nil {
		t.Fatal(err)
	}
	cachestat(t, s, 0, 0) // skips the test where the kernel cannot count pages
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for off := int64(0); off < written; off += int64(len(chunk)) {
		if err := s.WriteAt(ctx, chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing flushed the file: left to the kernel its pages would stay dirty for 30 seconds.
	// (A `sync` run elsewhere on the machine meanwhile would make this pass regardless.)
	pages := uint64(written / os.Getpagesize())
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := cachestat(t, s, 0, 0)
		if st.Dirty < pages/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d pages written are still dirty after 10s: writeback was not started", st.Dirty, pages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before the store was opened", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFileStoreStartsLargeWritesOwnRanges checks that small (random) writes do not count
// toward the early writeback of large writes, and that large writes start the writeback of
// their own ranges only, not of the small writes' pages dirty around them (see
// writebackMinWrite).
func TestFileStoreStartsLargeWritesOwnRanges(t *testing.T) {
	s, err := CreateFileStore(filepath.Join(t.TempDir(), "store"), 4*writebackEvery)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	withoutDirect(s)
	page := make([]byte, PageSize)
	small := map[int64]bool{}
	for i := int64(0); i < 2*writebackEvery/PageSize; i++ {
		off := (i * 7919 % (4 * writebackEvery / PageSize)) * PageSize // scattered, as random writes are
		if off >= writebackEvery && off < 3*writebackEvery {
			continue // where the large writes go
		}
		small[off] = true
		if err := s.WriteAt(ctx, page, off); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.unstarted.take(nil); len(got) != 0 {
		t.Fatalf("4 KiB writes count toward early writeback: %v", got)
	}
	// Two streams of large writes, each arriving out of order as the loop device's concurrent
	// writes do: [8, 10) MiB and [16, 22) MiB. The last write makes writebackEvery bytes, so
	// the one writeback starts after all of them.
	big := make([]byte, writebackMinWrite)
	for _, stream := range [][2]int64{{writebackEvery, writebackEvery / 4}, {2 * writebackEvery, 3 * writebackEvery / 4}} {
		n := stream[1] / writebackMinWrite
		for i := range n {
			k := (i*5 + 3) % n // a permutation of 0..n-1: n (32 or 96) and 5 are coprime
			if err := s.WriteAt(ctx, big, stream[0]+k*writebackMinWrite); err != nil {
				t.Fatal(err)
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); s.starts.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d MiB of %d KiB writes started no writeback", writebackEvery>>20, writebackMinWrite>>10)
		}
	}
	want := []byteRange{{writebackEvery, 5 * writebackEvery / 4}, {2 * writebackEvery, 11 * writebackEvery / 4}}
	got := slices.Clone(s.started)
	slices.SortFunc(got, func(a, b byteRange) int { return cmp.Compare(a.off, b.off) })
	if !slices.Equal(got, want) {
		t.Fatalf("writeback started over %v, want the large writes' ranges %v", got, want)
	}
	for _, r := range got {
		for off := r.off; off < r.end; off += PageSize {
			if small[off] {
				t.Fatalf("writeback range %v covers a small write's page at %d", r, off)
			}
		}
	}
}

// TestByteRangesMerge checks how the ranges of large writes are kept between two writeback
// starts: touching ranges join, and past maxRanges a range joins its nearest neighbour.
func TestByteRangesMerge(t *testing.T) {
	var rs byteRanges
	const m = 1 << 20
	rs.add(4*m, m)
	rs.add(2*m, m)
	if n := rs.add(3*m, m); n != 3*m { // bridges the two
		t.Fatalf("recorded %d bytes, want %d", n, 3*m)
	}
	if got := rs.take(nil); !slices.Equal(got, []byteRange{{2 * m, 5 * m}}) {
		t.Fatalf("got %v, want one range [2, 5) MiB", got)
	}
	if got := rs.take(nil); len(got) != 0 || rs.bytes != 0 {
		t.Fatalf("take left %v (%d bytes)", got, rs.bytes)
	}
	for i := range int64(maxRanges) {
		rs.add(i*10*m, m) // [0,1), [10,11), ... MiB
	}
	rs.add(22*m, m) // nearest: [20, 21) MiB, 1 MiB away
	got := rs.take(nil)
	if len(got) != maxRanges || !slices.Contains(got, byteRange{20 * m, 23 * m}) {
		t.Fatalf("got %v, want %d ranges, [20, 23) MiB among them", got, maxRanges)
	}
}

// TestFileStoreStartsSmallWritesWriteback checks that the pages of small writes are handed to
// the kernel's writeback about smallWritebackDelay after the first of them, rather than left
// for the next flush (see smallWritebackDelay).
func TestFileStoreStartsSmallWritesWriteback(t *testing.T) {
	s, err := CreateFileStore(filepath.Join(t.TempDir(), "store"), 4*writebackEvery)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cachestat(t, s, 0, 0) // skips the test where the kernel cannot count pages
	page := make([]byte, 4096)
	const writes = 512
	for i := int64(0); i < writes; i++ {
		page[0] = byte(i + 1)
		if err := s.WriteAt(ctx, page, (i*7919%(4*writebackEvery/4096))*4096); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing flushed the file: left to the kernel its pages would stay dirty for 30 seconds.
	// (A `sync` run elsewhere on the machine meanwhile would make this pass regardless.)
	for deadline := time.Now().Add(5*time.Second + smallWritebackDelay); ; time.Sleep(10 * time.Millisecond) {
		st := cachestat(t, s, 0, 0)
		if st.Dirty < writes/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d pages written are still dirty after %v: no writeback was started", st.Dirty, writes, 5*time.Second+smallWritebackDelay)
		}
	}
	if n := s.small.Load(); n != 0 {
		t.Errorf("%d bytes of small writes still counted after their writeback started", n)
	}
}

// withoutDirect makes s write as it does where the filesystem refuses O_DIRECT: everything
// through the page cache, with early writeback.
func withoutDirect(s *FileStore) {
	if s.direct != nil {
		s.direct.Close()
		s.direct = nil
	}
}

// TestFileStoreWritesLargeWritesDirect checks that large aligned writes bypass the page cache
// (see FileStore.direct), that what they wrote reads back, and that a write the disk cannot
// take directly (a buffer not aligned) goes through the page cache instead.
func TestFileStoreWritesLargeWritesDirect(t *testing.T) {
	s, err := CreateFileStore(filepath.Join(t.TempDir(), "store"), 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.direct == nil {
		t.Skip("the temporary directory's filesystem refuses O_DIRECT")
	}
	cachestat(t, s, 0, 0) // skips the test where the kernel cannot count pages
	raw := make([]byte, 1<<20+directAlign)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	aligned := raw[directAlign-int(uintptr(unsafe.Pointer(&raw[0]))%directAlign):][:1<<20]
	if err := s.WriteAt(ctx, aligned, 1<<20); err != nil {
		t.Fatal(err)
	}
	if st := cachestat(t, s, 1<<20, 1<<20); st.Cache != 0 || st.Dirty != 0 {
		t.Fatalf("an aligned 1 MiB write left %d pages in the page cache (%d dirty), want none", st.Cache, st.Dirty)
	}
	// Misaligned by half a block: through the page cache.
	unaligned := raw[PageSize:][:writebackMinWrite]
	if uintptr(unsafe.Pointer(&unaligned[0]))%directAlign == 0 {
		unaligned = raw[2*PageSize:][:writebackMinWrite]
	}
	if err := s.WriteAt(ctx, unaligned, 3<<20); err != nil {
		t.Fatal(err)
	}
	if st := cachestat(t, s, 3<<20, writebackMinWrite); st.Cache == 0 {
		t.Fatal("a write from a buffer not aligned for O_DIRECT did not go through the page cache")
	}
	got := make([]byte, 1<<20)
	if err := s.ReadAt(ctx, got, 1<<20); err != nil || !bytes.Equal(got, aligned) {
		t.Fatalf("the direct write reads back wrong (%v)", err)
	}
	if err := s.ReadAt(ctx, got[:writebackMinWrite], 3<<20); err != nil || !bytes.Equal(got[:writebackMinWrite], unaligned) {
		t.Fatalf("the buffered write reads back wrong (%v)", err)
	}
}

// cachestat counts the page-cache pages of bytes [off, off+n) of s's file (n 0: to its end). It
// skips the test on kernels without cachestat(2).
func cachestat(t *testing.T, s *FileStore, off, n int64) unix.Cachestat_t {
	t.Helper()
	var st unix.Cachestat_t
	err := unix.Cachestat(uint(s.f.Fd()), &unix.CachestatRange{Off: uint64(off), Len: uint64(n)}, &st, 0)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no cachestat(2) (Linux 6.5 or later) to count page-cache pages with")
	} else if err != nil {
		t.Fatal(err)
	}
	return st
}
