package writeback_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/encfs/encfs/volume"
)

// fileStore is a plain local file as a volume.Store: the real thing the cache writes to in
// these tests (volume.FileStore adds an flock and lives in package volume, which these tests
// do not need).
type fileStore struct {
	f    *os.File
	size atomic.Int64
}

func newFileStore(t testing.TB, size int64) *fileStore {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "store"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	s := &fileStore{f: f}
	s.size.Store(size)
	t.Cleanup(func() { f.Close() })
	return s
}

func (s *fileStore) ReadAt(_ context.Context, p []byte, off int64) error {
	_, err := s.f.ReadAt(p, off)
	return err
}

func (s *fileStore) WriteAt(_ context.Context, p []byte, off int64) error {
	if len(p) > volume.MaxWrite {
		return fmt.Errorf("write of %d bytes: more than MaxWrite", len(p))
	}
	_, err := s.f.WriteAt(p, off)
	return err
}

func (s *fileStore) Flush(context.Context) error { return s.f.Sync() }
func (s *fileStore) Size() int64                 { return s.size.Load() }
func (s *fileStore) Resize(_ context.Context, size int64) error {
	if err := s.f.Truncate(size); err != nil {
		return err
	}
	s.size.Store(size)
	return nil
}
func (s *fileStore) Close() error   { return nil } // the test's cleanup closes the file
func (s *fileStore) String() string { return "test file" }

// counting counts the writes that reach a real store, and their sizes.
type counting struct {
	volume.Store
	mu     sync.Mutex
	writes []int
}

func (c *counting) WriteAt(ctx context.Context, p []byte, off int64) error {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Store.WriteAt(ctx, p, off)
}

func (c *counting) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]int(nil), c.writes...)
	c.writes = c.writes[:0]
	return out
}

var (
	_ volume.Store = (*fileStore)(nil)
	_ volume.Store = (*counting)(nil)
)
