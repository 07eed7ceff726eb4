package volume

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// The attacks of docs/VOLUME.md, "Security argument", by a storage attacker who can read and
// write every byte of the store but holds no key. Each must end in ErrIntegrity naming the
// unit, one log line and a counted failure, and never in wrong bytes.

const tamperBlocks = 300 // two tree levels: leaves 0..2 under one root

// tamperVolume makes a committed volume whose every block is filled with its own number.
func tamperVolume(t *testing.T, key byte) *faultStore {
	t.Helper()
	s := newFaultStore()
	if _, err := Create(ctx, s, testKey(key), CreateOptions{Size: tamperBlocks * BlockSize}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(ctx, s, [][]byte{testKey(key)}, OpenOptions{Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	for b := range tamperBlocks {
		if err := v.WriteAt(ctx, blockPattern(b, 0), int64(b)*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func blockPattern(b, version int) []byte {
	return bytes.Repeat([]byte{byte(b), byte(b >> 8), byte(version), 0xee}, BlockSize/4)
}

// where says where block b, its leaf and the root live in s as last committed.
type where struct{ data, leaf, root int64 }

func locate(t *testing.T, s *faultStore, key byte, b uint64) where {
	t.Helper()
	v, err := Open(ctx, s, [][]byte{testKey(key)}, OpenOptions{ReadOnly: true, Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var e [1]entry
	if err := v.entries(ctx, b, 1, e[:], nil, nil); err != nil {
		t.Fatal(err)
	}
	root, err := v.node(ctx, 2, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return where{data: v.geo.dataOffset(b, e[0].slot), leaf: v.geo.nodeOffset(1, b/fanout, root.e[b/fanout].slot),
		root: v.geo.nodeOffset(2, 0, v.root.slot)}
}

func flipByte(s *faultStore, off int64) {
	sec := s.rawRead(off&^(PageSize-1), PageSize)
	sec[off%PageSize] ^= 0x01
	s.rawWrite(off&^(PageSize-1), sec)
}

// logCapture collects the log lines of a volume.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Split(strings.TrimSpace(c.buf.String()), "\n")
}

// expectIntegrity reads block b of s and wants an IntegrityError for unit (level, index), one
// log line naming it, a counted failure and no plaintext in the buffer; block ok must still
// read correctly when ok >= 0.
func expectIntegrity(t *testing.T, s *faultStore, key byte, b int, level int, index uint64, ok int) {
	t.Helper()
	logs := &logCapture{}
	v, err := Open(ctx, s, [][]byte{testKey(key)}, OpenOptions{ReadOnly: true, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte{0xaa}, 3*BlockSize)
	err = v.ReadAt(ctx, p[:2*BlockSize], int64(b)*BlockSize+100) // unaligned, from inside the block to the next
	var ie *IntegrityError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("reading block %d: %v, want an integrity error", b, err)
	}
	if ie.Level != level || ie.Index != index {
		t.Fatalf("integrity error names level %d index %d, want level %d index %d: %v", ie.Level, ie.Index, level, index, err)
	}
	if bytes.Contains(p, blockPattern(b, 0)[:64]) || bytes.Contains(p, blockPattern(b, 1)[:64]) {
		t.Fatal("the failed read left plaintext of the block in the buffer")
	}
	if v.Stats().IntegrityFailures != 1 {
		t.Errorf("integrity failures counted: %d, want 1", v.Stats().IntegrityFailures)
	}
	// The kernel reads a bad block several times: every read fails and is counted, but the
	// unit is logged once.
	for range 3 {
		if err := v.ReadAt(ctx, p[:BlockSize], int64(b)*BlockSize); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("reading block %d again: %v, want an integrity error", b, err)
		}
	}
	if got := v.Stats().IntegrityFailures; got != 4 {
		t.Errorf("integrity failures counted after four reads: %d, want 4", got)
	}
	if l := logs.lines(); len(l) != 1 || !strings.Contains(l[0], "integrity check failed") || !strings.Contains(l[0], ie.Error()[:30]) {
		t.Errorf("log lines: %q, want one naming the unit", l)
	}
	if ok >= 0 {
		got := make([]byte, BlockSize)
		if err := v.ReadAt(ctx, got, int64(ok)*BlockSize); err != nil || !bytes.Equal(got, blockPattern(ok, 0)) {
			t.Errorf("untouched block %d does not read back: %v", ok, err)
		}
	}
	if _, err := Verify(ctx, s, [][]byte{testKey(key)}, nil); !errors.Is(err, ErrIntegrity) {
		t.Errorf("verify of the tampered volume: %v, want an integrity error", err)
	}
}

func TestTamperDataBlock(t *testing.T) {
	base := tamperVolume(t, 1)
	for _, pos := range []int64{0, 1, 777, BlockSize - 1} {
		s := base.copyStore()
		flipByte(s, locate(t, s, 1, 200).data+pos)
		expectIntegrity(t, s, 1, 200, 0, 200, 5)
	}
}

func TestTamperTag(t *testing.T) {
	// Block 200's tag is in leaf 1 (entries 72): flipping it fails the leaf, so all 128 blocks
	// under it; other leaves still read.
	base := tamperVolume(t, 1)
	s := base.copyStore()
	flipByte(s, locate(t, s, 1, 200).leaf+(200%fanout)*entrySize+16)
	expectIntegrity(t, s, 1, 200, 1, 1, 5)
}

func TestTamperRoot(t *testing.T) {
	base := tamperVolume(t, 1)
	s := base.copyStore()
	flipByte(s, locate(t, s, 1, 200).root+100)
	expectIntegrity(t, s, 1, 200, 2, 0, -1)
}

func TestTamperHeader(t *testing.T) {
	base := tamperVolume(t, 1)
	// The newest copy modified: the volume opens at the previous commit, whose unchanged
	// blocks still verify (here none changed since).
	s := base.copyStore()
	gen := locateGen(t, s)
	flipByte(s, int64(gen%2)*headerCopySize+offBlocks)
	if info, err := Verify(ctx, s, [][]byte{testKey(1)}, nil); err != nil || info.Generation != gen-1 {
		t.Fatalf("with the newest header copy modified: generation %v, %v; want %d", info, err, gen-1)
	}
	// Both modified: no open.
	flipByte(s, int64((gen-1)%2)*headerCopySize+offLabel)
	if _, err := Open(ctx, s, [][]byte{testKey(1)}, OpenOptions{Log: quietLog}); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("open with both header copies modified: %v, want an integrity error", err)
	}
}

func locateGen(t *testing.T, s *faultStore) uint64 {
	pi, err := Inspect(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	return pi.Generation
}

func TestMoveBlocks(t *testing.T) {
	base := tamperVolume(t, 1)
	s := base.copyStore()
	a, b := locate(t, s, 1, 10).data, locate(t, s, 1, 11).data
	da, db := s.rawRead(a, BlockSize), s.rawRead(b, BlockSize)
	s.rawWrite(a, db)
	s.rawWrite(b, da)
	expectIntegrity(t, s, 1, 10, 0, 10, 5)
	expectIntegrity(t, s, 1, 11, 0, 11, 5)
}

// TestReplay restores old versions of a block: its old ciphertext in its live slot, then also
// its leaf with the old tag, then the whole tree below the header.
func TestReplay(t *testing.T) {
	s := tamperVolume(t, 1)
	old := s.copyStore()
	oldAt := locate(t, old, 1, 200)
	v := openVolume(t, s, OpenOptions{})
	if err := v.WriteAt(ctx, blockPattern(200, 1), 200*BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	newAt := locate(t, s, 1, 200)
	if newAt.data == oldAt.data || newAt.leaf == oldAt.leaf || newAt.root == oldAt.root {
		t.Fatal("a rewrite did not move the block, its leaf and the root to their shadow slots")
	}
	// The old ciphertext in the live slot.
	s1 := s.copyStore()
	s1.rawWrite(newAt.data, old.rawRead(oldAt.data, BlockSize))
	expectIntegrity(t, s1, 1, 200, 0, 200, 5)
	// The old ciphertext and the old leaf (with the old tag) in the live slots.
	s2 := s1.copyStore()
	s2.rawWrite(newAt.leaf, old.rawRead(oldAt.leaf, BlockSize))
	expectIntegrity(t, s2, 1, 200, 1, 1, 5)
	// Old block, leaf and root: only the header is new.
	s3 := s2.copyStore()
	s3.rawWrite(newAt.root, old.rawRead(oldAt.root, BlockSize))
	expectIntegrity(t, s3, 1, 200, 2, 0, -1)
	// The whole old store opens (undetectable from the store alone) unless the reader asks for
	// the generation it last saw.
	if _, err := Open(ctx, old.copyStore(), [][]byte{testKey(1)}, OpenOptions{ReadOnly: true, MinGeneration: v.Info().Generation}); !errors.Is(err, ErrTooOld) {
		t.Fatalf("whole-volume rollback with MinGeneration: %v, want ErrTooOld", err)
	}
}

// TestCrossVolumeSplice copies units of volume A into the same places of volume B; both were
// created with the same release key, so only the per-volume keys and UUID tell them apart.
func TestCrossVolumeSplice(t *testing.T) {
	a, b := tamperVolume(t, 1), tamperVolume(t, 1)
	atA, atB := locate(t, a, 1, 200), locate(t, b, 1, 200)
	s := b.copyStore()
	s.rawWrite(atB.data, a.rawRead(atA.data, BlockSize))
	expectIntegrity(t, s, 1, 200, 0, 200, 5)
	s = b.copyStore()
	s.rawWrite(atB.leaf, a.rawRead(atA.leaf, BlockSize))
	expectIntegrity(t, s, 1, 200, 1, 1, 5)
	// A's whole body under B's header.
	s = a.copyStore()
	s.rawWrite(0, b.rawRead(0, headerArea))
	expectIntegrity(t, s, 1, 200, 2, 0, -1)
}

// TestIntegrityLogBounded: each damaged block is logged once, up to maxReported blocks; past
// them one line says that further blocks are not logged. Every failed read still fails and
// counts.
func TestIntegrityLogBounded(t *testing.T) {
	defer func(n int) { maxReported = n }(maxReported)
	maxReported = 2
	s := tamperVolume(t, 1)
	for _, b := range []uint64{10, 20, 30, 40} {
		flipByte(s, locate(t, s, 1, b).data+5)
	}
	logs := &logCapture{}
	v, err := Open(ctx, s, [][]byte{testKey(1)}, OpenOptions{ReadOnly: true, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, BlockSize)
	for range 3 {
		for _, b := range []int64{10, 20, 30, 40} {
			if err := v.ReadAt(ctx, p, b*BlockSize); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("read of damaged block %d: %v, want an integrity error", b, err)
			}
		}
	}
	if got := v.Stats().IntegrityFailures; got != 12 {
		t.Errorf("integrity failures counted: %d, want 12", got)
	}
	l := logs.lines()
	if len(l) != 3 || !strings.Contains(l[0], "data block 10 ") || !strings.Contains(l[1], "data block 20 ") ||
		!strings.Contains(l[2], "more units than are logged") {
		t.Errorf("log lines: %q, want blocks 10 and 20, then one line saying further blocks are not logged", l)
	}
}
