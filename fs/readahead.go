package fs

import "sync"

// Prefetch windows. The kernel already reads read_ahead_kb (4 MiB with package mount) ahead
// of a sequential reader; these windows reach further, so that a remote source has the next
// chunks in flight before the kernel asks for them.
const (
	// DefaultMaxPrefetch is the default bound of the window.
	DefaultMaxPrefetch = 32 << 20
	initialWindow      = 4 << 20
	// seqSlack is how far a read may start from where the last one ended and still count as
	// sequential. The kernel keeps several readahead requests in flight on one file and they
	// arrive in any order, so "exactly at the end" would miss most sequential readers.
	seqSlack = 4 << 20
)

// readahead detects whether one open file is being read sequentially and, if so, says what to
// prefetch, in batches: whenever the reader has used up half of what was prefetched, the window
// doubles (up to the maximum) and the next batch is asked for. The first read that jumps away
// turns prefetching off until the reader is sequential again.
// Only the bookkeeping is under the lock; the caller prefetches after advise returns.
type readahead struct {
	mu     sync.Mutex
	max    int64
	next   int64 // where the last read ended; -1 before the first read
	run    int   // consecutive sequential reads
	window int64
	ahead  int64 // end of what has been prefetched
}

func newReadahead(max int64) readahead { return readahead{max: max, next: -1} }

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
	case r.next < 0 && off == 0, r.next >= 0 && off <= r.next+seqSlack && off+seqSlack >= r.next:
		r.run++
		r.next = max(r.next, end)
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
		r.window = min(initialWindow, r.max)
	case r.ahead-end < r.window/2:
		// The reader has used half of what was prefetched: fetch the next batch, larger.
		r.window = min(2*r.window, r.max)
	default:
		return 0, 0
	}
	from, to := max(r.ahead, end), min(end+r.window, size)
	if to <= from {
		return 0, 0
	}
	r.ahead = to
	return from, to - from
}
