package volume

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

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
	const written = 4 * writebackEvery
	if err := s.Resize(ctx, written); err != nil {
		t.Fatal(err)
	}
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(s.f.Fd()), &unix.CachestatRange{}, &st, 0); errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no cachestat(2) (Linux 6.5 or later) to count dirty pages with")
	} else if err != nil {
		t.Fatal(err)
	}
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
		if err := unix.Cachestat(uint(s.f.Fd()), &unix.CachestatRange{}, &st, 0); err != nil {
			t.Fatal(err)
		}
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

// TestFileStoreLeavesSmallWritesToFlush checks that small (random) writes do not start
// writeback early: their pages are written back by the next flush in one pass, where
// neighbours merge, instead of a few at a time (see writebackMinWrite); and that large writes
// still do.
func TestFileStoreLeavesSmallWritesToFlush(t *testing.T) {
	s, err := CreateFileStore(filepath.Join(t.TempDir(), "store"), 4*writebackEvery)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	page := make([]byte, PageSize)
	for i := int64(0); i < 2*writebackEvery/PageSize; i++ {
		off := (i * 7919 % (4 * writebackEvery / PageSize)) * PageSize // scattered, as random writes are
		if err := s.WriteAt(ctx, page, off); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.unstarted.Load(); n != 0 {
		t.Fatalf("%d bytes of 4 KiB writes count toward early writeback, want 0", n)
	}
	big := make([]byte, writebackMinWrite)
	for off := int64(0); off < 2*writebackEvery; off += int64(len(big)) {
		if err := s.WriteAt(ctx, big, off); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); s.starts.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d MiB of %d KiB writes started no writeback", 2*writebackEvery>>20, writebackMinWrite>>10)
		}
	}
}
