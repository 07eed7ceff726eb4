package volume

import (
	"context"
	"fmt"
)

// Grow extends the volume to newSize bytes (a multiple of 4096, not smaller than Size) and
// commits. The new blocks read as zeros; the store grows first, so a crash before the commit
// leaves the old volume in a larger store, which opens as before.
func (v *Volume) Grow(ctx context.Context, newSize int64) error {
	if v.readOnly {
		return ErrReadOnly
	}
	if newSize%BlockSize != 0 || newSize < v.Size() || newSize/BlockSize > MaxBlocks {
		return fmt.Errorf("grow to %d bytes: want a multiple of %d from the current %d up to %d (volumes do not shrink)",
			newSize, BlockSize, v.Size(), int64(MaxBlocks)*BlockSize)
	}
	v.flushMu.Lock()
	defer v.flushMu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	if newSize == v.Size() {
		return nil
	}
	geo := newGeometry(uint64(newSize/BlockSize), uint32(v.geo.extent))
	if need := geo.storeSize(); v.s.Size() < need {
		if err := v.s.Resize(ctx, need); err != nil {
			return fmt.Errorf("grow %s to %d bytes: %w", v.s, need, err)
		}
	}
	// A taller tree gets new roots above the old one: node (level, 0) holds the old root as
	// its child 0, the rest of it unwritten. Reads wait while the geometry changes.
	v.readMu.Lock()
	v.metaMu.Lock()
	for level := v.geo.levels + 1; level <= geo.levels; level++ {
		nd := &node{key: nodeKey{level, 0}}
		nd.e[0] = v.root
		if v.rootChanged {
			nd.setChanged(0)
		}
		v.nodes[nd.key] = nd
		v.dirty[nd.key] = nd
		v.root, v.rootChanged = entry{}, false
	}
	v.geo = geo
	v.metaMu.Unlock()
	v.size.Store(newSize)
	v.readMu.Unlock()
	return v.commit(ctx)
}
