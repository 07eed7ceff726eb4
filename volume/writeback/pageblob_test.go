package writeback_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/internal/retry"
	"github.com/encfs/encfs/volume"
	"github.com/encfs/encfs/volume/writeback"
)

var _ volume.Store = (*azure.PageBlob)(nil)

var testRetry = retry.Policy{TryTimeout: 10 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Budget: 30 * time.Second}

// azuriteBlob starts Azurite behind a fault proxy that can delay or fail Put Page requests,
// and creates a page blob of size bytes. It returns the blob's URL through the proxy.
func azuriteBlob(t testing.TB, size int64) (*faultproxy.Proxy, string, azure.PageBlobOptions) {
	t.Helper()
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "vol", false)
	px := faultproxy.New(t, az.Endpoint)
	px.Match(func(r *http.Request) bool { return r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page" })
	u := px.Rewrite(az.BlobURL("vol", "wb.vol"))
	o := azure.PageBlobOptions{Options: azure.Options{ConnectionString: az.ConnectionString, Retry: testRetry}}
	if err := azure.CreatePageBlob(context.Background(), u, size, o); err != nil {
		t.Fatal(err)
	}
	return px, u, o
}

func openBlob(t testing.TB, u string, o azure.PageBlobOptions) *azure.PageBlob {
	t.Helper()
	b, err := azure.OpenPageBlob(context.Background(), u, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Pages being written out are read from the write-out's buffer: the blob does not hold them
// yet, the cache must not read them from there.
func TestPageBlobReadsOfWritesInFlight(t *testing.T) {
	ctx := context.Background()
	px, u, o := azuriteBlob(t, 1<<20)
	inner := &counting{Store: openBlob(t, u, o)}
	c := writeback.New(inner, writeback.Options{MaxDirty: 1 << 20})
	defer c.Close()
	ro := o
	ro.ReadOnly = true
	direct := openBlob(t, u, ro)

	want := pattern(9, 64<<10)
	if err := c.WriteAt(ctx, want, 128<<10); err != nil {
		t.Fatal(err)
	}
	px.SetStall(4 * time.Second) // long enough for the reads below on a loaded machine
	px.Next(faultproxy.Stall)
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(ctx) }()
	for c.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	got := make([]byte, 256<<10)
	if err := c.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[128<<10:192<<10], want) || !bytes.Equal(got[:128<<10], make([]byte, 128<<10)) {
		t.Fatal("read of a range being written out differs")
	}
	onBlob := make([]byte, 64<<10)
	if err := direct.ReadAt(ctx, onBlob, 128<<10); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(onBlob, want) {
		t.Fatal("the write-out was not in flight during the read: the test proves nothing")
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := direct.ReadAt(ctx, onBlob, 128<<10); err != nil || !bytes.Equal(onBlob, want) {
		t.Fatalf("after Flush the blob does not hold the write: %v", err)
	}
	if got := inner.sizes(); len(got) != 1 || got[0] != 64<<10 {
		t.Fatalf("Put Pages %v, want one of 64 KiB", got)
	}
}

// With a slow store, writers wait for room instead of growing the cache past MaxDirty, and
// sequential writes still go out as large Put Pages.
func TestPageBlobBoundHoldsWhenStorageIsSlow(t *testing.T) {
	ctx := context.Background()
	px, u, o := azuriteBlob(t, 4<<20)
	inner := &counting{Store: openBlob(t, u, o)}
	const maxDirty = 256 << 10
	c := writeback.New(inner, writeback.Options{MaxDirty: maxDirty, MaxWrite: 64 << 10, Parallel: 2})
	defer c.Close()
	px.SetStall(200 * time.Millisecond)
	px.Always(faultproxy.Stall)
	want := pattern(4, 2<<20)
	start := time.Now()
	for off := 0; off < len(want); off += 4096 {
		if err := c.WriteAt(ctx, want[off:off+4096], int64(off)); err != nil {
			t.Fatal(err)
		}
		if d := c.Stats().DirtyBytes; d > maxDirty {
			t.Fatalf("%d dirty bytes, bound %d", d, maxDirty)
		}
	}
	wrote := time.Since(start)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	px.Always(faultproxy.None)
	st := c.Stats()
	// 2 MiB in writes of 64 KiB, two at a time, each held 200 ms: the writers had to wait for
	// about (2 MiB - 256 KiB) / (2 x 64 KiB) x 200 ms = 2.8 s, less what went out while the
	// cache was filling.
	if st.Waits == 0 || wrote < 2*time.Second {
		t.Fatalf("writers waited %d times, wrote 2 MiB in %v: the bound did not slow them", st.Waits, wrote)
	}
	sizes := inner.sizes()
	for _, n := range sizes {
		if n != 64<<10 {
			t.Fatalf("Put Page sizes %v, want all 64 KiB", sizes)
		}
	}
	got := make([]byte, len(want))
	if err := inner.ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("blob content differs (%v)", err)
	}
	t.Logf("2 MiB through a 256 KiB cache in %v, %d Put Pages, %d waits", wrote, len(sizes), st.Waits)
}

// A write-out that fails for good fails the Flush with the range and the cause, and every
// later Flush and write; reads still see every write; what was flushed before stays on the
// blob.
func TestPageBlobWriteOutFailure(t *testing.T) {
	ctx := context.Background()
	px, u, o := azuriteBlob(t, 4<<20)
	short := o
	short.Retry.Budget = time.Second
	pb := openBlob(t, u, short)
	c := writeback.New(pb, writeback.Options{MaxDirty: 1 << 20})
	flushed := pattern(1, 1<<20)
	if err := c.WriteAt(ctx, flushed[:512<<10], 0); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteAt(ctx, flushed[512<<10:], 512<<10); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	px.Always(faultproxy.ServerError)
	lost := pattern(2, 512<<10)
	if err := c.WriteAt(ctx, lost, 2<<20); err != nil {
		t.Fatalf("a write into the cache failed before any write-out: %v", err)
	}
	err := c.Flush(ctx)
	var we *writeback.WriteError
	if !errors.As(err, &we) || !errors.Is(err, writeback.ErrLost) || !errors.Is(err, blobio.ErrUnreachable) ||
		we.Off != 2<<20 || we.Len != 512<<10 || !strings.Contains(err.Error(), "bytes 2097152 to 2621440") ||
		!strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("flush through a failing store: %v", err)
	}
	t.Logf("flush: %v", err)
	if st := c.Stats(); st.WriteOutErrors != 1 || st.DirtyBytes != 0 {
		t.Errorf("stats after the failed write-out: %+v, want 1 write-out error and nothing dirty", st)
	}
	px.Always(faultproxy.None)
	if err2 := c.Flush(ctx); !errors.Is(err2, writeback.ErrLost) || err2.Error() != err.Error() {
		t.Fatalf("a later flush, the store working again: %v", err2)
	}
	if err2 := c.WriteAt(ctx, pattern(3, 4096), 0); !errors.Is(err2, writeback.ErrLost) {
		t.Fatalf("a later write: %v", err2)
	}
	got := make([]byte, 512<<10)
	if err := c.ReadAt(ctx, got, 2<<20); err != nil || !bytes.Equal(got, lost) {
		t.Fatalf("read of the lost range: %v (equal %v), want the bytes written", err, bytes.Equal(got, lost))
	}
	if err := c.Close(); !errors.Is(err, writeback.ErrLost) {
		t.Fatalf("close: %v", err)
	}
	ro := o
	ro.ReadOnly = true
	direct := openBlob(t, u, ro)
	onBlob := make([]byte, 1<<20)
	if err := direct.ReadAt(ctx, onBlob, 0); err != nil || !bytes.Equal(onBlob, flushed) {
		t.Fatalf("flushed bytes on the blob: %v (equal %v)", err, bytes.Equal(onBlob, flushed))
	}
}

// Concurrent writers, readers and flushes through the cache to a page blob (run under -race).
func TestPageBlobConcurrentWritersAndFlushes(t *testing.T) {
	const region, writers = 128 << 10, 4
	_, u, o := azuriteBlob(t, region*writers)
	concurrentWriters(t, openBlob(t, u, o), region, writers, 100)
}
