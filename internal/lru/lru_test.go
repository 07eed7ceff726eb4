package lru

import (
	"fmt"
	"testing"
)

func keys[K comparable, V any](c *Cache[K, V]) []K {
	var out []K
	for e := c.root.next; e != &c.root; e = e.next {
		out = append(out, e.key)
	}
	return out
}

func TestEvictsLeastRecentlyUsedByCost(t *testing.T) {
	var removed []string
	c := New[string, int](10, func(k string, v int) { removed = append(removed, fmt.Sprintf("%s=%d", k, v)) })
	for _, k := range []string{"a", "b", "c"} {
		if added, evicted := c.Add(k, len(removed), 3); !added || evicted != 0 {
			t.Fatalf("add %s: %v %d", k, added, evicted)
		}
	}
	if v, ok := c.Get("a"); !ok || v != 0 { // a is now the most recent
		t.Fatalf("get a: %d %v", v, ok)
	}
	if !c.Has("b") || c.Has("z") {
		t.Fatal("Has")
	}
	// 9 + 4 > 10: b (least recent; Has did not touch it) goes, then 10 fits.
	if added, evicted := c.Add("d", 7, 4); !added || evicted != 1 {
		t.Fatalf("add d: %v %d", added, evicted)
	}
	if got := fmt.Sprint(keys(c)); got != "[d a c]" || c.Cost() != 10 || c.Len() != 3 {
		t.Fatalf("order %s cost %d len %d", got, c.Cost(), c.Len())
	}
	if fmt.Sprint(removed) != "[b=0]" {
		t.Fatalf("removed %v", removed)
	}
}

func TestReplaceRemoveClear(t *testing.T) {
	var removed []int
	c := New[int, string](100, func(k int, _ string) { removed = append(removed, k) })
	c.Add(1, "one", 10)
	c.Add(2, "two", 10)
	c.Add(1, "uno", 30) // replaces: the old value leaves through onRemove
	if v, _ := c.Get(1); v != "uno" || c.Cost() != 40 {
		t.Fatalf("replace: %q cost %d", v, c.Cost())
	}
	if added, _ := c.Add(3, "huge", 101); added || c.Has(3) {
		t.Fatal("an entry dearer than the bound was kept")
	}
	c.Remove(2)
	c.Remove(42)
	c.Clear()
	if c.Len() != 0 || c.Cost() != 0 || fmt.Sprint(removed) != "[1 2 1]" {
		t.Fatalf("len %d cost %d removed %v", c.Len(), c.Cost(), removed)
	}
	if _, ok := c.Get(1); ok {
		t.Fatal("cleared entry still there")
	}
}
