package sidecar

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/testtree"
)

// TestProbes follows /readyz and /healthz through the life of two real mounts: a local image,
// and the same image streamed from Azure Blob Storage (Azurite) with small chunks and no
// background fetch. Not ready until both are mounted; ready and healthy once they are; neither
// once the blob is replaced under the remote mount (its breaker opens: only a restart mends
// that); and unhealthy, naming the mount, once the local one is unmounted from outside.
func TestProbes(t *testing.T) {
	fstest.RequireFUSE(t)
	dir := t.TempDir()
	key := fstest.NewKey(t)
	img := fstest.Pack(t, testtree.Build(t, filepath.Join(dir, "src")), key)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	srv := azuritetest.Start(t, azuritetest.Config{})
	srv.CreateContainer(t, "images", false)
	srv.PutBlockBlob(t, "images", "data.img", data, nil)
	blobURL := srv.SAS(t, "images", "data.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))

	releaseKeys := func(context.Context) ([][]byte, error) { return [][]byte{bytes.Clone(key)}, nil }
	specs := []MountSpec{
		{Image: img, Mountpoint: filepath.Join(dir, "local"), Keys: releaseKeys, CacheBytes: 1 << 20},
		{Image: blobURL, Mountpoint: filepath.Join(dir, "remote"), Keys: releaseKeys, CacheBytes: 1 << 20, Prefetch: "none",
			RequestTimeout: 10 * time.Second, Source: SourceOptions{Chunk: blobio.ChunkOptions{ChunkSize: 64 << 10}}},
	}
	live := make([]atomic.Pointer[Mounted], len(specs))
	p := probes(specs, live)
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), specs[0].Mountpoint+" is not mounted yet") {
		t.Fatalf("ready before any mount: %v", err)
	}
	if err := p.Healthy(); err != nil {
		t.Fatalf("healthy before any mount: %v", err)
	}

	ctx := context.Background()
	for i := range specs {
		m, err := Mount(ctx, specs[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Unmount() })
		live[i].Store(m)
	}
	if err := p.Ready(); err != nil {
		t.Fatalf("ready with both mounted: %v", err)
	}
	if err := p.Healthy(); err != nil {
		t.Fatalf("healthy with both mounted: %v", err)
	}
	local, remote := live[0].Load(), live[1].Load()
	if remote.Health == nil {
		t.Fatal("the remote mount does not report its storage's health")
	}

	// Replace the blob: the next fetch finds another blob than the one opened.
	srv.PutBlockBlob(t, "images", "data.img", append(bytes.Clone(data), 0), nil)
	if _, err := os.ReadFile(filepath.Join(remote.Point.Target, "multi", "mib3")); err == nil {
		t.Fatal("a file read through a replaced blob succeeded")
	}
	if h := remote.Health(); h.State != blobio.StateBroken {
		t.Fatalf("storage state %v after the blob was replaced, want broken", h.State)
	}
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "storage of "+remote.Point.Target+": broken since") {
		t.Fatalf("ready with the blob replaced: %v", err)
	}
	if err := p.Healthy(); err == nil || !strings.Contains(err.Error(), "storage of "+remote.Point.Target+": breaker open since") {
		t.Fatalf("healthy with the blob replaced: %v", err)
	}

	// Unmount the local filesystem from outside, as an operator's umount would.
	if err := syscall.Unmount(local.Point.Target, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-local.Point.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the mount did not end after umount")
	}
	if err := p.Healthy(); err == nil || err.Error() != local.Point.Target+" is no longer mounted" {
		t.Fatalf("healthy with a filesystem unmounted from outside: %v", err)
	}
}
