// Package sourcetest holds what the tests of blobio and its backends share: random content,
// a check of a source's reads against the bytes it should hold, and a retry policy fast
// enough for injected faults.
package sourcetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/internal/retry"
)

// FastRetry gives up on a try after 500 ms and on an operation after 10 s, with short waits.
var FastRetry = retry.Policy{TryTimeout: 500 * time.Millisecond, BaseDelay: 10 * time.Millisecond,
	MaxDelay: 100 * time.Millisecond, Budget: 10 * time.Second}

// RandBytes returns n random bytes.
func RandBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// CheckReads reads a few ranges, the tail past EOF included, and compares them with want.
func CheckReads(t *testing.T, src blobio.Source, want []byte) {
	t.Helper()
	ctx := context.Background()
	if src.Size() != int64(len(want)) {
		t.Fatalf("Size() = %d, want %d", src.Size(), len(want))
	}
	for _, r := range [][2]int{{0, 1}, {0, 4096}, {len(want) / 3, 100000}, {len(want) - 10, 10}} {
		off, n := r[0], r[1]
		p := make([]byte, n)
		got, err := src.ReadAt(ctx, p, int64(off))
		if err != nil || got != n || !bytes.Equal(p, want[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v; bytes equal %v", off, n, got, err, bytes.Equal(p[:got], want[off:off+got]))
		}
	}
	p := make([]byte, 100)
	n, err := src.ReadAt(ctx, p, int64(len(want)-40))
	if n != 40 || err != io.EOF || !bytes.Equal(p[:40], want[len(want)-40:]) {
		t.Fatalf("read across EOF = %d, %v; want 40, EOF", n, err)
	}
	if n, err := src.ReadAt(ctx, p, int64(len(want))); n != 0 || err != io.EOF {
		t.Fatalf("read at EOF = %d, %v", n, err)
	}
}
