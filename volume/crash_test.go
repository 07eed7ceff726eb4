package volume

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// nonceRecorder wraps a volume's AEAD and fails the test when any nonce is sealed with twice.
// One recorder follows every session that shares a key: the sessions before and after a crash.
type nonceRecorder struct {
	mu   sync.Mutex
	t    testing.TB
	seen map[[nonceSize]byte]bool
}

func newNonceRecorder(t testing.TB) *nonceRecorder {
	return &nonceRecorder{t: t, seen: map[[nonceSize]byte]bool{}}
}

func (r *nonceRecorder) clone() *nonceRecorder {
	n := newNonceRecorder(r.t)
	for k := range r.seen {
		n.seen[k] = true
	}
	return n
}

func (r *nonceRecorder) watch(v *Volume) { v.aead = &recordingAEAD{AEAD: v.aead, r: r} }

type recordingAEAD struct {
	cipher.AEAD
	r *nonceRecorder
}

func (a *recordingAEAD) Seal(dst, nonce, plain, ad []byte) []byte {
	a.r.mu.Lock()
	var k [nonceSize]byte
	copy(k[:], nonce)
	if a.r.seen[k] {
		a.r.t.Errorf("nonce %x sealed twice", k)
	}
	a.r.seen[k] = true
	a.r.mu.Unlock()
	return a.AEAD.Seal(dst, nonce, plain, ad)
}

// workOp is one step of a crash workload: a write, a flush or a grow.
type workOp struct {
	kind string // "write", "flush", "grow"
	off  int64
	data []byte
	size int64 // grow: new size
}

func makeWorkload(rng *rand.Rand, size int64, n int, grow bool) []workOp {
	var ops []workOp
	for i := range n {
		switch {
		case grow && i == n/2:
			size += int64(1+rng.IntN(900)) * BlockSize
			ops = append(ops, workOp{kind: "grow", size: size})
		case rng.IntN(4) == 0:
			ops = append(ops, workOp{kind: "flush"})
		default:
			off, l := randomRange(rng, size)
			d := make([]byte, l)
			for j := range d {
				d[j] = byte(rng.Uint32())
			}
			ops = append(ops, workOp{kind: "write", off: off, data: d})
		}
	}
	return append(ops, workOp{kind: "flush"})
}

// crashRun is what one run of a workload, crashing at some store call, acknowledged.
type crashRun struct {
	store    *faultStore
	acked    []byte // content at the last acknowledged flush
	inflight []byte // content at the start of the commit the crash interrupted, if any
	ackedGen uint64
	crashed  bool
}

// runUntilCrash opens the volume in base (copied) and runs ops until the store crashes at its
// crashAt-th mutating call (never with crashAt < 0).
func runUntilCrash(t *testing.T, base *faultStore, content []byte, gen uint64, ops []workOp, crashAt int, rec *nonceRecorder) crashRun {
	s := base.copyStore()
	s.crashAt = crashAt
	r := crashRun{store: s, acked: content, ackedGen: gen}
	cur := bytes.Clone(content)
	v, err := Open(ctx, s, [][]byte{testKey(1)}, OpenOptions{Log: quietLog})
	if err != nil {
		if !errors.Is(err, errCrashed) {
			t.Fatalf("open: %v", err)
		}
		r.crashed = true
		return r
	}
	rec.watch(v)
	for _, op := range ops {
		switch op.kind {
		case "write":
			err = v.WriteAt(ctx, op.data, op.off)
			if err == nil {
				copy(cur[op.off:], op.data)
			}
		case "flush", "grow":
			if op.kind == "grow" {
				cur = append(cur, make([]byte, op.size-int64(len(cur)))...)
				err = v.Grow(ctx, op.size)
			} else {
				err = v.Flush(ctx)
			}
			r.inflight = bytes.Clone(cur)
			if err == nil {
				r.acked, r.inflight, r.ackedGen = r.inflight, nil, v.Info().Generation
			}
		}
		if err != nil {
			if !errors.Is(err, errCrashed) {
				t.Fatalf("%s: %v", op.kind, err)
			}
			r.crashed = true
			return r
		}
	}
	return r
}

// checkRecovery restarts after the crash of r in each mode and checks that the volume opens,
// verifies throughout, holds the acknowledged state or the interrupted commit's, and takes
// new writes with fresh nonces.
func checkRecovery(t *testing.T, r crashRun, rng *rand.Rand, rec *nonceRecorder, what string) {
	for mode := range numCrashModes {
		s := r.store.afterCrash(mode, rng)
		info, err := Verify(ctx, s, [][]byte{testKey(1)}, nil)
		if err != nil {
			t.Fatalf("%s, %v: verify after the crash: %v", what, mode, err)
		}
		if info.Generation < r.ackedGen {
			t.Fatalf("%s, %v: generation %d after the crash, below the acknowledged %d", what, mode, info.Generation, r.ackedGen)
		}
		v, err := Open(ctx, s, [][]byte{testKey(1)}, OpenOptions{Log: quietLog})
		if err != nil {
			t.Fatalf("%s, %v: open after the crash: %v", what, mode, err)
		}
		got := readAll(t, v)
		if !bytes.Equal(got, r.acked) && (r.inflight == nil || !bytes.Equal(got, r.inflight)) {
			t.Fatalf("%s, %v: content after the crash is neither the acknowledged flush's nor the interrupted one's (%s)",
				what, mode, diffSummary(got, r.acked))
		}
		// The next session must not reuse a nonce of the crashed one.
		rec2 := rec.clone()
		rec2.watch(v)
		model := bytes.Clone(got)
		for range 3 {
			randomWrite(t, rng, v, model)
		}
		if err := v.Close(ctx); err != nil {
			t.Fatal(err)
		}
		v = openVolume(t, s, OpenOptions{ReadOnly: true})
		if !bytes.Equal(readAll(t, v), model) {
			t.Fatalf("%s, %v: writes after recovery did not read back", what, mode)
		}
	}
}

func diffSummary(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("size %d, acknowledged %d", len(got), len(want))
	}
	n, first := 0, -1
	for i := range got {
		if got[i] != want[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	return fmt.Sprintf("%d bytes differ from the acknowledged state, the first at %d", n, first)
}

// crashBase creates a volume with some committed content, recording its nonces.
func crashBase(t *testing.T, rng *rand.Rand, size int64) (*faultStore, []byte, uint64, *nonceRecorder) {
	rec := newNonceRecorder(t)
	s, v := newVolume(t, size)
	rec.watch(v)
	model := make([]byte, size)
	for range 5 {
		randomWrite(t, rng, v, model)
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.closed = false
	return s, model, v.Info().Generation, rec
}

// TestCrashExhaustive crashes a small workload (writes within and across tree leaves,
// unaligned writes, flushes and a grow that adds tree levels) at every store call in turn, and
// recovers from each crash in every mode.
func TestCrashExhaustive(t *testing.T) {
	seeds := []uint64{5, 21, 23, 25}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 6))
		// 100 blocks: one tree level, two after the grow.
		base, content, gen, rec := crashBase(t, rng, 100*BlockSize)
		ops := makeWorkload(rng, 100*BlockSize, 14, true)
		full := runUntilCrash(t, base, content, gen, ops, -1, rec.clone())
		total := full.store.ops
		if total < 20 {
			t.Fatalf("the workload made only %d store calls", total)
		}
		for k := 0; k <= total; k++ {
			runRec := rec.clone() // the base's nonces, then the crashed session's
			r := runUntilCrash(t, base, content, gen, ops, k, runRec)
			if !r.crashed && k < total {
				t.Fatalf("no crash at call %d of %d", k, total)
			}
			checkRecovery(t, r, rng, runRec, fmt.Sprintf("seed %d, crash at store call %d of %d", seed, k, total))
		}
	}
}

// TestCrashRandom crashes a larger random workload at random store calls.
func TestCrashRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	runs := 30
	if testing.Short() {
		runs = 3
	}
	base, content, gen, rec := crashBase(t, rng, 2000*BlockSize)
	for i := range runs {
		ops := makeWorkload(rng, 2000*BlockSize, 60, i%2 == 0)
		full := runUntilCrash(t, base, content, gen, ops, -1, rec.clone())
		k := rng.IntN(full.store.ops + 1)
		runRec := rec.clone()
		r := runUntilCrash(t, base, content, gen, ops, k, runRec)
		checkRecovery(t, r, rng, runRec, fmt.Sprintf("run %d, crash at store call %d of %d", i, k, full.store.ops))
	}
}

// TestNoncesUnique writes, flushes and reopens many times, recording every nonce sealed with.
func TestNoncesUnique(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	rec := newNonceRecorder(t)
	s, v := newVolume(t, 1<<20)
	model := make([]byte, 1<<20)
	sessions := 20
	if testing.Short() {
		sessions = 8
	}
	for session := range sessions {
		rec.watch(v)
		for i := range 30 {
			randomWrite(t, rng, v, model)
			if i%7 == 0 {
				v.Flush(ctx)
			}
		}
		if session%3 == 0 {
			// A session that ends without a flush, like a crash.
			s = s.afterCrash(dropAll, rng)
		} else if err := v.Close(ctx); err != nil {
			t.Fatal(err)
		}
		v = openVolume(t, s, OpenOptions{})
		model = readAll(t, v)
	}
	if len(rec.seen) < 30*sessions {
		t.Fatalf("only %d nonces recorded", len(rec.seen))
	}
}

// TestStorageFaultFailsVolume makes one store call fail during a commit (a transient fault:
// the store works again afterwards). The flush reports it, the volume refuses further use
// instead of guessing, and opening again gives the acknowledged state or the new one.
func TestStorageFaultFailsVolume(t *testing.T) {
	for fault := range 4 { // each store call of a one-node commit: node, flush, header, flush
		s, v := newVolume(t, 100*BlockSize)
		if err := v.WriteAt(ctx, []byte("acknowledged"), 0); err != nil {
			t.Fatal(err)
		}
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := v.WriteAt(ctx, []byte("maybe lost!!"), 0); err != nil {
			t.Fatal(err)
		}
		s.crashAt = s.ops + fault
		err := v.Flush(ctx)
		if !errors.Is(err, ErrFailed) || !errors.Is(err, errCrashed) {
			t.Fatalf("fault at call %d of the commit: flush gave %v", fault, err)
		}
		s.mu.Lock()
		s.crashed, s.crashAt = false, -1
		s.mu.Unlock()
		if err := v.WriteAt(ctx, []byte("x"), 0); !errors.Is(err, ErrFailed) {
			t.Fatalf("a write after a failed commit: %v, want ErrFailed", err)
		}
		if err := v.Flush(ctx); !errors.Is(err, ErrFailed) {
			t.Fatalf("a flush after a failed commit: %v, want ErrFailed", err)
		}
		v2 := openVolume(t, s, OpenOptions{})
		got := make([]byte, 12)
		if err := v2.ReadAt(ctx, got, 0); err != nil {
			t.Fatal(err)
		}
		if string(got) != "acknowledged" && string(got) != "maybe lost!!" {
			t.Fatalf("after a fault at call %d of the commit the volume holds %q", fault, got)
		}
	}
}

// TestNoncesAfterRollback puts an older copy of the whole store back, as an attacker can, and
// writes again: the counters repeat those of the discarded history, the nonces must not.
func TestNoncesAfterRollback(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	rec := newNonceRecorder(t)
	s, v := newVolume(t, 1<<20)
	v.Close(ctx)
	old := s.copyStore()
	model := make([]byte, 1<<20)
	for _, store := range []*faultStore{s, old} {
		v := openVolume(t, store, OpenOptions{})
		rec.watch(v)
		for range 20 {
			randomWrite(t, rng, v, model)
		}
		if err := v.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
