package azure_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
	"github.com/encfs/encfs/internal/retry"
	"github.com/encfs/encfs/internal/syncbuf"
)

// writeRetry gives a loaded machine time for a 4 MiB write, and still ends quickly.
var writeRetry = retry.Policy{TryTimeout: 5 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Budget: 20 * time.Second}

// pageBlobSetup starts Azurite with a container "vol" and creates a page blob of size bytes.
func pageBlobSetup(t *testing.T, size int64) (*azuritetest.Server, string, azure.PageBlobOptions) {
	t.Helper()
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "vol", false)
	u := az.BlobURL("vol", "v1.vol")
	o := azure.PageBlobOptions{Options: azure.Options{ConnectionString: az.ConnectionString, Retry: writeRetry}}
	if err := azure.CreatePageBlob(context.Background(), u, size, o); err != nil {
		t.Fatal(err)
	}
	return az, u, o
}

func openPB(t *testing.T, u string, o azure.PageBlobOptions) *azure.PageBlob {
	t.Helper()
	b, err := azure.OpenPageBlob(context.Background(), u, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func readPB(t *testing.T, b *azure.PageBlob, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := b.ReadAt(context.Background(), p, off); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPageBlobRoundTrip(t *testing.T) {
	ctx := context.Background()
	az, u, o := pageBlobSetup(t, 3<<20+100) // rounded up to whole pages
	b := openPB(t, u, o)
	if b.Size() != 3<<20+512 {
		t.Fatalf("size %d, want %d", b.Size(), 3<<20+512)
	}
	data := sourcetest.RandBytes(t, 4<<20)
	writes := []struct {
		off int64
		n   int
	}{{0, 4096}, {8192, 512}, {1 << 20, 2 << 20}, {3 << 20, 512}}
	for _, w := range writes {
		if err := b.WriteAt(ctx, data[:w.n], w.off); err != nil {
			t.Fatalf("write %d at %d: %v", w.n, w.off, err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if got := readPB(t, b, w.off, w.n); !bytes.Equal(got, data[:w.n]) {
			t.Fatalf("read back %d at %d differs", w.n, w.off)
		}
	}
	if got := readPB(t, b, 4096, 4096); !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("pages never written do not read as zero")
	}

	// Bad writes are refused with a reason, before any request.
	for _, bad := range []struct {
		n    int
		off  int64
		want string
	}{{100, 0, "multiples of 512"}, {512, 100, "multiples of 512"}, {8 << 20, 0, "at most"}, {1024, 3<<20 + 0, "past the end"}} {
		err := b.WriteAt(ctx, make([]byte, bad.n), bad.off)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("write %d at %d: %v, want %q", bad.n, bad.off, err, bad.want)
		}
	}
	if err := b.ReadAt(ctx, make([]byte, 1024), b.Size()-512); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("read past the end: %v", err)
	}

	// Grow: new pages read as zero, the lease is kept (writes still carry it and succeed).
	if err := b.Resize(ctx, 8<<20); err != nil {
		t.Fatal(err)
	}
	if b.Size() != 8<<20 {
		t.Fatalf("size after resize %d", b.Size())
	}
	if got := readPB(t, b, 7<<20, 4096); !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("grown pages do not read as zero")
	}
	if err := b.WriteAt(ctx, data[:4<<20], 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAt(ctx, data[:512], 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("write after close: %v", err)
	}

	// Reopened read-only (no lease): the bytes are there, writes are refused.
	ro := o
	ro.ReadOnly = true
	r := openPB(t, u, ro)
	if r.Size() != 8<<20 || !bytes.Equal(readPB(t, r, 4<<20, 4<<20), data[:4<<20]) || !bytes.Equal(readPB(t, r, 1<<20, 2<<20), data[:2<<20]) {
		t.Fatal("read-only reopen: content differs")
	}
	if err := r.WriteAt(ctx, data[:512], 0); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write to a read-only blob: %v", err)
	}

	// Create never replaces a blob.
	err := azure.CreatePageBlob(ctx, u, 1<<20, o)
	if !errors.Is(err, azure.ErrVolumeExists) || !strings.Contains(err.Error(), "never replaces") {
		t.Fatalf("create over an existing blob: %v", err)
	}
	t.Logf("refused: %v", err)
	if got := readPB(t, r, 4<<20, 4096); !bytes.Equal(got, data[:4096]) {
		t.Fatal("the refused create changed the blob")
	}
	// A block blob is not a volume.
	bu := az.PutBlockBlob(t, "vol", "block", []byte("not pages"), nil)
	if _, err := azure.OpenPageBlob(ctx, bu, o); err == nil || !strings.Contains(err.Error(), "not a page blob") {
		t.Fatalf("open a block blob: %v", err)
	}
}

func TestPageBlobCreateNeedsContainer(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	o := azure.PageBlobOptions{Options: azure.Options{ConnectionString: az.ConnectionString, Retry: writeRetry}}
	err := azure.CreatePageBlob(context.Background(), az.BlobURL("nocontainer", "v.vol"), 1<<20, o)
	if !errors.Is(err, blobio.ErrNotFound) || !strings.Contains(err.Error(), `no container "nocontainer"`) ||
		!strings.Contains(err.Error(), "does not create containers") {
		t.Fatalf("create in a missing container: %v", err)
	}
	t.Logf("refused: %v", err)
}

func TestPageBlobSecondWriterRefusedNamingHolder(t *testing.T) {
	ctx := context.Background()
	_, u, o := pageBlobSetup(t, 1<<20)
	first := o
	first.Holder = "host test-a pid 4242 started 2026-11-29T10:00:00Z"
	first.LeaseDuration = 20 * time.Second
	a := openPB(t, u, first)
	if err := a.WriteAt(ctx, bytes.Repeat([]byte{7}, 4096), 0); err != nil {
		t.Fatal(err)
	}

	_, err := azure.OpenPageBlob(ctx, u, o)
	if !errors.Is(err, azure.ErrLeased) {
		t.Fatalf("second writer: %v, want ErrLeased", err)
	}
	for _, want := range []string{first.Holder, "leased at", "at most 20 s after its last renewal", "one writer at a time"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not say %q", err, want)
		}
	}
	t.Logf("refused: %v", err)

	// A reader needs no lease and sees the writer's bytes.
	ro := o
	ro.ReadOnly = true
	r := openPB(t, u, ro)
	if got := readPB(t, r, 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{7}, 4096)) {
		t.Fatal("reader does not see the writer's bytes")
	}

	// Once the first writer closes (releasing the lease), the second one gets it at once.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := openPB(t, u, o)
	if err := b.WriteAt(ctx, make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	if b.LeaseID() == a.LeaseID() {
		t.Fatal("the second writer reuses the first one's lease id")
	}
}

func TestPageBlobLeaseDurationBounds(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 14 * time.Second, 61 * time.Second, 15500 * time.Millisecond} {
		_, err := azure.OpenPageBlob(context.Background(), "http://127.0.0.1:1/devstoreaccount1/c/b", azure.PageBlobOptions{LeaseDuration: d})
		if err == nil || !strings.Contains(err.Error(), "whole seconds from 15s to 1m0s") {
			t.Fatalf("lease %v: %v", d, err)
		}
	}
}

// The lease outlives its duration while the store is open: the background renewal keeps it.
func TestPageBlobLeaseRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 20 s for a 15 s lease to need renewal")
	}
	ctx := context.Background()
	_, u, o := pageBlobSetup(t, 1<<20)
	w := o
	w.LeaseDuration = azure.MinLeaseDuration
	w.Holder = "renewing writer"
	b := openPB(t, u, w)
	time.Sleep(w.LeaseDuration + 5*time.Second)
	if err := b.WriteAt(ctx, bytes.Repeat([]byte{1}, 512), 0); err != nil {
		t.Fatalf("write after the lease's duration: %v", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := azure.OpenPageBlob(ctx, u, o); !errors.Is(err, azure.ErrLeased) || !strings.Contains(err.Error(), "renewing writer") {
		t.Fatalf("second writer after 20 s: %v", err)
	}
}

// leaseClient is the SDK's lease client of the blob, with the account key: another client
// than the writer under test.
func leaseClient(t *testing.T, az *azuritetest.Server, u string) *lease.BlobClient {
	t.Helper()
	bc, err := blob.NewClientWithSharedKeyCredential(u, az.SharedKey(), &blob.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := lease.NewBlobClient(bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// takeLease takes a lease of the given duration on the blob and never renews or releases it,
// as a writer that was killed leaves it.
func takeLease(t *testing.T, az *azuritetest.Server, u string, d time.Duration) {
	t.Helper()
	if _, err := leaseClient(t, az, u).AcquireLease(context.Background(), int32(d/time.Second), nil); err != nil {
		t.Fatal(err)
	}
}

// A writer with LeaseWait takes the blob once the lease of a writer that died ends; without
// enough wait it is refused, saying how long it waited.
func TestPageBlobLeaseWait(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to 15 s for a dead writer's lease to end")
	}
	ctx := context.Background()
	az, u, o := pageBlobSetup(t, 1<<20)
	takeLease(t, az, u, azure.MinLeaseDuration)
	taken := time.Now()

	short := o
	short.LeaseWait = 3 * time.Second
	_, err := azure.OpenPageBlob(ctx, u, short)
	if !errors.Is(err, azure.ErrLeased) || !strings.Contains(err.Error(), "waited 3s for it to end") {
		t.Fatalf("writer waiting 3 s: %v, want refused after waiting", err)
	}
	if waited := time.Since(taken); waited < short.LeaseWait {
		t.Fatalf("refused after %v, before its wait of %v", waited, short.LeaseWait)
	}

	logs := &syncbuf.Buffer{}
	long := o
	long.LeaseWait = 2 * azure.MinLeaseDuration
	long.Log = slog.New(slog.NewTextHandler(logs, nil))
	b := openPB(t, u, long)
	if since := time.Since(taken); since < azure.MinLeaseDuration-time.Second {
		t.Fatalf("took the blob %v after the dead writer's 15 s lease: it did not wait for it", since)
	}
	if err := b.WriteAt(ctx, bytes.Repeat([]byte{3}, 512), 0); err != nil {
		t.Fatalf("write after taking the lease: %v", err)
	}
	if !strings.Contains(logs.String(), "waiting for its lease to end") {
		t.Fatalf("no log line about the wait: %q", logs.String())
	}
	t.Logf("took the blob %v after the dead writer's lease; log: %s", time.Since(taken).Round(time.Second), logs.String())
}

// breakLease breaks the blob's lease at once, as an operator (or another client) would.
func breakLease(t *testing.T, az *azuritetest.Server, u string) {
	t.Helper()
	zero := int32(0)
	if _, err := leaseClient(t, az, u).BreakLease(context.Background(), &lease.BlobBreakOptions{BreakPeriod: &zero}); err != nil {
		t.Fatal(err)
	}
}

func TestPageBlobLeaseLostFailsEveryLaterWrite(t *testing.T) {
	ctx := context.Background()
	az, u, o := pageBlobSetup(t, 1<<20)
	logs := &syncbuf.Buffer{}
	w := o
	w.LeaseDuration = azure.MinLeaseDuration
	w.Log = slog.New(slog.NewTextHandler(logs, nil))
	b := openPB(t, u, w)
	if err := b.WriteAt(ctx, bytes.Repeat([]byte{1}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.LeaseHeld() {
		t.Fatal("LeaseHeld is false while the writer holds the lease")
	}
	breakLease(t, az, u)

	// The service refuses the next write (it carries a lease id that no longer holds); from
	// then on nothing more is sent.
	err := b.WriteAt(ctx, bytes.Repeat([]byte{2}, 4096), 0)
	var be *blobio.Error
	if !errors.Is(err, azure.ErrLeaseLost) || !errors.As(err, &be) || be.Tries != 1 {
		t.Fatalf("write after the lease was broken: %v, want ErrLeaseLost after one try", err)
	}
	t.Logf("refused: %v", err)
	for i := range 3 {
		if err := b.WriteAt(ctx, bytes.Repeat([]byte{3}, 512), int64(i)*512); !errors.Is(err, azure.ErrLeaseLost) {
			t.Fatalf("later write: %v", err)
		}
	}
	if err := b.Flush(ctx); !errors.Is(err, azure.ErrLeaseLost) {
		t.Fatalf("flush after the lease was lost: %v", err)
	}
	if err := b.Flush(ctx); !errors.Is(err, azure.ErrLeaseLost) {
		t.Fatalf("second flush after the lease was lost: %v", err)
	}
	if n := strings.Count(logs.String(), "lost the lease"); n != 1 {
		t.Fatalf("%d log lines about the lost lease, want 1:\n%s", n, logs.String())
	}
	if b.LeaseHeld() {
		t.Error("LeaseHeld is true after the lease was lost")
	}
	ro := o
	ro.ReadOnly = true
	if got := readPB(t, openPB(t, u, ro), 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{1}, 4096)) {
		t.Fatal("a write without the lease reached the blob")
	}
	// Someone else may now take the blob.
	other := openPB(t, u, o)
	if err := other.WriteAt(ctx, make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
}

// A renewal that fails (the lease was broken, and then taken by another writer) loses the lease
// in the background, before any write is refused by the service.
func TestPageBlobRenewalFailureLosesLease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a renewal (5 s)")
	}
	ctx := context.Background()
	az, u, o := pageBlobSetup(t, 1<<20)
	logs := &syncbuf.Buffer{}
	w := o
	w.LeaseDuration = azure.MinLeaseDuration
	w.Log = slog.New(slog.NewTextHandler(logs, nil))
	b := openPB(t, u, w)
	breakLease(t, az, u)
	thief := openPB(t, u, o)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), "lost the lease") {
		if time.Now().After(deadline) {
			t.Fatal("the failed renewal was not noticed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.WriteAt(ctx, make([]byte, 512), 0); !errors.Is(err, azure.ErrLeaseLost) {
		t.Fatalf("write after a failed renewal: %v", err)
	}
	if err := thief.WriteAt(ctx, make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
}

// The store also works with a SAS (the lease requests are signed by it) and never shows the
// signature.
func TestPageBlobSAS(t *testing.T) {
	ctx := context.Background()
	az, _, o := pageBlobSetup(t, 1<<20)
	perms := sas.BlobPermissions{Read: true, Write: true, Create: true}
	su := az.SAS(t, "vol", "sas.vol", perms, time.Now().Add(time.Hour))
	so := azure.PageBlobOptions{Options: azure.Options{Retry: o.Retry}, Holder: "sas writer"}
	if err := azure.CreatePageBlob(ctx, su, 1<<20, so); err != nil {
		t.Fatal(err)
	}
	b := openPB(t, su, so)
	if strings.Contains(b.String(), "sig=") {
		t.Fatalf("String() shows the signature: %s", b)
	}
	if err := b.WriteAt(ctx, bytes.Repeat([]byte{9}, 1024), 512); err != nil {
		t.Fatal(err)
	}
	if _, err := azure.OpenPageBlob(ctx, su, so); !errors.Is(err, azure.ErrLeased) || !strings.Contains(err.Error(), "sas writer") || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("second writer by SAS: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A read-only SAS can open for reading, not for writing.
	ru := az.SAS(t, "vol", "sas.vol", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	_, err := azure.OpenPageBlob(ctx, ru, so)
	if !errors.Is(err, blobio.ErrAuth) || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("writer with a read-only SAS: %v", err)
	}
	t.Logf("refused: %v", err)
	so.ReadOnly = true
	r := openPB(t, ru, so)
	if got := readPB(t, r, 512, 1024); !bytes.Equal(got, bytes.Repeat([]byte{9}, 1024)) {
		t.Fatal("read by SAS differs")
	}
}

// With an identity (a bearer token over https), the lease requests carry the token too.
func TestPageBlobIdentity(t *testing.T) {
	ctx := context.Background()
	az := azuritetest.Start(t, azuritetest.Config{OAuth: true})
	az.CreateContainer(t, "vol", false)
	u := az.BlobURL("vol", "id.vol")
	o := azure.PageBlobOptions{Options: azure.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient, Retry: writeRetry}, Holder: "identity writer"}
	if err := azure.CreatePageBlob(ctx, u, 1<<20, o); err != nil {
		t.Fatal(err)
	}
	b := openPB(t, u, o)
	if err := b.WriteAt(ctx, bytes.Repeat([]byte{5}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := azure.OpenPageBlob(ctx, u, o); !errors.Is(err, azure.ErrLeased) || !strings.Contains(err.Error(), "identity writer") {
		t.Fatalf("second writer: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readPB(t, openPB(t, u, o), 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{5}, 4096)) {
		t.Fatal("content differs")
	}
}

// isPageWrite matches Put Page requests.
func isPageWrite(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page"
}

// Faults during writes: passing ones are retried (a Put Page of the same bytes is idempotent,
// even when the first one reached the service and only its answer was lost); lasting ones fail
// the write and the next Flush; what was written before stays.
func TestPageBlobWriteFaults(t *testing.T) {
	ctx := context.Background()
	az, u, o := pageBlobSetup(t, 4<<20)
	px := faultproxy.New(t, az.Endpoint)
	px.Match(isPageWrite)
	px.SetRetryAfter(0)
	b := openPB(t, px.Rewrite(u), o)
	data := sourcetest.RandBytes(t, 4<<20)

	px.Next(faultproxy.ServerError, faultproxy.Reset, faultproxy.Throttle, faultproxy.Truncate, faultproxy.Close)
	for i := range 4 {
		if err := b.WriteAt(ctx, data[i<<20:(i+1)<<20], int64(i)<<20); err != nil {
			t.Fatalf("write %d through passing faults: %v", i, err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if px.Injected() != 5 || b.Retries() < 4 {
		t.Fatalf("%d faults injected, %d retries", px.Injected(), b.Retries())
	}
	if got := readPB(t, b, 0, 4<<20); !bytes.Equal(got, data) {
		t.Fatal("content after retried writes differs")
	}

	// A lasting failure: the write fails within the budget, Flush reports it once, the
	// acknowledged bytes are intact and the store works again when the service does.
	short := o
	short.Retry.Budget = 2 * time.Second
	b.Close()
	b = openPB(t, px.Rewrite(u), short)
	px.Always(faultproxy.ServerError)
	err := b.WriteAt(ctx, make([]byte, 1<<20), 0)
	if !errors.Is(err, blobio.ErrUnreachable) || !strings.Contains(err.Error(), "write 1048576 bytes at 0") {
		t.Fatalf("write through a lasting failure: %v", err)
	}
	if ferr := b.Flush(ctx); ferr == nil || ferr.Error() != err.Error() {
		t.Fatalf("flush after a failed write: %v", ferr)
	}
	px.Always(faultproxy.None)
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("flush with no failed write since the last: %v", err)
	}
	if got := readPB(t, b, 0, 4<<20); !bytes.Equal(got, data) {
		t.Fatal("acknowledged bytes changed by a failed write")
	}
}

// Concurrent writers and flushes (run with -race): every acknowledged write is on the blob.
func TestPageBlobConcurrentWritesAndFlushes(t *testing.T) {
	ctx := context.Background()
	_, u, o := pageBlobSetup(t, 2<<20)
	b := openPB(t, u, o)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 16 {
				off := int64(g*16+i) * 8192
				if err := b.WriteAt(ctx, bytes.Repeat([]byte{byte(g + 1)}, 8192), off); err != nil {
					t.Error(err)
					return
				}
				if i%4 == 3 {
					if err := b.Flush(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	got := readPB(t, b, 0, 2<<20)
	for g := range 8 {
		for i := range 16 {
			off := (g*16 + i) * 8192
			if !bytes.Equal(got[off:off+8192], bytes.Repeat([]byte{byte(g + 1)}, 8192)) {
				t.Fatalf("writer %d write %d is not on the blob", g, i)
			}
		}
	}
}
