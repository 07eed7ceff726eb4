package blobio

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestMapChunk(t *testing.T) {
	if b := mapChunk(hugePageSize + 4096); b != nil {
		t.Fatal("mapped a buffer that is not a whole number of huge pages")
	}
	before := mappedChunks.Load()
	b := mapChunk(2 * hugePageSize)
	if b == nil {
		t.Fatal("mapChunk failed")
	}
	if len(b) != 2*hugePageSize || uintptr(unsafe.Pointer(&b[0]))%hugePageSize != 0 {
		t.Fatalf("buffer of %d bytes at %p: want %d bytes aligned to %d", len(b), &b[0], 2*hugePageSize, hugePageSize)
	}
	for i := range b { // every byte is writable, and starts at zero
		if b[i] != 0 {
			t.Fatalf("byte %d of a fresh mapping is %d", i, b[i])
		}
		b[i] = byte(i)
	}
	if mappedChunks.Load() != before+1 {
		t.Fatal("the mapping is not counted")
	}
	unmapChunk(b)
	if mappedChunks.Load() != before {
		t.Fatal("the unmapping is not counted")
	}
}

// TestChunkedUnmapsBuffers checks that Close gives back every mapped chunk buffer except one a
// reader still holds, which goes when the reader releases it.
func TestChunkedUnmapsBuffers(t *testing.T) {
	data := make([]byte, 6*hugePageSize+100) // the last chunk is short, so heap-allocated
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before := mappedChunks.Load()
	c := NewChunked(f, ChunkOptions{ChunkSize: hugePageSize, Workers: 2, CacheBytes: 2 * hugePageSize, WholeChunks: true})
	ctx := context.Background()
	buf := make([]byte, len(data))
	if n, err := c.ReadAt(ctx, buf, 0); n != len(data) || !bytes.Equal(buf, data) {
		t.Fatalf("read %d bytes, err %v, or other bytes", n, err)
	}
	view, release, ok, err := c.View(ctx, hugePageSize+10, 100)
	if !ok || err != nil || !bytes.Equal(view, data[hugePageSize+10:][:100]) {
		t.Fatalf("view: ok %v, err %v", ok, err)
	}
	if mappedChunks.Load() == before {
		t.Fatal("no chunk buffer was mapped")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mappedChunks.Load() - before; got != 1 {
		t.Fatalf("%d chunk buffers mapped after Close with one view held, want 1", got)
	}
	if !bytes.Equal(view, data[hugePageSize+10:][:100]) {
		t.Fatal("a held view changed when the source was closed")
	}
	release()
	if got := mappedChunks.Load() - before; got != 0 {
		t.Fatalf("%d chunk buffers still mapped after the last view was released", got)
	}
}
