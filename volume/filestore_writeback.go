package volume

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A writer's FileStore hands what it writes through the page cache to the kernel's writeback
// as it accumulates (see FileStore.unstarted), so that the commit's fdatasync, during which the
// device admits no write, finds little left: the ranges of large writes every writebackEvery
// bytes (large writes that FileStore.direct could not take), and the whole file
// smallWritebackDelay after the first small write since the last such start.

// writebackEvery is how many written bytes start writeback: small enough that a commit finds
// at most a few tens of milliseconds of writing left, large enough that each start
// (sync_file_range over the dirty pages of the ranges written) is rare next to the writes.
const writebackEvery = 8 << 20

// writebackMinWrite is the smallest write that counts toward writebackEvery. Sequential
// writes reach the store as large writes (up to 1 MiB, the volume's batch), and writing them
// back early spares the commit. Small writes are random ones (4 KiB through the loop device),
// scattered over the file: started every 8 MiB of them, their writeback wrote each page cache
// folio again for every block dirtied in it, about 10 µs of the daemon's CPU per write
// (docs/PERFORMANCE.md, "Limits"); they have a slower start of their own
// (smallWritebackDelay). Large writes start the writeback of their own ranges only: a
// filesystem that writes its journal sequentially while an application writes at random (ext4
// under fio's random writes) would otherwise start the writeback of every scattered page too.
const writebackMinWrite = 64 << 10

// smallWritebackDelay is how long small writes gather before the writeback of the whole file
// is started for them. Left to the commit, their writeback ran inside its fdatasync, 0.8-1 s
// every 5 s (ext4's journal commits) while the device admitted no write; started every 8 MiB
// (0.1 s of random writes), it wrote each page cache folio again for every few blocks dirtied
// in it. A second gathers each folio's blocks, and leaves the commit's fdatasync about the
// last second of writes rather than the last five.
const smallWritebackDelay = time.Second

// noteWritten counts a completed write of n bytes at off toward early writeback.
func (s *FileStore) noteWritten(off int64, n int) {
	switch {
	case n < writebackMinWrite:
		if s.small.Add(int64(n)) == int64(n) { // the first since the last whole-file start
			kick(s.smallKick)
		}
	case s.unstarted.add(off, int64(n)) >= writebackEvery:
		kick(s.kick)
	}
}

// kick wakes the writeback goroutine through c, unless a wake-up is pending there already.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// maxRanges bounds the ranges remembered between two writeback starts. Sequential streams
// write a few: one per 4 MiB slot run of a group, more while the loop device's concurrent
// writes arrive out of order. Past the bound a range joins its nearest neighbour, gap and all.
const maxRanges = 16

// byteRange is the byte range [off, end) of the store.
type byteRange struct{ off, end int64 }

// byteRanges are the ranges of large writes not yet handed to writeback, merged where they touch,
// and their total length.
type byteRanges struct {
	mu    sync.Mutex
	r     []byteRange
	bytes int64
}

// add records [off, off+n) and returns the bytes recorded since the last take.
func (ss *byteRanges) add(off, n int64) int64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.bytes += n
	nw := byteRange{off, off + n}
	// Absorb every range the new one touches or overlaps (a write that bridges two joins them).
	for i := 0; i < len(ss.r); {
		if r := ss.r[i]; r.off <= nw.end && nw.off <= r.end {
			nw = byteRange{min(nw.off, r.off), max(nw.end, r.end)}
			ss.r[i] = ss.r[len(ss.r)-1]
			ss.r = ss.r[:len(ss.r)-1]
			continue
		}
		i++
	}
	if len(ss.r) == maxRanges {
		nearest, gap := 0, int64(-1)
		for i, r := range ss.r {
			if g := max(r.off-nw.end, nw.off-r.end); gap < 0 || g < gap {
				nearest, gap = i, g
			}
		}
		r := ss.r[nearest]
		ss.r[nearest] = byteRange{min(nw.off, r.off), max(nw.end, r.end)}
		return ss.bytes
	}
	ss.r = append(ss.r, nw)
	return ss.bytes
}

// take returns the ranges recorded (into buf) and forgets them.
func (ss *byteRanges) take(buf []byteRange) []byteRange {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	buf = append(buf[:0], ss.r...)
	ss.r, ss.bytes = ss.r[:0], 0
	return buf
}

// writeback starts the kernel's writeback each time it is kicked: of the dirty pages of the
// large writes' ranges at once, of the whole file smallWritebackDelay after a small write. It
// does not wait for the writeback to finish (SYNC_FILE_RANGE_WRITE): durability is still
// Flush's fdatasync, this only gives it less to do. An error here is not reported: fdatasync
// reports any failure to write the pages.
func (s *FileStore) writeback() {
	defer close(s.stopped)
	var ranges []byteRange
	var smallDue <-chan time.Time // armed while small writes wait for their start
	fd := int(s.f.Fd())
	for {
		select {
		case <-s.stop:
			return
		case <-s.smallKick:
			if smallDue == nil {
				smallDue = time.After(smallWritebackDelay)
			}
		case <-smallDue:
			smallDue = nil
			s.small.Store(0) // the next small write arms the next start
			_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		case <-s.kick:
			ranges = s.unstarted.take(ranges)
			for _, r := range ranges {
				_ = unix.SyncFileRange(fd, r.off, r.end-r.off, unix.SYNC_FILE_RANGE_WRITE)
			}
			s.started = append(s.started[:0], ranges...)
			s.starts.Add(1)
		}
	}
}
