package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/blobio/location"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/internal/testtree"
)

// rangeSetup is an image in Azurite behind a counting proxy, mounted through the chunk layer
// with its product defaults (8 MiB chunks).
type rangeSetup struct {
	m  *fstest.Mounted
	px *faultproxy.Proxy
	ch *blobio.Chunked
	im *image.Image
}

// rangeMount packs files of the given sizes and mounts the image from Azurite. tamper, if
// set, may change the image's bytes before the upload; it gets the image opened locally.
func rangeMount(t *testing.T, sizes map[string]int, co blobio.ChunkOptions, tamper func(local *image.Image, data []byte)) *rangeSetup {
	t.Helper()
	fstest.RequireFUSE(t)
	src := t.TempDir()
	writeFiles(t, src, sizes)
	key := fstest.NewKey(t)
	path := fstest.Pack(t, src, key)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(fstest.OpenImage(t, path, key, image.Options{}), data)
	}
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	px := faultproxy.New(t, az.Endpoint)
	u := px.Rewrite(az.PutBlockBlob(t, "images", "data.img", data, nil))
	bs, err := location.Open(context.Background(), u, location.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	ch := blobio.NewChunked(bs, co)
	im, err := image.Open(context.Background(), ch, [][]byte{key}, image.Options{})
	if err != nil {
		ch.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return &rangeSetup{m: fstest.MountImage(t, im, nil), px: px, ch: ch, im: im}
}

// extent is where the named file's bytes lie in the image, rounded out to the unit.
func (s *rangeSetup) extent(t *testing.T, name string) faultproxy.Range {
	t.Helper()
	in, err := s.im.LookupPath(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	off, n, ok := s.im.FileExtent(&in)
	if !ok {
		t.Fatalf("%s has no extent", name)
	}
	return faultproxy.Range{Off: off, End: off + n}
}

// contentGets keeps the reads of the content space (not the header or the integrity tree).
func (s *rangeSetup) contentGets(rs []faultproxy.Range) []faultproxy.Range {
	var out []faultproxy.Range
	for _, r := range rs {
		if r.Off >= image.HeaderSize && r.Off < int64(s.im.Header().TreeOffset) {
			out = append(out, r)
		}
	}
	return out
}

// TestColdRandomReadFetchesItsRange: a cold 4 KiB read in the middle of a large file, with
// no readahead, fetches that block (and its tree blocks), not the 8 MiB chunk around it.
func TestColdRandomReadFetchesItsRange(t *testing.T) {
	s := rangeMount(t, map[string]int{"big": 24 << 20}, blobio.ChunkOptions{}, nil)
	f, err := os.Open(filepath.Join(s.m.Dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	before, fetched := len(s.px.Ranges()), s.ch.Stats().BytesFetched
	const off = 13<<20 + 8192
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	if want := testtree.Content("big", 24<<20)[off : off+4096]; !bytes.Equal(buf, want) {
		t.Fatal("wrong bytes")
	}
	ext := s.extent(t, "big")
	unit := ext.Off + off/image.UnitSize*image.UnitSize // the extent starts on a unit
	gets := s.px.Ranges()[before:]
	content := s.contentGets(gets)
	if len(content) != 1 || content[0] != (faultproxy.Range{Off: unit, End: unit + image.UnitSize}) {
		t.Fatalf("content GETs %v, want one of the unit [%d, %d)", content, unit, unit+image.UnitSize)
	}
	if got := s.ch.Stats().BytesFetched - fetched; got > 64<<10 {
		t.Fatalf("a 4 KiB read fetched %d bytes in %v", got, gets)
	}
}

// TestNeighbouringColdReadsShareOneGET: reads that arrive together for neighbouring ranges
// are one GET at the storage.
func TestNeighbouringColdReadsShareOneGET(t *testing.T) {
	s := rangeMount(t, map[string]int{"big": 24 << 20}, blobio.ChunkOptions{CoalesceWindow: 100 * time.Millisecond}, nil)
	ext := s.extent(t, "big")
	base := ext.Off + 9<<20
	before := len(s.px.Ranges())
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.ch.ReadAt(context.Background(), make([]byte, 4096), base+int64(i)*4096)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	gets := s.px.Ranges()[before:]
	if len(gets) != 1 || gets[0] != (faultproxy.Range{Off: base, End: base + n*4096}) {
		t.Fatalf("GETs %v, want one of [%d, %d)", gets, base, base+n*4096)
	}
	if st := s.ch.Stats(); st.Coalesced != n-1 {
		t.Fatalf("%d requests coalesced, want %d", st.Coalesced, n-1)
	}
}

// TestSmallFileFetchedAtOpen: opening a small file fetches its whole extent in one GET, and
// reading it then fetches nothing more.
func TestSmallFileFetchedAtOpen(t *testing.T) {
	sizes := map[string]int{}
	for i := range 20 {
		sizes[fmt.Sprintf("f%02d", i)] = 100<<10 + i*1000
	}
	s := rangeMount(t, sizes, blobio.ChunkOptions{}, nil)
	ext := s.extent(t, "f07")
	f, err := os.Open(filepath.Join(s.m.Dir, "f07"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !contains(s.px.Ranges(), ext) {
		if time.Now().After(deadline) {
			t.Fatalf("no GET of the file's extent %v after its open: %v", ext, s.px.Ranges())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for s.ch.Stats().InFlight > 0 {
		time.Sleep(time.Millisecond)
	}
	before := len(s.px.Ranges())
	got := make([]byte, sizes["f07"]+1)
	n, err := f.Read(got)
	if err != nil || !bytes.Equal(got[:n], testtree.Content("f07", sizes["f07"])) {
		t.Fatalf("read %d bytes, %v, or wrong bytes", n, err)
	}
	if after := s.contentGets(s.px.Ranges()[before:]); len(after) > 0 {
		t.Fatalf("reading the opened file fetched %v again", after)
	}
}

func contains(rs []faultproxy.Range, want faultproxy.Range) bool {
	for _, r := range rs {
		if r.Off <= want.Off && want.End <= r.End {
			return true
		}
	}
	return false
}

// TestTamperedBlockInCoalescedRange: three neighbouring small files opened together are
// fetched in one GET; a block of the middle one was modified in storage. Reading it fails with
// EIO and returns no wrong byte; its neighbours, from the same GET, read whole.
func TestTamperedBlockInCoalescedRange(t *testing.T) {
	sizes := map[string]int{}
	for i := range 10 {
		sizes[fmt.Sprintf("f%02d", i)] = 100 << 10
	}
	tamper := func(local *image.Image, data []byte) {
		in, err := local.LookupPath(context.Background(), "f05")
		if err != nil {
			t.Fatal(err)
		}
		off, _, _ := local.FileExtent(&in)
		data[off+50<<10] ^= 0x40
	}
	s := rangeMount(t, sizes, blobio.ChunkOptions{CoalesceWindow: 100 * time.Millisecond}, tamper)
	names := []string{"f04", "f05", "f06"}
	var files []*os.File
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(filepath.Join(s.m.Dir, name))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			files = append(files, f)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, f := range files {
		defer f.Close()
	}
	all := faultproxy.Range{Off: s.extent(t, "f04").Off, End: s.extent(t, "f06").End}
	deadline := time.Now().Add(5 * time.Second)
	for !contains(s.px.Ranges(), all) {
		if time.Now().After(deadline) {
			t.Fatalf("the three opens were not fetched in one GET of %v: %v", all, s.px.Ranges())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, name := range names {
		want := testtree.Content(name, sizes[name])
		f, err := os.Open(filepath.Join(s.m.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want)+1)
		var n int
		for n < len(got) {
			k, err := f.Read(got[n:])
			n += k
			if err != nil || k == 0 {
				break
			}
		}
		_, rerr := f.Read(make([]byte, 1<<20))
		f.Close()
		if !bytes.Equal(got[:n], want[:min(n, len(want))]) {
			t.Fatalf("%s: %d bytes read, some of them wrong", name, n)
		}
		if name == "f05" {
			if n >= len(want) {
				t.Fatalf("%s: read whole despite a modified block", name)
			}
			// The read that reached the bad block failed with EIO: read it again to see it.
			g, _ := os.Open(filepath.Join(s.m.Dir, name))
			_, err := g.ReadAt(make([]byte, 4096), 50<<10)
			g.Close()
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("%s: read of the bad block: %v, want EIO", name, err)
			}
			continue
		}
		if n != len(want) {
			t.Fatalf("%s: read %d of %d bytes (%v)", name, n, len(want), rerr)
		}
	}
	if lines := strings.Count(s.m.Logs(), "msg=\"integrity check failed"); lines != 1 {
		t.Errorf("%d integrity log lines, want 1:\n%s", lines, s.m.Logs())
	}
}

var _ = encfs.DefaultSmallFile
