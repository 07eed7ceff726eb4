//go:build unix

package xts

import (
	"bytes"
	"syscall"
	"testing"
)

// guardedTail returns the last n bytes of a readable, writable page that is
// followed by an inaccessible one, so any access past the slice faults.
func guardedTail(t *testing.T, n int) []byte {
	page := syscall.Getpagesize()
	size := (n+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[size-page:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	return mem[size-page-n : size-page]
}

// TestNoAccessPastEnd puts src and dst right before unmapped pages: the
// masked and single-block tails must neither read nor write beyond them.
func TestNoAccessPastEnd(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, KeySize)
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	x := reference(t, key)
	src, dst := guardedTail(t, 4096), guardedTail(t, 4096)
	for i := range src {
		src[i] = byte(i * 7)
	}
	forEachImpl(t, func(t *testing.T) {
		for n := blockSize; n <= 4096; n += blockSize {
			s, d := src[len(src)-n:], dst[len(dst)-n:]
			want := make([]byte, n)
			x.Encrypt(want, s, 9)
			c.Encrypt(d, s, 9)
			if !bytes.Equal(d, want) {
				t.Fatalf("Encrypt(len %d) differs", n)
			}
			x.Decrypt(want, s, 9)
			c.Decrypt(d, s, 9)
			if !bytes.Equal(d, want) {
				t.Fatalf("Decrypt(len %d) differs", n)
			}
		}
	})
}
