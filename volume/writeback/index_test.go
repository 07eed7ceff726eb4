package writeback

import (
	"math/rand/v2"
	"testing"
)

// The index against a Go map, through many inserts and removals in a small, crowded table
// (where backward-shift deletion has the most chains to repair).
func TestSlotIndexMatchesMap(t *testing.T) {
	const n = 64
	x := newSlotIndex(n)
	want := map[int64]int32{}
	r := rand.New(rand.NewPCG(3, 4))
	for step := range 200000 {
		key := int64(r.IntN(300))
		if _, ok := want[key]; ok {
			x.remove(key)
			delete(want, key)
		} else if len(want) < n {
			v := int32(r.IntN(1 << 20))
			x.insert(key, v)
			want[key] = v
		}
		probe := int64(r.IntN(300))
		got := x.find(probe)
		if v, ok := want[probe]; (ok && got != v) || (!ok && got != -1) {
			t.Fatalf("step %d: find(%d) = %d, want %d (present %v)", step, probe, got, v, ok)
		}
	}
	for key, v := range want {
		if got := x.find(key); got != v {
			t.Fatalf("find(%d) = %d, want %d", key, got, v)
		}
	}
}
