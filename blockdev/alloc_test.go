package blockdev

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestWritePathDoesNotAllocate: serving a write or a flush allocates nothing in blockdev (with
// a Device that does not allocate either), so that the daemon never needs memory the kernel
// could only free by writing through this same device (doc.go, "Memory").
func TestWritePathDoesNotAllocate(t *testing.T) {
	dev, err := CreateFileDevice(filepath.Join(t.TempDir(), "dev"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	f := &fileNode{dev: dev, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	data := make([]byte, 64<<10)
	if n := testing.AllocsPerRun(100, func() {
		if _, errno := f.Write(ctx, nil, data, 4096); errno != 0 {
			t.Fatal(errno)
		}
	}); n != 0 {
		t.Errorf("a write allocates %v times", n)
	}
	if n := testing.AllocsPerRun(20, func() {
		if errno := f.Fsync(ctx, nil, 0); errno != 0 {
			t.Fatal(errno)
		}
	}); n != 0 {
		t.Errorf("a flush allocates %v times", n)
	}
}
