package sidecar_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/syncbuf"
	"github.com/encfs/encfs/internal/testtree"
	"github.com/encfs/encfs/pack"
	"github.com/encfs/encfs/profile"
	"github.com/encfs/encfs/sidecar"
)

// profileTree is a source tree of small files and the order a workload reads some of them in.
func profileTree(t *testing.T) (dir string, sizes map[string]int, order []string) {
	dir = t.TempDir()
	sizes = map[string]int{}
	for i := range 30 {
		name := fmt.Sprintf("f%02d", i)
		sizes[name] = 100<<10 + i*777
		if err := os.WriteFile(filepath.Join(dir, name), testtree.Content(name, sizes[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, sizes, []string{"f17", "f03", "f29", "f08", "f21", "f11", "f00", "f25"}
}

// remoteSpec puts an image in Azurite behind a recording proxy and returns a spec mounting it
// at a new mount point, with no disk cache (every fetch is visible at the proxy).
func remoteSpec(t *testing.T, imgPath string, key []byte, logs *syncbuf.Buffer) (sidecar.MountSpec, *faultproxy.Proxy) {
	t.Helper()
	data, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	px := faultproxy.New(t, az.Endpoint)
	u := px.Rewrite(az.PutBlockBlob(t, "images", "data.img", data, nil))
	return sidecar.MountSpec{
		Image: u, Mountpoint: filepath.Join(t.TempDir(), "mnt"), RequestTimeout: 30 * time.Second,
		// Two workers: the background fetch then has one request in flight at a time, so
		// requests reach the storage in the order they were sent. Chunks of 256 KiB: the index's
		// chunk (fetched whole at mount) holds none of the files' first bytes.
		Source: sidecar.SourceOptions{Blob: location.Options{ConnectionString: az.ConnectionString}, Chunk: blobio.ChunkOptions{Workers: 2, ChunkSize: 256 << 10}},
		Keys:   func(context.Context) ([][]byte, error) { return [][]byte{append([]byte(nil), key...)}, nil },
		Log:    slog.New(slog.NewTextHandler(logs, nil)),
	}, px
}

// inodesOf maps names to image inode numbers.
func inodesOf(t *testing.T, im *image.Image, names []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, n := range names {
		in, err := im.LookupPath(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in.Ino)
	}
	return out
}

// checkReplayOrder waits until the proxy saw a GET of each file's first bytes, and checks that
// they came in the order of names (a GET may carry neighbours together).
func checkReplayOrder(t *testing.T, m *sidecar.Mounted, px *faultproxy.Proxy, from int, names []string) {
	t.Helper()
	var want []faultproxy.Range
	for _, n := range names {
		in, err := m.Image.LookupPath(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		off, size, _ := m.Image.FileExtent(&in)
		want = append(want, faultproxy.Range{Off: off, End: off + size})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		gets := px.Ranges()[from:]
		at := make([]int, len(want))
		all := true
		for i, w := range want {
			at[i] = slices.IndexFunc(gets, func(r faultproxy.Range) bool { return r.Off <= w.Off && w.Off < r.End })
			all = all && at[i] >= 0
		}
		if all {
			if !slices.IsSorted(at) {
				t.Fatalf("the profile's files were fetched in the order of GETs %v, want increasing (GETs %v)", at, gets)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every file of the profile was fetched: positions %v in %v", at, gets)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccessProfileRecordAndReplay: a mount records the order of first reads; a fresh mount
// given that profile fetches those files first, in that order, before anything is read; and
// an image packed with the profile does the same with no flag.
func TestAccessProfileRecordAndReplay(t *testing.T) {
	fstest.RequireFUSE(t)
	src, sizes, order := profileTree(t)
	key := fstest.NewKey(t)
	img := fstest.Pack(t, src, key)
	logs := new(syncbuf.Buffer)
	ctx := context.Background()

	// Record.
	spec, _ := remoteSpec(t, img, key, logs)
	spec.Prefetch = "none"
	spec.RecordProfile = filepath.Join(t.TempDir(), "profile")
	m, err := sidecar.Mount(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(order, order[0]) { // a second read of a file is not a first read
		got, err := os.ReadFile(filepath.Join(m.Point.Target, name))
		if err != nil || string(got) != string(testtree.Content(name, sizes[name])) {
			m.Unmount()
			t.Fatalf("read %s: %v, or wrong bytes", name, err)
		}
	}
	wantInodes := inodesOf(t, m.Image, order)
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Load(spec.RecordProfile)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Inodes, wantInodes) {
		t.Fatalf("recorded inodes %v, want %v (the order of first reads)", p.Inodes, wantInodes)
	}
	if raw, _ := os.ReadFile(spec.RecordProfile); strings.Contains(string(raw), "f17") {
		t.Fatal("the profile names a file")
	}

	// Replay from the file, in a fresh mount with cold caches.
	spec, px := remoteSpec(t, img, key, logs)
	spec.Prefetch = filepath.Join(t.TempDir(), "given")
	if err := p.WriteFile(spec.Prefetch); err != nil {
		t.Fatal(err)
	}
	m, err = sidecar.Mount(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	replayed := m
	t.Cleanup(func() { replayed.Unmount() })
	checkReplayOrder(t, m, px, len(px.Ranges()), order)

	// Stored in the image: the same tree packed again gets the same inode numbers.
	stored := filepath.Join(t.TempDir(), "stored.img")
	if _, err := pack.Pack(ctx, src, stored, pack.Options{WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{key}},
		Profile: p.Inodes, Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	spec, px = remoteSpec(t, stored, key, logs)
	m, err = sidecar.Mount(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unmount() })
	if got, err := m.Image.Profile(ctx); err != nil || !slices.Equal(got, p.Inodes) {
		t.Fatalf("profile read back from the image: %v, %v", got, err)
	}
	checkReplayOrder(t, m, px, len(px.Ranges()), order)
	if !strings.Contains(logs.String(), "profile=image") {
		t.Errorf("the mount did not say it replays the image's profile:\n%s", logs.String())
	}
}

// TestPackRefusesAProfileOfAnotherTree: inode numbers the tree does not have are refused.
func TestPackRefusesAProfileOfAnotherTree(t *testing.T) {
	src, _, _ := profileTree(t)
	_, err := pack.Pack(context.Background(), src, filepath.Join(t.TempDir(), "x.img"), pack.Options{
		WriterOptions: image.WriterOptions{ReleaseKeys: [][]byte{fstest.NewKey(t)}}, Profile: []uint64{3, 5000},
		Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "inode 5000 does not exist") {
		t.Fatalf("pack with a profile of another tree: %v", err)
	}
}
