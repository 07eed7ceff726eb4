package azure_test

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
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
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
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString})
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
	data := sourcetest.RandBytes(t, 9<<20+777) // 10 blocks of 1 MiB
	img := writeImage(t, data)
	u := az.BlobURL("uploads", "img.encfs") // the container does not exist yet
	opts := azure.UploadOptions{BlockSize: 1 << 20, Workers: 2, Open: azure.Options{ConnectionString: az.ConnectionString}}

	interruptedUpload(t, img, u, opts)
	if _, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString}); !errors.Is(err, blobio.ErrNotFound) {
		t.Fatalf("uncommitted blob is visible: %v", err)
	}
	res, err := azure.Upload(context.Background(), img, u, opts)
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
	res, err = azure.Upload(context.Background(), img, u, opts)
	if err != nil || !res.AlreadyUploaded || res.SentBytes != 0 {
		t.Fatalf("second upload: %+v, %v", res, err)
	}
	// A different image is refused without --overwrite, accepted with it.
	other := sourcetest.RandBytes(t, 3<<20)
	img2 := writeImage(t, other)
	_, err = azure.Upload(context.Background(), img2, u, opts)
	if !errors.Is(err, azure.ErrExists) {
		t.Fatalf("overwrite without --overwrite: %v", err)
	}
	t.Logf("refused: %v", err)
	o2 := opts
	o2.Overwrite = true
	if _, err := azure.Upload(context.Background(), img2, u, o2); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, u, az); string(got) != string(other) {
		t.Fatal("overwritten content differs")
	}
}

func TestUploadPageBlobResume(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	data := sourcetest.RandBytes(t, 13<<20+1001) // not a multiple of 512; 4 page writes
	copy(data[4<<20:8<<20], make([]byte, 4<<20)) // an all-zero stretch is skipped (sparse)
	img := writeImage(t, data)
	u := az.BlobURL("pages", "img.encfs")
	opts := azure.UploadOptions{PageBlob: true, Workers: 1, Open: azure.Options{ConnectionString: az.ConnectionString}}
	interruptedUpload(t, img, u, opts)
	// A half-written page blob is not served.
	if _, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString}); !errors.Is(err, azure.ErrIncomplete) {
		t.Fatalf("open of an unfinished page blob: %v", err)
	}
	res, err := azure.Upload(context.Background(), img, u, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedBytes == 0 || res.BlobType != "PageBlob" {
		t.Fatalf("resume: %+v", res)
	}
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	if src.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d (encfs_size, not the padded length)", src.Size(), len(data))
	}
	if got := readAll(t, u, az); string(got) != string(data) {
		t.Fatal("page blob content differs")
	}
	res, err = azure.Upload(context.Background(), img, u, opts)
	if err != nil || !res.AlreadyUploaded {
		t.Fatalf("again: %+v %v", res, err)
	}
	// Replacing with a block blob of another image needs --overwrite.
	img2 := writeImage(t, sourcetest.RandBytes(t, 1<<20))
	if _, err := azure.Upload(context.Background(), img2, u, azure.UploadOptions{Open: opts.Open}); !errors.Is(err, azure.ErrExists) {
		t.Fatalf("replace without overwrite: %v", err)
	}
	if _, err := azure.Upload(context.Background(), img2, u, azure.UploadOptions{Overwrite: true, Open: opts.Open}); err != nil {
		t.Fatal(err)
	}
}

func TestUploadWithSASAndOAuth(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{OAuth: true})
	az.CreateContainer(t, "upl", false)
	data := sourcetest.RandBytes(t, 2<<20+5)
	img := writeImage(t, data)
	u := az.BlobURL("upl", "o.img")
	if _, err := azure.Upload(context.Background(), img, u, azure.UploadOptions{BlockSize: 1 << 20,
		Open: azure.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient}}); err != nil {
		t.Fatal(err)
	}
	src, err := openURL(context.Background(), u, azure.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient})
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckReads(t, src, data)
}

func TestUploadRejectsBadInput(t *testing.T) {
	img := writeImage(t, []byte("x"))
	for _, c := range []struct{ img, url string }{
		{filepath.Join(t.TempDir(), "missing"), "https://a.blob.core.windows.net/c/b"},
		{writeImage(t, nil), "https://a.blob.core.windows.net/c/b"},
		{img, "relative/path"},
		{img, "https://example.com/not/azure"},
	} {
		if _, err := azure.Upload(context.Background(), c.img, c.url, azure.UploadOptions{}); err == nil {
			t.Errorf("Upload(%s, %s) succeeded", c.img, c.url)
		} else {
			t.Logf("%v", err)
		}
	}
}

func TestUploadWithWriteOnlySAS(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "sas", false)
	data := sourcetest.RandBytes(t, 3<<20)
	img := writeImage(t, data)
	su := az.SAS(t, "sas", "w.img", sas.BlobPermissions{Create: true, Write: true}, time.Now().Add(time.Hour))
	res, err := azure.Upload(context.Background(), img, su, azure.UploadOptions{BlockSize: 1 << 20})
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
	img2 := writeImage(t, sourcetest.RandBytes(t, 1<<20))
	if _, err := azure.Upload(context.Background(), img2, su, azure.UploadOptions{}); !errors.Is(err, azure.ErrExists) {
		t.Fatalf("second upload with a write-only SAS: %v", err)
	}
	if _, err := azure.Upload(context.Background(), img2, su, azure.UploadOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	// A read-only SAS cannot upload, and says so.
	ro := az.SAS(t, "sas", "r.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	_, err = azure.Upload(context.Background(), img, ro, azure.UploadOptions{})
	if !errors.Is(err, blobio.ErrAuth) || strings.Contains(err.Error(), sasSig(t, ro)) {
		t.Fatalf("read-only SAS: %v", err)
	}
	t.Log(err)
}

// interruptedUpload starts an upload and cancels it once 4 MiB have been sent.
func interruptedUpload(t *testing.T, img, u string, opts azure.UploadOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	opts.Progress = func(n int64) {
		if done.Add(n) >= 4<<20 {
			cancel()
		}
	}
	if _, err := azure.Upload(ctx, img, u, opts); err == nil {
		t.Fatal("interrupted upload succeeded")
	}
}

// TestUploadCreatesContainerWithIdentity: with a bearer token the upload creates a missing
// container itself (one Create Container call, sent without the SDK's container client).
func TestUploadCreatesContainerWithIdentity(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{OAuth: true})
	data := sourcetest.RandBytes(t, 1<<20+3)
	img := writeImage(t, data)
	u := az.BlobURL("madebytoken", "o.img") // the container does not exist yet
	o := azure.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient}
	if _, err := azure.Upload(context.Background(), img, u, azure.UploadOptions{Open: o}); err != nil {
		t.Fatal(err)
	}
	src, err := openURL(context.Background(), u, o)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.CheckReads(t, src, data)
}
