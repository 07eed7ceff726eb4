package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/blobio/location"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/retry"
	"github.com/encfs/encfs/internal/testtree"
)

// remoteMount packs files of the given sizes, puts the image in Azurite behind a fault proxy,
// and mounts it through the chunk layer with the given request timeout (also the source's
// retry budget, as encfs mount sets them). Faults start only after the mount.
func remoteMount(t *testing.T, sizes map[string]int, timeout time.Duration) (*fstest.Mounted, *faultproxy.Proxy, *blobio.Chunked) {
	t.Helper()
	fstest.RequireFUSE(t)
	src := t.TempDir()
	writeFiles(t, src, sizes)
	key := fstest.NewKey(t)
	data, err := os.ReadFile(fstest.Pack(t, src, key))
	if err != nil {
		t.Fatal(err)
	}
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	px := faultproxy.New(t, az.Endpoint)
	u := px.Rewrite(az.PutBlockBlob(t, "images", "data.img", data, nil))
	policy := retry.Policy{TryTimeout: timeout, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Budget: timeout}
	bs, err := location.Open(context.Background(), u, location.Options{ConnectionString: az.ConnectionString, Retry: policy})
	if err != nil {
		t.Fatal(err)
	}
	// Small chunks and a small cache, so that every file below needs fetches of its own.
	ch := blobio.NewChunked(bs, blobio.ChunkOptions{ChunkSize: 256 << 10, CacheBytes: 1 << 20, Workers: 8})
	im, err := image.Open(context.Background(), ch, [][]byte{key}, image.Options{CacheBytes: 1 << 20})
	if err != nil {
		ch.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	m := fstest.MountImage(t, im, &fstest.Options{FS: encfs.Options{RequestTimeout: timeout}})
	return m, px, ch
}

// TestStorageFailureIsNeverAShortRead: storage that closes connections without answering (an
// L4 balancer whose backend is gone), resets them, or cuts bodies short must give EIO or the
// right bytes, never a successful short read: the kernel would take that for the file's new
// size and keep it for the rest of the mount. After the fault the same mount serves the file
// whole, at its size.
func TestStorageFailureIsNeverAShortRead(t *testing.T) {
	faults := []faultproxy.Fault{faultproxy.Close, faultproxy.Reset, faultproxy.Truncate}
	sizes := map[string]int{}
	for _, f := range faults {
		sizes[f.String()] = 3<<20 + 777
	}
	const timeout = 2 * time.Second
	m, px, _ := remoteMount(t, sizes, timeout)
	for _, f := range faults {
		t.Run(f.String(), func(t *testing.T) {
			name := filepath.Join(m.Dir, f.String())
			want := testtree.Content(f.String(), sizes[f.String()])
			px.Always(f)
			got, err := os.ReadFile(name)
			px.Always(faultproxy.None)
			switch {
			case err == nil && !bytes.Equal(got, want):
				t.Fatalf("read through %v returned %d bytes and no error; the file has %d", f, len(got), len(want))
			case err != nil && !errors.Is(err, syscall.EIO):
				t.Fatalf("read through %v: %v, want EIO", f, err)
			case err == nil && f != faultproxy.Truncate:
				// A cut body is resumed from where it stopped, so it may be served in the end.
				t.Fatalf("read through %v succeeded although every request failed", f)
			}
			st, err := os.Stat(name)
			if err != nil || st.Size() != int64(len(want)) {
				t.Fatalf("after the fault: size %v, %v; want %d", st.Size(), err, len(want))
			}
			// Requests still waiting when the fault ended fail at their deadline, and the chunks
			// they wanted are refused for FailedChunkTTL after that: within both, the file
			// reads whole again, and never short meanwhile.
			deadline := time.Now().Add(timeout + blobio.FailedChunkTTL + 2*time.Second)
			for {
				got, err := os.ReadFile(name)
				if err == nil {
					if !bytes.Equal(got, want) {
						t.Fatalf("after the fault: %d bytes and no error; want the %d bytes of the file", len(got), len(want))
					}
					break
				}
				if !errors.Is(err, syscall.EIO) || time.Now().After(deadline) {
					t.Fatalf("after the fault: %v; want the %d bytes of the file", err, len(want))
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	if s := m.FS.Stats(); s.ReadErrors == 0 {
		t.Errorf("no read error counted: %+v", s)
	}
}

// TestStallBoundsEveryRead: against storage that accepts requests and never answers, every
// read() of 1, 16 and 64 parallel readers fails within 1.2 times the request timeout, however
// many wait for the 8 fetch workers; and the kernel's immediate retries of the same pages do
// not start the wait again.
func TestStallBoundsEveryRead(t *testing.T) {
	const timeout = 2 * time.Second
	sizes := map[string]int{}
	for i := range 64 {
		sizes[fmt.Sprintf("f%02d", i)] = 300 << 10
	}
	m, px, _ := remoteMount(t, sizes, timeout)
	px.SetStall(time.Hour)
	px.Always(faultproxy.Stall)
	defer px.Always(faultproxy.None)
	for _, readers := range []int{1, 16, 64} {
		t.Run(fmt.Sprint(readers), func(t *testing.T) {
			var wg sync.WaitGroup
			took := make([]time.Duration, readers)
			errs := make([]error, readers)
			for i := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// From the last file down: the first ones lie in the chunk read with the index.
					name := fmt.Sprintf("f%02d", 63-i)
					f, err := os.Open(filepath.Join(m.Dir, name))
					if err != nil {
						errs[i] = err
						return
					}
					defer f.Close()
					start := time.Now()
					// Each run reads at a new offset: pages of an earlier run are remembered as
					// failed for a while, and this measures a read that waits.
					off, buf := int64(readers)*1024, make([]byte, 64<<10)
					var n int
					n, errs[i] = f.ReadAt(buf, off)
					took[i] = time.Since(start)
					// A file whose blocks came with the index at mount is served from the cache.
					want := testtree.Content(name, 300<<10)[off : off+int64(len(buf))]
					if errs[i] == nil && (n != len(buf) || !bytes.Equal(buf, want)) {
						errs[i] = fmt.Errorf("a read without error returned %d bytes, not the file's %d", n, len(buf))
					}
				}()
			}
			wg.Wait()
			slowest, failed := time.Duration(0), 0
			for i := range readers {
				switch {
				case errors.Is(errs[i], syscall.EIO):
					failed++
				case errs[i] != nil:
					t.Errorf("reader %d: %v, want EIO or the file's bytes", i, errs[i])
				}
				slowest = max(slowest, took[i])
			}
			if failed < readers/2 {
				t.Errorf("only %d of %d readers failed against a stalled source", failed, readers)
			}
			// The goal is 1.2 times the timeout (the chaos tests hold the real binary to it);
			// the race detector and a loaded machine delay the FUSE round trips themselves.
			if bound := timeout * 12 / 10; slowest > bound && !(raceEnabled && slowest < 2*timeout) {
				t.Errorf("slowest of %d readers failed after %v; the timeout is %v", readers, slowest, timeout)
			}
			t.Logf("%d readers: %d failed (the others were served from the cache), the slowest after %v (timeout %v)",
				readers, failed, slowest.Round(time.Millisecond), timeout)
		})
	}
}
