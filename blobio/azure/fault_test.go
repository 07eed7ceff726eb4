package azure_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
)

// faultSetup serves a blob through a fault proxy in front of Azurite.
func faultSetup(t *testing.T, size int) (*azuritetest.Server, *faultproxy.Proxy, string, []byte) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "faults", false)
	data := sourcetest.RandBytes(t, size)
	u := az.PutBlockBlob(t, "faults", "f.img", data, nil)
	px := faultproxy.New(t, az.Endpoint)
	return az, px, px.Rewrite(u), data
}

func TestFaultsTransientAreRetried(t *testing.T) {
	az, px, u, data := faultSetup(t, 2<<20)
	px.SetRetryAfter(time.Second)
	px.SetStall(5 * time.Second) // longer than TryTimeout: the client gives up and retries
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString, Retry: sourcetest.FastRetry})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []faultproxy.Fault{faultproxy.Throttle, faultproxy.ServerError, faultproxy.Reset, faultproxy.Stall, faultproxy.Truncate} {
		t.Run(f.String(), func(t *testing.T) {
			before := src.(*azure.Source).Retries()
			px.Next(f, f)
			p := make([]byte, 1<<20)
			start := time.Now()
			n, err := src.ReadAt(context.Background(), p, 12345)
			if err != nil || n != len(p) || !bytes.Equal(p, data[12345:12345+len(p)]) {
				t.Fatalf("read through %v: %d, %v", f, n, err)
			}
			// Go's transport itself retries a GET once when a reused connection is reset.
			if r := src.(*azure.Source).Retries() - before; r < 2 && !(f == faultproxy.Reset && r == 1) {
				t.Fatalf("%d retries, want 2", r)
			}
			if f == faultproxy.Throttle && time.Since(start) < 2*time.Second {
				t.Fatalf("Retry-After: 1 twice honoured in %v", time.Since(start))
			}
		})
	}
}

func TestFaultsPersistentFailWithinBudget(t *testing.T) {
	az, px, u, _ := faultSetup(t, 1<<20)
	policy := sourcetest.FastRetry
	policy.Budget = 2 * time.Second
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString, Retry: policy})
	if err != nil {
		t.Fatal(err)
	}
	px.SetStall(time.Minute)
	for _, f := range []faultproxy.Fault{faultproxy.ServerError, faultproxy.Reset, faultproxy.Stall, faultproxy.Throttle} {
		t.Run(f.String(), func(t *testing.T) {
			px.Always(f)
			defer px.Always(faultproxy.None)
			start := time.Now()
			_, err := src.ReadAt(context.Background(), make([]byte, 4096), 0)
			took := time.Since(start)
			if !errors.Is(err, blobio.ErrUnreachable) {
				t.Fatalf("%v: err %v, want ErrUnreachable", f, err)
			}
			if took > 4*time.Second { // 2 s budget plus slack for a loaded machine
				t.Fatalf("%v: failed after %v, budget 2s", f, took)
			}
			t.Logf("%v: %v after %v", f, err, took.Round(time.Millisecond))
		})
	}
	// The source keeps serving once the faults stop.
	if _, err := src.ReadAt(context.Background(), make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
}

func TestFaultsChunkedAndOverwrite(t *testing.T) {
	az, px, u, data := faultSetup(t, 6<<20)
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString, Retry: sourcetest.FastRetry})
	if err != nil {
		t.Fatal(err)
	}
	c := blobio.NewChunked(src, blobio.ChunkOptions{ChunkSize: 1 << 20, Workers: 4})
	defer c.Close()
	px.Next(faultproxy.Truncate, faultproxy.Reset, faultproxy.Throttle)
	px.SetRetryAfter(0)
	got := make([]byte, len(data)-100)
	if n, err := c.ReadAt(context.Background(), got, 50); err != nil || n != len(got) || !bytes.Equal(got, data[50:len(data)-50]) {
		t.Fatalf("chunked read through faults: %d %v", n, err)
	}
	// Three faults, but net/http itself retries a GET whose reused connection was reset before
	// any response, so blobio may count only two of them.
	if st := c.Stats(); st.Retries < 2 || st.Fetches != 6 {
		t.Fatalf("stats %+v", st)
	}
	// Replace the blob: a chunk not yet cached must fail with ErrChanged, never old+new bytes.
	c2 := blobio.NewChunked(src, blobio.ChunkOptions{ChunkSize: 1 << 20, CacheBytes: -1})
	az.PutBlockBlob(t, "faults", "f.img", sourcetest.RandBytes(t, 6<<20), nil)
	_, err = c2.ReadAt(context.Background(), make([]byte, 10), 0)
	if !errors.Is(err, blobio.ErrChanged) {
		t.Fatalf("read after replace: %v", err)
	}
}
