package blobio_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azuritetest"
)

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkReads reads a few ranges, the tail past EOF included, and compares them with want.
func checkReads(t *testing.T, src blobio.Source, want []byte) {
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

func TestAzureBlockBlobConnectionString(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	data := randBytes(t, 3<<20+123)
	u := az.PutBlockBlob(t, "images", "a.img", data, nil)
	src, err := blobio.Open(context.Background(), u, blobio.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	as := src.(*blobio.AzureSource)
	if as.Auth() != blobio.AuthConnectionString || as.BlobType() != "BlockBlob" {
		t.Fatalf("auth %q type %q", as.Auth(), as.BlobType())
	}
	checkReads(t, src, data)

	// Without a credential the private blob is refused, with a hint.
	_, err = blobio.Open(context.Background(), u, blobio.Options{Auth: blobio.AuthAnonymous})
	if !errors.Is(err, blobio.ErrNotFound) && !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("anonymous open of a private blob: %v", err)
	}
	// A missing blob is ErrNotFound.
	_, err = blobio.Open(context.Background(), az.BlobURL("images", "missing.img"), blobio.Options{ConnectionString: az.ConnectionString})
	if !errors.Is(err, blobio.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	t.Logf("missing blob error: %v", err)
	// A wrong key is ErrAuth.
	bad := strings.Replace(az.ConnectionString, azuritetest.Key, "AAAA"+azuritetest.Key[4:], 1)
	_, err = blobio.Open(context.Background(), u, blobio.Options{ConnectionString: bad})
	if !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestAzureSASAndRedaction(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	data := randBytes(t, 1<<20)
	az.PutBlockBlob(t, "images", "s.img", data, nil)
	su := az.SAS(t, "images", "s.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	src, err := blobio.Open(context.Background(), su, blobio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*blobio.AzureSource).Auth() != blobio.AuthSAS {
		t.Fatalf("auth %q", src.(*blobio.AzureSource).Auth())
	}
	checkReads(t, src, data)
	sig := sasSig(t, su)
	if strings.Contains(src.String(), sig) || !strings.Contains(src.String(), "(SAS sp=r se=") {
		t.Fatalf("String() leaks or drops the signature: %s", src.String())
	}
	// An expired SAS is ErrAuth, and the error does not carry the signature.
	expired := az.SAS(t, "images", "s.img", sas.BlobPermissions{Read: true}, time.Now().Add(-time.Minute))
	_, err = blobio.Open(context.Background(), expired, blobio.Options{})
	if !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("expired SAS: %v", err)
	}
	if s := err.Error(); strings.Contains(s, sasSig(t, expired)) {
		t.Fatalf("error leaks the SAS signature: %s", s)
	}
	t.Logf("expired SAS error: %v", err)
}

func sasSig(t *testing.T, u string) string {
	t.Helper()
	i := strings.Index(u, "sig=")
	if i < 0 {
		t.Fatalf("no sig in %s", u)
	}
	s := u[i+4:]
	if j := strings.IndexByte(s, '&'); j >= 0 {
		s = s[:j]
	}
	return s
}

func TestAzureAnonymousPublic(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "public", true)
	data := randBytes(t, 700<<10)
	u := az.PutBlockBlob(t, "public", "p.img", data, nil)
	src, err := blobio.Open(context.Background(), u, blobio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*blobio.AzureSource).Auth() != blobio.AuthAnonymous {
		t.Fatalf("auth %q", src.(*blobio.AzureSource).Auth())
	}
	checkReads(t, src, data)
}

func TestAzurePageBlobUsesEncfsSize(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "pages", false)
	data := randBytes(t, 5000) // padded to 5120
	u := az.BlobURL("pages", "p.img")
	pb, err := pageblob.NewClientWithSharedKeyCredential(u, az.SharedKey(), &pageblob.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	size := "5000"
	ctx := context.Background()
	if _, err := pb.Create(ctx, 5120, &pageblob.CreateOptions{Metadata: map[string]*string{blobio.MetaSize: &size}}); err != nil {
		t.Fatal(err)
	}
	padded := append(append([]byte{}, data...), make([]byte, 120)...)
	if _, err := pb.UploadPages(ctx, nopCloser{bytes.NewReader(padded)}, blob.HTTPRange{Offset: 0, Count: 5120}, nil); err != nil {
		t.Fatal(err)
	}
	src, err := blobio.Open(ctx, u, blobio.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*blobio.AzureSource).BlobType() != "PageBlob" {
		t.Fatalf("type %s", src.(*blobio.AzureSource).BlobType())
	}
	p := make([]byte, 5000)
	if n, err := src.ReadAt(ctx, p, 0); n != 5000 || err != nil || !bytes.Equal(p, data) {
		t.Fatalf("read %d %v", n, err)
	}
	if src.Size() != 5000 {
		t.Fatalf("Size %d, want the encfs_size 5000", src.Size())
	}
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func TestAzureOAuthHTTPS(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{OAuth: true})
	az.CreateContainer(t, "secure", false)
	data := randBytes(t, 2<<20)
	u := az.PutBlockBlob(t, "secure", "o.img", data, nil)
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("not https: %s", u)
	}
	src, err := blobio.Open(context.Background(), u, blobio.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*blobio.AzureSource).Auth() != blobio.AuthIdentity {
		t.Fatalf("auth %q", src.(*blobio.AzureSource).Auth())
	}
	checkReads(t, src, data)
	// A token for another audience is refused.
	_, err = blobio.Open(context.Background(), u, blobio.Options{Credential: badAudience{}, HTTPClient: az.HTTPClient})
	if !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("wrong audience: %v", err)
	}
}

func TestAzureChangedBlob(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	data := randBytes(t, 1<<20)
	u := az.PutBlockBlob(t, "images", "c.img", data, nil)
	src, err := blobio.Open(context.Background(), u, blobio.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	if _, err := src.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	az.PutBlockBlob(t, "images", "c.img", randBytes(t, 1<<20), nil)
	_, err = src.ReadAt(context.Background(), p, 0)
	if !errors.Is(err, blobio.ErrChanged) {
		t.Fatalf("read after overwrite: %v, want ErrChanged", err)
	}
	t.Logf("changed: %v", err)
}

// failingToken is an identity that cannot get a token (no managed identity, not logged in).
type failingToken struct{}

func (failingToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no managed identity endpoint; Bearer eyJsecret.token.here")
}

func TestAzureIdentityWithoutTokenFailsFast(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{OAuth: true})
	az.CreateContainer(t, "secure", false)
	u := az.PutBlockBlob(t, "secure", "o.img", []byte("data"), nil)
	start := time.Now()
	_, err := blobio.Open(context.Background(), u, blobio.Options{Credential: failingToken{}, HTTPClient: az.HTTPClient})
	if !errors.Is(err, blobio.ErrAuth) || time.Since(start) > 5*time.Second {
		t.Fatalf("open without a token: %v after %v", err, time.Since(start))
	}
	if strings.Contains(err.Error(), "eyJsecret") {
		t.Fatalf("error leaks a token: %v", err)
	}
	t.Log(err)
}
