package blobio_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
)

func writeImage(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.encfs")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readAll(t *testing.T, u string, az *azuritetest.Server) []byte {
	t.Helper()
	src, err := blobio.Open(context.Background(), u, blobio.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b := make([]byte, src.Size())
	if _, err := src.ReadAt(context.Background(), b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadBlockBlobResumeAndOverwrite(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	data := randBytes(t, 9<<20+777) // 10 blocks of 1 MiB
	img := writeImage(t, data)
	u := az.BlobURL("uploads", "img.encfs") // the container does not exist yet
	opts := blobio.UploadOptions{BlockSize: 1 << 20, Workers: 2, Open: blobio.Options{ConnectionString: az.ConnectionString}}

	interruptedUpload(t, img, u, opts)
	if _, err := blobio.Open(context.Background(), u, blobio.Options{ConnectionString: az.ConnectionString}); !errors.Is(err, blobio.ErrNotFound) {
		t.Fatalf("uncommitted blob is visible: %v", err)
	}
	res, err := blobio.Upload(context.Background(), img, u, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedBytes < 3<<20 || res.SentBytes+res.ResumedBytes != int64(len(data)) {
		t.Fatalf("resume: resumed %d sent %d of %d", res.ResumedBytes, res.SentBytes, len(data))
	}
	if got := readAll(t, u, az); string(got) != string(data) {
		t.Fatal("uploaded content differs")
	}
	// Same image again: nothing to do.
	res, err = blobio.Upload(context.Background(), img, u, opts)
	if err != nil || !res.AlreadyUploaded || res.SentBytes != 0 {
		t.Fatalf("second upload: %+v, %v", res, err)
	}
	// A different image is refused without --overwrite, accepted with it.
	other := randBytes(t, 3<<20)
	img2 := writeImage(t, other)
	_, err = blobio.Upload(context.Background(), img2, u, opts)
	if !errors.Is(err, blobio.ErrExists) {
		t.Fatalf("overwrite without --overwrite: %v", err)
	}
	t.Logf("refused: %v", err)
	o2 := opts
	o2.Overwrite = true
	if _, err := blobio.Upload(context.Background(), img2, u, o2); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, u, az); string(got) != string(other) {
		t.Fatal("overwritten content differs")
	}
}

func TestUploadPageBlobResume(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	data := randBytes(t, 13<<20+1001)            // not a multiple of 512; 4 page writes
	copy(data[4<<20:8<<20], make([]byte, 4<<20)) // an all-zero stretch is skipped (sparse)
	img := writeImage(t, data)
	u := az.BlobURL("pages", "img.encfs")
	opts := blobio.UploadOptions{PageBlob: true, Workers: 1, Open: blobio.Options{ConnectionString: az.ConnectionString}}
	interruptedUpload(t, img, u, opts)
	// A half-written page blob is not served.
	if _, err := blobio.Open(context.Background(), u, blobio.Options{ConnectionString: az.ConnectionString}); !errors.Is(err, blobio.ErrIncomplete) {
		t.Fatalf("open of an unfinished page blob: %v", err)
	}
	res, err := blobio.Upload(context.Background(), img, u, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedBytes == 0 || res.BlobType != "PageBlob" {
		t.Fatalf("resume: %+v", res)
	}
	src, err := blobio.Open(context.Background(), u, blobio.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	if src.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d (encfs_size, not the padded length)", src.Size(), len(data))
	}
	if got := readAll(t, u, az); string(got) != string(data) {
		t.Fatal("page blob content differs")
	}
	res, err = blobio.Upload(context.Background(), img, u, opts)
	if err != nil || !res.AlreadyUploaded {
		t.Fatalf("again: %+v %v", res, err)
	}
	// Replacing with a block blob of another image needs --overwrite.
	img2 := writeImage(t, randBytes(t, 1<<20))
	if _, err := blobio.Upload(context.Background(), img2, u, blobio.UploadOptions{Open: opts.Open}); !errors.Is(err, blobio.ErrExists) {
		t.Fatalf("replace without overwrite: %v", err)
	}
	if _, err := blobio.Upload(context.Background(), img2, u, blobio.UploadOptions{Overwrite: true, Open: opts.Open}); err != nil {
		t.Fatal(err)
	}
}

func TestUploadWithSASAndOAuth(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{OAuth: true})
	az.CreateContainer(t, "upl", false)
	data := randBytes(t, 2<<20+5)
	img := writeImage(t, data)
	u := az.BlobURL("upl", "o.img")
	if _, err := blobio.Upload(context.Background(), img, u, blobio.UploadOptions{BlockSize: 1 << 20,
		Open: blobio.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient}}); err != nil {
		t.Fatal(err)
	}
	src, err := blobio.Open(context.Background(), u, blobio.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient})
	if err != nil {
		t.Fatal(err)
	}
	checkReads(t, src, data)
}

func TestUploadRejectsBadInput(t *testing.T) {
	img := writeImage(t, []byte("x"))
	for _, c := range []struct{ img, url string }{
		{filepath.Join(t.TempDir(), "missing"), "https://a.blob.core.windows.net/c/b"},
		{writeImage(t, nil), "https://a.blob.core.windows.net/c/b"},
		{img, "relative/path"},
		{img, "https://example.com/not/azure"},
	} {
		if _, err := blobio.Upload(context.Background(), c.img, c.url, blobio.UploadOptions{}); err == nil {
			t.Errorf("Upload(%s, %s) succeeded", c.img, c.url)
		} else {
			t.Logf("%v", err)
		}
	}
}

func TestUploadWithWriteOnlySAS(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "sas", false)
	data := randBytes(t, 3<<20)
	img := writeImage(t, data)
	su := az.SAS(t, "sas", "w.img", sas.BlobPermissions{Create: true, Write: true}, time.Now().Add(time.Hour))
	res, err := blobio.Upload(context.Background(), img, su, blobio.UploadOptions{BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.URL, sasSig(t, su)) {
		t.Fatalf("result URL leaks the SAS: %s", res.URL)
	}
	if got := readAll(t, az.BlobURL("sas", "w.img"), az); string(got) != string(data) {
		t.Fatal("content differs")
	}
	// Blind to what is there, it still never replaces a blob without --overwrite.
	img2 := writeImage(t, randBytes(t, 1<<20))
	if _, err := blobio.Upload(context.Background(), img2, su, blobio.UploadOptions{}); !errors.Is(err, blobio.ErrExists) {
		t.Fatalf("second upload with a write-only SAS: %v", err)
	}
	if _, err := blobio.Upload(context.Background(), img2, su, blobio.UploadOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	// A read-only SAS cannot upload, and says so.
	ro := az.SAS(t, "sas", "r.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	_, err = blobio.Upload(context.Background(), img, ro, blobio.UploadOptions{})
	if !errors.Is(err, blobio.ErrAuth) || strings.Contains(err.Error(), sasSig(t, ro)) {
		t.Fatalf("read-only SAS: %v", err)
	}
	t.Log(err)
}

// interruptedUpload starts an upload and cancels it once 4 MiB have been sent.
func interruptedUpload(t *testing.T, img, u string, opts blobio.UploadOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	opts.Progress = func(n int64) {
		if done.Add(n) >= 4<<20 {
			cancel()
		}
	}
	if _, err := blobio.Upload(ctx, img, u, opts); err == nil {
		t.Fatal("interrupted upload succeeded")
	}
}
