package volume

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrent runs writers on disjoint regions, readers everywhere and flushes at the same
// time, as FUSE does, with a node cache small enough to evict at every commit; each writer checks its own region, and everything verifies at the end.
func TestConcurrent(t *testing.T) {
	const writers, region = 4, 300 * BlockSize // regions share leaves and stripes
	s := newFaultStore()
	if _, err := Create(ctx, s, testKey(1), CreateOptions{Size: writers * region}); err != nil {
		t.Fatal(err)
	}
	v := openVolume(t, s, OpenOptions{CacheNodes: 4}) // evictions while reads run
	models := make([][]byte, writers)
	var wg sync.WaitGroup
	for w := range writers {
		models[w] = make([]byte, region)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			base := int64(w) * region
			for i := range 30 {
				off, n := randomRange(rng, region)
				p := make([]byte, n)
				for j := range p {
					p[j] = byte(rng.Uint32())
				}
				if err := v.WriteAt(ctx, p, base+off); err != nil {
					t.Error(err)
					return
				}
				copy(models[w][off:], p)
				got := make([]byte, region)
				if err := v.ReadAt(ctx, got, base); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(got, models[w]) {
					t.Errorf("writer %d, step %d: its region reads back different", w, i)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // flusher
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := v.Flush(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // a reader across all regions
		defer bg.Done()
		p := make([]byte, 5*BlockSize+7)
		rng := rand.New(rand.NewPCG(99, 11))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := v.ReadAt(ctx, p, rng.Int64N(v.Size()-int64(len(p)))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v = openVolume(t, s, OpenOptions{ReadOnly: true})
	if !bytes.Equal(readAll(t, v), bytes.Join(models, nil)) {
		t.Fatal("the volume reopens different from what the writers wrote")
	}
	if _, err := Verify(ctx, s, [][]byte{testKey(1)}, nil); err != nil {
		t.Fatal(err)
	}
}
