// Package blobio is where image bytes come from: a local file, an Azure blob or any HTTPS server
// that honours Range requests, plus the chunked, parallel, deduplicating fetch layer that sits in
// front of a remote source. It knows nothing about the image format: it moves ciphertext.
//
//   - Open (open.go) turns a location into a Source: a local path, an Azure blob (azure.go,
//     credentials in azauth.go) or any HTTP server that honours Range (httpsource.go). Remote
//     sources are pinned to the version seen at open (ErrChanged), retry with a bounded budget
//     (retry.go) and report one of ErrNotFound, ErrAuth, ErrUnreachable, ErrChanged,
//     ErrBadResponse, ErrIncomplete (errors.go), with secrets redacted (redact.go).
//   - Chunked (chunked.go) fetches aligned chunks in parallel with deduplication, prefetch, an
//     LRU memory cache (lru.go) and an optional disk cache (diskcache.go).
//   - Upload (upload.go) writes an image to a block or page blob, resumably.
//   - Tests use azuritetest (a real Azurite) and faultproxy (injected storage faults).
package blobio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Source is a read-only, immutable byte range: an encfs image wherever it is stored.
//
// ReadAt follows io.ReaderAt: it returns len(p) bytes or an error, and io.EOF only when the
// range runs past Size. Implementations are safe for concurrent use. Errors never contain
// secrets (SAS signatures, tokens).
type Source interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// Size is the length of the image in bytes, fixed when the source was opened.
	Size() int64
	// String names the source for logs and errors, with any secret removed.
	String() string
	Close() error
}

// ErrChanged reports that the object behind a source was replaced after it was opened, so that
// bytes of two versions are never mixed.
var ErrChanged = errors.New("the image changed while mounted")

// FileSource reads an image from a local file.
type FileSource struct {
	f    *os.File
	size int64
}

// OpenFile opens a local image file.
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return &FileSource{f: f, size: st.Size()}, nil
}

func (s *FileSource) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

func (s *FileSource) Size() int64    { return s.size }
func (s *FileSource) String() string { return s.f.Name() }
func (s *FileSource) Close() error   { return s.f.Close() }
