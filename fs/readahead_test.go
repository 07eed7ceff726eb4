package fs

import "testing"

func TestReadaheadSequentialGrowsWindow(t *testing.T) {
	r := newReadahead(32 << 20)
	const size = 1 << 30
	var lastWindow int64
	covered := int64(0)
	for off := int64(0); off < 64<<20; off += 1 << 20 {
		pfOff, pfLen := r.advise(off, 1<<20, size)
		if pfLen > 0 {
			if pfOff != max(covered, off+1<<20) {
				t.Fatalf("read at %d: prefetch from %d, want from %d (no gaps, no repeats)", off, pfOff, max(covered, off+1<<20))
			}
			covered = pfOff + pfLen
		}
		if covered < off+1<<20 {
			t.Fatalf("read at %d: prefetched only up to %d", off, covered)
		}
		// Topped up in small steps, never in half-window batches that leave the source idle.
		if ahead := covered - (off + 1<<20); ahead < r.window-r.window/topUpDivisor {
			t.Fatalf("read at %d: only %d bytes prefetched ahead with a %d-byte window", off, ahead, r.window)
		}
		if r.window < lastWindow {
			t.Fatalf("window shrank from %d to %d on a sequential reader", lastWindow, r.window)
		}
		lastWindow = r.window
	}
	if r.window != 32<<20 {
		t.Errorf("window %d after 64 MiB sequential, want the 32 MiB maximum", r.window)
	}
}

func TestReadaheadToleratesReorderedRequests(t *testing.T) {
	r := newReadahead(32 << 20)
	// The kernel's async readahead requests arrive out of order.
	for _, off := range []int64{0, 2 << 20, 1 << 20, 4 << 20, 3 << 20, 5 << 20} {
		r.advise(off, 1<<20, 1<<30)
		if r.run == 0 {
			t.Fatalf("read at %d counted as random", off)
		}
	}
	// A request that starts well after later ones (6 MiB late, as traced on a real mount)
	// keeps the window, and the next batch is still measured from the furthest read.
	for off := int64(6 << 20); off < 40<<20; off += 1 << 20 {
		r.advise(off, 1<<20, 1<<30)
	}
	window, ahead := r.window, r.ahead
	if _, n := r.advise(34<<20, 1<<20, 1<<30); n != 0 || r.run == 0 || r.window != window || r.ahead != ahead {
		t.Fatalf("a late read changed the readahead: prefetch %d, run %d, window %d (was %d), ahead %d (was %d)",
			n, r.run, r.window, window, r.ahead, ahead)
	}
}

func TestReadaheadRandomStopsPrefetch(t *testing.T) {
	r := newReadahead(32 << 20)
	for off := int64(0); off < 8<<20; off += 1 << 20 {
		r.advise(off, 1<<20, 1<<30)
	}
	for _, off := range []int64{900 << 20, 100 << 20, 500 << 20, 300 << 20} {
		if _, n := r.advise(off, 4096, 1<<30); n != 0 {
			t.Errorf("random read at %d prefetched %d bytes", off, n)
		}
	}
	// Reading on from the last random read becomes sequential again after two reads.
	r.advise(300<<20+4096, 1<<20, 1<<30)
	if _, n := r.advise(300<<20+4096+1<<20, 1<<20, 1<<30); n == 0 {
		t.Error("no prefetch once the reader is sequential again")
	}
}

func TestReadaheadBounds(t *testing.T) {
	r := newReadahead(32 << 20)
	if off, n := r.advise(0, 1<<20, 3<<20); off+n > 3<<20 {
		t.Errorf("prefetch [%d, %d) past the end of a 3 MiB file", off, off+n)
	}
	if _, n := r.advise(1<<20, 1<<20, 3<<20); n != 0 {
		t.Errorf("prefetched %d bytes again inside a file already covered", n)
	}
	off := newReadahead(-1)
	if _, n := off.advise(0, 1<<20, 1<<30); n != 0 {
		t.Error("prefetch with prefetching disabled")
	}
	// A first read in the middle of the file is not yet a pattern.
	mid := newReadahead(32 << 20)
	if _, n := mid.advise(100<<20, 1<<20, 1<<30); n != 0 {
		t.Error("prefetch on a single read in the middle of a file")
	}
}
