package volume

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
)

// faultStore is an in-memory Store that models what storage may do across a crash: writes
// since the last Flush may be lost, land in any order, or be torn at any 512-byte sector.
// With crashAt >= 0 the store "crashes" at its crashAt-th mutating call (WriteAt or Flush):
// that call and every later one fail, and afterCrash builds the storage a restart would see.
type faultStore struct {
	mu      sync.Mutex
	durable map[int64][]byte // sector -> PageSize bytes, as storage holds them for sure
	view    map[int64][]byte // what reads see: durable plus pending
	pending []pendingWrite   // writes since the last Flush, in order
	size    int64
	ops     int
	crashAt int
	crashed bool
	closed  bool
	name    string
}

type pendingWrite struct {
	off  int64
	data []byte
}

var errCrashed = errors.New("fault store: crashed")

func newFaultStore() *faultStore {
	return &faultStore{durable: map[int64][]byte{}, view: map[int64][]byte{}, crashAt: -1, name: "faultstore"}
}

func (s *faultStore) String() string { return s.name }

func (s *faultStore) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

func (s *faultStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *faultStore) check(off int64, n int) error {
	if off%PageSize != 0 || n%PageSize != 0 || off < 0 || off+int64(n) > s.size {
		return fmt.Errorf("fault store: bad access %d+%d (size %d)", off, n, s.size)
	}
	return nil
}

func (s *faultStore) ReadAt(_ context.Context, p []byte, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed {
		return errCrashed
	}
	if err := s.check(off, len(p)); err != nil {
		return err
	}
	for i := 0; i < len(p); i += PageSize {
		if sec, ok := s.view[(off+int64(i))/PageSize]; ok {
			copy(p[i:], sec)
		} else {
			clear(p[i : i+PageSize])
		}
	}
	return nil
}

// step counts a mutating call and reports whether the store has crashed at or before it.
func (s *faultStore) step() bool {
	if s.crashed {
		return true
	}
	if s.ops == s.crashAt {
		s.crashed = true
		return true
	}
	s.ops++
	return false
}

func (s *faultStore) WriteAt(_ context.Context, p []byte, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(off, len(p)); err != nil {
		return err
	}
	if len(p) > MaxWrite {
		return fmt.Errorf("fault store: write of %d bytes", len(p))
	}
	crashing := !s.crashed && s.ops == s.crashAt
	if s.step() {
		if crashing {
			// The write in flight at the crash may land, in part or whole.
			s.pending = append(s.pending, pendingWrite{off, append([]byte(nil), p...)})
		}
		return errCrashed
	}
	s.pending = append(s.pending, pendingWrite{off, append([]byte(nil), p...)})
	apply(s.view, off, p)
	return nil
}

func apply(m map[int64][]byte, off int64, p []byte) {
	for i := 0; i < len(p); i += PageSize {
		m[(off+int64(i))/PageSize] = append([]byte(nil), p[i:i+PageSize]...)
	}
}

func (s *faultStore) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step() {
		return errCrashed
	}
	for _, w := range s.pending {
		apply(s.durable, w.off, w.data)
	}
	s.pending = nil
	return nil
}

func (s *faultStore) Resize(_ context.Context, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed {
		return errCrashed
	}
	s.size = size // durable at once, as FileStore's fsync makes it
	for k := range s.view {
		if k*PageSize >= size {
			delete(s.view, k)
			delete(s.durable, k)
		}
	}
	return nil
}

// crashMode is what storage keeps of the writes since the last Flush.
type crashMode int

const (
	dropAll  crashMode = iota // none of them
	keepAll                   // all of them, in order
	keepSome                  // a random subset, applied in random order
	tearSome                  // a random subset in random order, each torn at random sectors
	numCrashModes
)

func (m crashMode) String() string {
	return [...]string{"drop all", "keep all", "keep some", "tear some"}[m]
}

// afterCrash returns the store a restart sees after a crash with mode: the durable sectors plus
// what mode keeps of the pending writes.
func (s *faultStore) afterCrash(mode crashMode, rng *rand.Rand) *faultStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := newFaultStore()
	n.size = s.size
	for k, v := range s.durable {
		n.durable[k] = append([]byte(nil), v...)
	}
	pend := append([]pendingWrite(nil), s.pending...)
	switch mode {
	case dropAll:
		pend = nil
	case keepSome, tearSome:
		rng.Shuffle(len(pend), func(i, j int) { pend[i], pend[j] = pend[j], pend[i] })
		pend = pend[:rng.IntN(len(pend)+1)]
	}
	for _, w := range pend {
		if mode == tearSome {
			for i := 0; i < len(w.data); i += PageSize {
				if rng.IntN(2) == 0 {
					apply(n.durable, w.off+int64(i), w.data[i:i+PageSize])
				}
			}
			continue
		}
		apply(n.durable, w.off, w.data)
	}
	for k, v := range n.durable {
		n.view[k] = append([]byte(nil), v...)
	}
	return n
}

// copyStore is a copy of s's current view (for tamper and replay tests).
func (s *faultStore) copyStore() *faultStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := newFaultStore()
	n.size = s.size
	for k, v := range s.view {
		n.view[k] = append([]byte(nil), v...)
		n.durable[k] = append([]byte(nil), v...)
	}
	return n
}

// rawRead and rawWrite reach the bytes below the volume, as a storage attacker does.
func (s *faultStore) rawRead(off int64, n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]byte, 0, n)
	for i := 0; i < n; i += PageSize {
		sec := s.view[(off+int64(i))/PageSize]
		if sec == nil {
			sec = make([]byte, PageSize)
		}
		out = append(out, sec...)
	}
	return out
}

func (s *faultStore) rawWrite(off int64, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	apply(s.view, off, p)
	apply(s.durable, off, p)
}
