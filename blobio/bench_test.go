package blobio_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/location"
)

// benchBlob starts Azurite with one blob of ENCFS_BENCH_MIB MiB (default 256).
func benchBlob(b *testing.B) (*azuritetest.Server, string, int64) {
	b.Helper()
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("ENCFS_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	az := azuritetest.Start(b, azuritetest.Config{})
	az.CreateContainer(b, "bench", false)
	data := make([]byte, mib<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	u := az.PutBlockBlob(b, "bench", "b.img", data, nil)
	return az, u, int64(len(data))
}

// BenchmarkAzuriteParallelDownload is the baseline: the SDK's own parallel download of the
// whole blob into memory (DefaultChunkSize blocks, 8 in flight).
func BenchmarkAzuriteParallelDownload(b *testing.B) {
	az, u, size := benchBlob(b)
	c, err := blob.NewClientWithSharedKeyCredential(u, az.SharedKey(), &blob.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, size)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.DownloadBuffer(context.Background(), buf, &blob.DownloadBufferOptions{BlockSize: blobio.DefaultChunkSize, Concurrency: 8}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAzuriteChunkedRead reads the same blob the way the mount does: 1 MiB reads in
// order through a cold Chunked layer (8 workers, 128 MiB cache), with a readahead hint of
// 64 MiB ahead of each read.
func BenchmarkAzuriteChunkedRead(b *testing.B) {
	az, u, size := benchBlob(b)
	src, err := location.Open(context.Background(), u, location.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		chunkedRead(b, src, size, blobio.DefaultChunkSize)
	}
}

// BenchmarkAzuriteChunkSize measures the sequential read for several chunk sizes; its result
// chose DefaultChunkSize (docs/PERFORMANCE.md).
func BenchmarkAzuriteChunkSize(b *testing.B) {
	az, u, size := benchBlob(b)
	src, err := location.Open(context.Background(), u, location.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		b.Fatal(err)
	}
	for _, cs := range []int64{1 << 20, 4 << 20, 8 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("seq/chunk=%dMiB", cs>>20), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				chunkedReadWindow(b, src, size, cs, 64<<20)
			}
		})
	}
	// The latency of one cold 4 KiB read at a random place: a whole chunk is fetched.
	for _, cs := range []int64{1 << 20, 4 << 20, 8 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("cold4k/chunk=%dMiB", cs>>20), func(b *testing.B) {
			p := make([]byte, 4096)
			i := int64(0)
			for b.Loop() {
				c := blobio.NewChunked(nopClose{src}, blobio.ChunkOptions{ChunkSize: cs})
				i++
				off := (i * 7919 * 4096) % (size - 4096)
				if _, err := c.ReadAt(context.Background(), p, off); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// nopClose keeps the shared source open when a Chunked layer closes.
type nopClose struct{ blobio.Source }

func (nopClose) Close() error { return nil }

func chunkedRead(b *testing.B, src blobio.Source, size, chunk int64) {
	chunkedReadWindow(b, src, size, chunk, 64<<20)
}

// chunkedReadWindow reads in 1 MiB steps, hinting window bytes ahead.
func chunkedReadWindow(b *testing.B, src blobio.Source, size, chunk, window int64) {
	c := blobio.NewChunked(nopClose{src}, blobio.ChunkOptions{ChunkSize: chunk, Workers: 8, CacheBytes: 128 << 20})
	defer c.Close()
	p := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(p)) {
		c.Prefetch(off, window)
		if _, err := c.ReadAt(context.Background(), p, off); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}

// BenchmarkAzuriteOpenFirstByte is the storage part of "mount to first byte": open the blob
// (properties, ETag) and read its first 4 KiB (the image header) through a cold Chunked layer.
func BenchmarkAzuriteOpenFirstByte(b *testing.B) {
	az, u, _ := benchBlob(b)
	p := make([]byte, 4096)
	for b.Loop() {
		src, err := location.Open(context.Background(), u, location.Options{ConnectionString: az.ConnectionString})
		if err != nil {
			b.Fatal(err)
		}
		c := blobio.NewChunked(src, blobio.ChunkOptions{})
		if _, err := c.ReadAt(context.Background(), p, 0); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
