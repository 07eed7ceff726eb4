package volume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/encfs/encfs/internal/keyslot"
)

// Verify checks every written block and tree node of the volume in s against the committed
// header, without changing anything, and reports progress in blocks. It reads the whole
// volume; unwritten parts of the tree count as done at once. The error, if any, counts the
// failures and wraps the first *IntegrityError.
func Verify(ctx context.Context, s Store, releaseKeys [][]byte, progress func(done, total int64)) (*Info, error) {
	v, err := Open(ctx, s, releaseKeys, OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	info := v.Info()
	if progress == nil {
		progress = func(int64, int64) {}
	}
	w := &verifier{v: v, sc: v.getScratch(), plain: make([]byte, fanout*BlockSize), total: int64(v.geo.blocks), progress: progress}
	w.walk(ctx, v.geo.levels, 0, v.root)
	progress(w.total, w.total)
	if w.err != nil && !errors.Is(w.err, ErrIntegrity) {
		return &info, w.err
	}
	if w.failures > 0 {
		return &info, fmt.Errorf("%d units of the volume failed verification; the first: %w", w.failures, w.first)
	}
	return &info, nil
}

type verifier struct {
	v        *Volume
	sc       *scratch
	plain    []byte
	total    int64
	done     int64
	progress func(done, total int64)
	failures int
	first    error
	err      error // a storage error: stop
}

func (w *verifier) failed(err error) {
	if !errors.Is(err, ErrIntegrity) {
		w.err = err
		return
	}
	if w.failures == 0 {
		w.first = err
	}
	w.failures++
}

// walk verifies the subtree of node (level, index) whose entry is e.
func (w *verifier) walk(ctx context.Context, level int, index uint64, e entry) {
	first := index * span(level)
	covered := int64(min(span(level), w.v.geo.blocks-first))
	if w.err != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		w.err = err
		return
	}
	if e.counter == 0 {
		w.advance(covered)
		return
	}
	nd, err := w.v.loadNode(ctx, nodeKey{level, index}, &e)
	if err != nil {
		w.failed(err)
		w.advance(covered)
		return
	}
	if level > 1 {
		for i := range uint64(fanout) {
			if child := index*fanout + i; child < w.v.geo.nodesAt(level-1) {
				w.walk(ctx, level-1, child, nd.e[i])
			}
		}
		return
	}
	// A leaf: read its blocks in one pass, then one by one if any fails, to count them all.
	w.v.nodes[nodeKey{1, index}] = nd
	defer delete(w.v.nodes, nodeKey{1, index})
	n := uint64(covered)
	if err := w.v.readBlocks(ctx, w.sc, first, n, w.plain[:n*BlockSize], 0); err != nil {
		if !errors.Is(err, ErrIntegrity) {
			w.failed(err)
			return
		}
		for b := first; b < first+n; b++ {
			if err := w.v.readBlocks(ctx, w.sc, b, 1, w.plain[:BlockSize], 0); err != nil {
				w.failed(err)
			}
		}
	}
	w.advance(covered)
}

func (w *verifier) advance(n int64) {
	w.done += n
	w.progress(w.done, w.total)
}

// PublicInfo is what a header says without a key. None of it is authenticated: anyone with
// write access to the store can change it.
type PublicInfo struct {
	UUID            string
	Generation      uint64
	Size            int64
	BlockSize       int
	Label           string
	Created         time.Time
	Keyslots        []string // fingerprints
	StoreSize       int64    // bytes the format needs
	OtherGeneration uint64   // generation of the other header copy, 0 if it is not usable
	Unauthenticated bool     // always true: a reminder for whoever prints it
}

// Inspect reads the newest well-formed header copy of the volume in s, without a key.
func Inspect(ctx context.Context, s Store) (*PublicInfo, error) {
	if s.Size() < headerArea {
		return nil, formatErr(ErrNotVolume, "%s is %d bytes, smaller than a volume header", s, s.Size())
	}
	b := make([]byte, headerArea)
	if err := s.ReadAt(ctx, b, 0); err != nil {
		return nil, fmt.Errorf("read header of %s: %w", s, err)
	}
	cands, err := parseCopies(b)
	if err != nil {
		return nil, err
	}
	h := cands[0]
	pi := &PublicInfo{UUID: uuidString(h.UUID), Generation: h.Generation, Size: int64(h.Blocks) * BlockSize, BlockSize: BlockSize,
		Label: h.Label, Created: time.Unix(h.Created, 0).UTC(), Keyslots: keyslot.Fingerprints(h.Keyslots),
		StoreSize: newGeometry(h.Blocks, h.ExtentBlocks).storeSize(), Unauthenticated: true}
	if len(cands) > 1 {
		pi.OtherGeneration = cands[1].Generation
	}
	return pi, nil
}
