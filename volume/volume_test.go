package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var ctx = context.Background()

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// quietLog discards the integrity log lines that tamper tests provoke on purpose.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestMain(m *testing.M) {
	slog.SetDefault(quietLog) // Verify logs there
	os.Exit(m.Run())
}

func newVolume(t testing.TB, size int64) (*faultStore, *Volume) {
	t.Helper()
	s := newFaultStore()
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: size, Label: "test"}); err != nil {
		t.Fatal(err)
	}
	return s, openVolume(t, s, OpenOptions{})
}

func openVolume(t testing.TB, s Store, o OpenOptions) *Volume {
	t.Helper()
	if o.Log == nil {
		o.Log = quietLog
	}
	v, err := Open(ctx, s, [][]byte{testKey(1)}, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readAll(t testing.TB, v *Volume) []byte {
	t.Helper()
	b := make([]byte, v.Size())
	if err := v.ReadAt(ctx, b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// randomWrite writes random bytes at a random, often unaligned, range of v and of model.
func randomWrite(t testing.TB, rng *rand.Rand, v *Volume, model []byte) {
	t.Helper()
	off, n := randomRange(rng, int64(len(model)))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	if err := v.WriteAt(ctx, p, off); err != nil {
		t.Fatalf("write %d+%d: %v", off, n, err)
	}
	copy(model[off:], p)
}

func randomRange(rng *rand.Rand, size int64) (int64, int) {
	var n int
	switch rng.IntN(4) {
	case 0:
		n = 1 + rng.IntN(100)
	case 1:
		n = BlockSize
	case 2:
		n = 1 + rng.IntN(3*BlockSize)
	default:
		n = 1 + rng.IntN(maxBatch*BlockSize+3*BlockSize)
	}
	n = min(n, int(size))
	var off int64
	if rng.IntN(2) == 0 {
		off = rng.Int64N(size - int64(n) + 1)
	} else {
		off = rng.Int64N((size-int64(n))/BlockSize+1) * BlockSize
	}
	return off, n
}

func TestRoundTrip(t *testing.T) {
	const size = 3 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	s, v := newVolume(t, size)
	model := make([]byte, size)
	if got := readAll(t, v); !bytes.Equal(got, model) {
		t.Fatal("a new volume does not read as zeros")
	}
	steps := 300
	if testing.Short() {
		steps = 100
	}
	for i := range steps {
		randomWrite(t, rng, v, model)
		if i%37 == 0 {
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		off, n := randomRange(rng, size)
		got := make([]byte, n)
		if err := v.ReadAt(ctx, got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model[off:off+int64(n)]) {
			t.Fatalf("step %d: read %d+%d differs from what was written", i, off, n)
		}
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v = openVolume(t, s, OpenOptions{ReadOnly: true})
	if got := readAll(t, v); !bytes.Equal(got, model) {
		t.Fatal("the reopened volume differs from what was written")
	}
	if _, err := Verify(ctx, s, [][]byte{testKey(1)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, []byte{1}, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a write to a read-only volume gave %v, want ErrReadOnly", err)
	}
}

func TestOutOfRange(t *testing.T) {
	_, v := newVolume(t, 1<<20)
	for _, c := range []struct {
		off int64
		n   int
	}{{-1, 1}, {1 << 20, 1}, {1<<20 - 1, 2}} {
		if err := v.WriteAt(ctx, make([]byte, c.n), c.off); err == nil {
			t.Errorf("write %d+%d outside the volume succeeded", c.off, c.n)
		}
		if err := v.ReadAt(ctx, make([]byte, c.n), c.off); err == nil {
			t.Errorf("read %d+%d outside the volume succeeded", c.off, c.n)
		}
	}
}

func TestWrongKey(t *testing.T) {
	s, v := newVolume(t, 1<<20)
	v.Close(ctx)
	_, err := Open(ctx, s, [][]byte{testKey(9)}, OpenOptions{})
	var we *WrongKeyError
	if !errors.As(err, &we) || !errors.Is(err, ErrWrongKey) {
		t.Fatalf("open with a wrong key: %v", err)
	}
	if !strings.Contains(err.Error(), Fingerprint(testKey(1))) || strings.Contains(err.Error(), fmt.Sprintf("%x", testKey(9))) {
		t.Errorf("wrong-key message should name fingerprints, never keys: %v", err)
	}
	if _, err := Open(ctx, s, [][]byte{testKey(9), testKey(1)}, OpenOptions{Log: quietLog}); err != nil {
		t.Errorf("open with the right key second in the list: %v", err)
	}
}

func TestNotAVolume(t *testing.T) {
	s := newFaultStore()
	s.Resize(ctx, 1<<20)
	if _, err := Open(ctx, s, [][]byte{testKey(1)}, OpenOptions{}); !errors.Is(err, ErrNotVolume) {
		t.Fatalf("open of zeros: %v, want ErrNotVolume", err)
	}
	if _, err := Inspect(ctx, s); !errors.Is(err, ErrNotVolume) {
		t.Fatalf("inspect of zeros: %v, want ErrNotVolume", err)
	}
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: 4096}); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("create over a volume: %v", err)
	}
}

func TestCreateRefusesBadOptions(t *testing.T) {
	for _, o := range []CreateOptions{{Size: 0}, {Size: 4095}, {Size: 4096 + 512}, {Size: 4096, Label: strings.Repeat("x", 65)}, {Size: 4096, Label: "a\x00b"}, {Size: (MaxBlocks + 1) * BlockSize}} {
		if _, err := Create(ctx, newFaultStore(), testKey(1), o); err == nil {
			t.Errorf("create with %+v succeeded", o)
		}
	}
	if _, err := Create(ctx, newFaultStore(), []byte("short"), CreateOptions{Size: 4096}); err == nil {
		t.Error("create with a 5-byte key succeeded")
	}
	if _, err := Create(ctx, newFaultStore(), testKey(1), CreateOptions{Size: 4096, Preallocate: true}); err == nil ||
		!strings.Contains(err.Error(), "local file") {
		t.Errorf("preallocating a store that is not a local file: %v, want an error saying only local files can be", err)
	}
}

// TestPreallocatedFileStore: a preallocated store is allocated on disk whole from the start,
// holds a volume that reads, writes, reopens and verifies like a sparse one, and stays whole
// when the volume grows.
func TestPreallocatedFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vol")
	s, err := CreateFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: 8 << 20, Preallocate: true}); err != nil {
		t.Fatal(err)
	}
	wholeOnDisk := func(when string) {
		t.Helper()
		if got, size := s.allocated(), s.Size(); got < size {
			t.Fatalf("%s: %d of the store's %d bytes are allocated on disk, want all", when, got, size)
		}
	}
	wholeOnDisk("after create")
	v := openVolume(t, s, OpenOptions{})
	if got := readAll(t, v); !bytes.Equal(got, make([]byte, 8<<20)) {
		t.Fatal("a new preallocated volume does not read as zeros")
	}
	want := bytes.Repeat([]byte("thick "), 300000)
	if err := v.WriteAt(ctx, want, 4096*7+100); err != nil {
		t.Fatal(err)
	}
	if err := v.Grow(ctx, 64<<20); err != nil {
		t.Fatal(err)
	}
	wholeOnDisk("after growing")
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := OpenFileStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v = openVolume(t, r, OpenOptions{ReadOnly: true})
	got := make([]byte, len(want))
	if err := v.ReadAt(ctx, got, 4096*7+100); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back after reopening: %v", err)
	}
	if tail := make([]byte, 4096); v.ReadAt(ctx, tail, 64<<20-4096) != nil || !bytes.Equal(tail, make([]byte, 4096)) {
		t.Fatal("the grown part does not read as zeros")
	}
	if _, err := Verify(ctx, r, [][]byte{testKey(1)}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestInfoAndInspect(t *testing.T) {
	s, v := newVolume(t, 5<<20)
	info := v.Info()
	if info.Size != 5<<20 || info.Label != "test" || info.Generation != 2 || len(info.Keyslots) != 1 || info.Keyslots[0] != Fingerprint(testKey(1)) {
		t.Fatalf("info after open: %+v", info)
	}
	v.WriteAt(ctx, []byte("x"), 0)
	v.Flush(ctx)
	if g := v.Info().Generation; g != 3 {
		t.Fatalf("generation after one commit: %d, want 3", g)
	}
	pi, err := Inspect(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if pi.Generation != 3 || pi.OtherGeneration != 2 || pi.UUID != info.UUID || !pi.Unauthenticated || pi.Size != 5<<20 {
		t.Fatalf("inspect: %+v", pi)
	}
	if err := v.Flush(ctx); err != nil || v.Info().Generation != 3 {
		t.Fatalf("a flush with nothing written committed (generation %d, %v)", v.Info().Generation, err)
	}
}

func TestMinGeneration(t *testing.T) {
	s, v := newVolume(t, 1<<20)
	v.WriteAt(ctx, []byte("new"), 0)
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	gen := v.Info().Generation
	if _, err := Open(ctx, s, [][]byte{testKey(1)}, OpenOptions{ReadOnly: true, MinGeneration: gen + 1}); !errors.Is(err, ErrTooOld) {
		t.Fatalf("open below MinGeneration: %v, want ErrTooOld", err)
	}
	v = openVolume(t, s, OpenOptions{ReadOnly: true, MinGeneration: gen})
	if v.Info().Generation != gen {
		t.Fatalf("read-only open changed the generation to %d", v.Info().Generation)
	}
}

func TestGrow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// 100 blocks: one tree level; growing to 20000 blocks adds two levels.
	s, v := newVolume(t, 100*BlockSize)
	model := make([]byte, 100*BlockSize)
	for range 20 {
		randomWrite(t, rng, v, model)
	}
	for _, blocks := range []int64{129, 1000, 20000} {
		if err := v.Grow(ctx, blocks*BlockSize); err != nil {
			t.Fatal(err)
		}
		model = append(model, make([]byte, blocks*BlockSize-int64(len(model)))...)
		if got := readAll(t, v); !bytes.Equal(got, model) {
			t.Fatalf("after growing to %d blocks the content differs", blocks)
		}
		for range 10 {
			randomWrite(t, rng, v, model)
		}
	}
	if err := v.Grow(ctx, BlockSize); err == nil {
		t.Error("shrinking succeeded")
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v = openVolume(t, s, OpenOptions{})
	if v.Size() != 20000*BlockSize || !bytes.Equal(readAll(t, v), model) {
		t.Fatal("the grown volume reopens different")
	}
	if _, err := Verify(ctx, s, [][]byte{testKey(1)}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vol")
	s, err := CreateFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	v := openVolume(t, s, OpenOptions{})
	want := bytes.Repeat([]byte("encfs volume "), 100000)
	if err := v.WriteAt(ctx, want, 12345); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second writer is refused, naming the holder; so is a reader while a writer holds it.
	_, err = OpenFileStore(path, false)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second writer: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if _, err := OpenFileStore(path, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("reader while a writer holds the store: %v, want ErrLocked", err)
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + lockSuffix); !os.IsNotExist(err) {
		t.Errorf("the lock sidecar is left after Close: %v", err)
	}
	r1, err := OpenFileStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenFileStore(path, true)
	if err != nil {
		t.Fatalf("two readers: %v", err)
	}
	defer r2.Close()
	if _, err := OpenFileStore(path, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer while readers hold the store: %v, want ErrLocked", err)
	}
	v = openVolume(t, r1, OpenOptions{ReadOnly: true})
	got := make([]byte, len(want))
	if err := v.ReadAt(ctx, got, 12345); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back through a reopened file store: %v", err)
	}
	v.Close(ctx)
	if err := s.WriteAt(ctx, make([]byte, 100), 0); err == nil {
		t.Error("an unaligned store write succeeded")
	}
}

// TestSmallCache runs random writes, reads and flushes with a node cache far smaller than the
// tree, so nodes leave and come back all the time.
func TestSmallCache(t *testing.T) {
	const size = 4000 * BlockSize // 32 leaves
	rng := rand.New(rand.NewPCG(12, 13))
	s := newFaultStore()
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	v := openVolume(t, s, OpenOptions{CacheNodes: 4})
	model := make([]byte, size)
	for i := range 200 {
		randomWrite(t, rng, v, model)
		if i%5 == 0 {
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if len(v.nodes) > 4+len(v.dirty) {
				t.Fatalf("%d nodes cached after a flush, bound 4", len(v.nodes))
			}
		}
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, v), model) {
		t.Fatal("content differs with a small node cache")
	}
	if len(v.nodes) > 4 {
		t.Fatalf("reads cached %d nodes past the bound of 4", len(v.nodes))
	}
	v.Close(ctx)
	v = openVolume(t, s, OpenOptions{ReadOnly: true, CacheNodes: 2})
	if !bytes.Equal(readAll(t, v), model) {
		t.Fatal("content differs after reopening with a small node cache")
	}
}

// TestFlushWritesWhatChanged counts the store calls of commits on a large volume: one changed
// block costs one node per tree level and one header, whatever the volume size, and a flush
// with nothing changed costs nothing.
func TestFlushWritesWhatChanged(t *testing.T) {
	s, v := newVolume(t, 1<<40) // 2^28 blocks: 4 tree levels
	if v.geo.levels != 4 {
		t.Fatalf("%d levels", v.geo.levels)
	}
	for i, off := range []int64{0, 1 << 39, 12345 * BlockSize} {
		if err := v.WriteAt(ctx, []byte("x"), off); err != nil {
			t.Fatal(err)
		}
		before := s.ops
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// 4 nodes, a store flush, the header, a store flush.
		if got := s.ops - before; got != 4+3 {
			t.Errorf("commit %d of one changed block made %d store calls, want 7", i, got)
		}
		before = s.ops
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if s.ops != before {
			t.Errorf("a flush with nothing changed made %d store calls", s.ops-before)
		}
	}
}
