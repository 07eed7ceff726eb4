package fs

import "sync"

// Prefetch windows. The kernel already reads read_ahead_kb (4 MiB with package mount) ahead
// of a sequential reader; these windows reach further, so that a remote source has the next
// chunks in flight before the kernel asks for them.
const (
	// DefaultMaxPrefetch is the default bound of the window.
	DefaultMaxPrefetch = 32 << 20
	initialWindow      = 4 << 20
	// seqSlack is how far past the furthest read so far a read may start and still count as
	// sequential. The kernel keeps several readahead requests in flight on one file and they
	// arrive in any order, so "exactly at the end" would miss most sequential readers.
	seqSlack = 4 << 20
	// lateSlack is how far behind the furthest read a read may start and still be a late
	// request of the same reader rather than a jump back. go-fuse serves requests concurrently,
	// so one can start after several issued after it: traces of a 2 GiB read showed requests
	// 6 MiB late. Taking one for a jump reset the window, and the reader then waited on
	// chunks the shrunken window had not yet reached.
	lateSlack = 16 << 20
	// Once the reader has used 1/topUpDivisor of the window, the window is topped up again.
	// Small steps keep the source busy; topping up only after half the window (as the growth
	// does) left a local disk idle a quarter of the time between batches.
	topUpDivisor = 8
)

// readahead detects whether a file is being read sequentially and, if so, says what to
// prefetch: a window ahead of the furthest read, topped up whenever the reader has used an
// eighth of it, and doubled (up to the maximum) each time the reader has gone through half of
// it. The first read that jumps away turns prefetching off until the reader is sequential again.
// Only the bookkeeping is under the lock; the caller prefetches after advise returns.
type readahead struct {
	mu     sync.Mutex
	max    int64
	next   int64 // where the last read ended; -1 before the first read
	run    int   // consecutive sequential reads
	window int64
	grewAt int64 // where the furthest read was when the window last grew
	ahead  int64 // end of what has been prefetched
}

func newReadahead(max int64) *readahead { return &readahead{max: max, next: -1} }

// advise records a read of n bytes at off in a file of size bytes and returns the range to
// prefetch, if any (length 0 when there is nothing to do).
func (r *readahead) advise(off, n, size int64) (pfOff, pfLen int64) {
	if r.max <= 0 {
		return 0, 0
	}
	end := min(off+n, size)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.next < 0 && off == 0, r.next >= 0 && off <= r.next+seqSlack && off+lateSlack >= r.next:
		r.run++
		r.next = max(r.next, end) // from here on, the furthest read so far
	default: // a jump: random access, or the first read starts mid-file
		r.run, r.window, r.ahead, r.next = 0, 0, 0, end
	}
	if r.run == 0 || (r.run == 1 && off != 0) {
		// One read in place is not yet a pattern, unless it starts at the beginning of the
		// file, which is how most files are read whole.
		return 0, 0
	}
	switch {
	case r.window == 0:
		r.window, r.grewAt = min(initialWindow, r.max), r.next
	case r.window < r.max && r.next-r.grewAt >= r.window/2:
		// The reader has gone through half a window since it last grew: reach further.
		r.window, r.grewAt = min(2*r.window, r.max), r.next
	case r.ahead-r.next > r.window-r.window/topUpDivisor:
		return 0, 0 // still about a whole window ahead
	}
	from, to := max(r.ahead, r.next), min(r.next+r.window, size)
	if to <= from {
		return 0, 0
	}
	r.ahead = to
	return from, to - from
}
