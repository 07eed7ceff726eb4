package azure_test

import (
	"bytes"
	"context"
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
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
)

func TestAzureBlockBlobConnectionString(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	data := sourcetest.RandBytes(t, 3<<20+123)
	u := az.PutBlockBlob(t, "images", "a.img", data, nil)
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	as := src.(*azure.Source)
	if as.Auth() != azure.AuthConnectionString || as.BlobType() != "BlockBlob" {
		t.Fatalf("auth %q type %q", as.Auth(), as.BlobType())
	}
	sourcetest.CheckReads(t, src, data)

	// Without a credential the private blob is refused, with a hint.
	_, err = openURL(context.Background(), u, azure.Options{Auth: azure.AuthAnonymous})
	if !errors.Is(err, blobio.ErrNotFound) && !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("anonymous open of a private blob: %v", err)
	}
	// A missing blob is ErrNotFound.
	_, err = openURL(context.Background(), az.BlobURL("images", "missing.img"), azure.Options{ConnectionString: az.ConnectionString})
	if !errors.Is(err, blobio.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	t.Logf("missing blob error: %v", err)
	// A wrong key is ErrAuth.
	bad := strings.Replace(az.ConnectionString, azuritetest.Key, "AAAA"+azuritetest.Key[4:], 1)
	_, err = openURL(context.Background(), u, azure.Options{ConnectionString: bad})
	if !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestAzureSASAndRedaction(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	data := sourcetest.RandBytes(t, 1<<20)
	az.PutBlockBlob(t, "images", "s.img", data, nil)
	su := az.SAS(t, "images", "s.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	src, err := openURL(context.Background(), su, azure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*azure.Source).Auth() != azure.AuthSAS {
		t.Fatalf("auth %q", src.(*azure.Source).Auth())
	}
	sourcetest.CheckReads(t, src, data)
	sig := sasSig(t, su)
	if strings.Contains(src.String(), sig) || !strings.Contains(src.String(), "(SAS sp=r se=") {
		t.Fatalf("String() leaks or drops the signature: %s", src.String())
	}
	// An expired SAS is ErrAuth, and the error does not carry the signature.
	expired := az.SAS(t, "images", "s.img", sas.BlobPermissions{Read: true}, time.Now().Add(-time.Minute))
	_, err = openURL(context.Background(), expired, azure.Options{})
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
	data := sourcetest.RandBytes(t, 700<<10)
	u := az.PutBlockBlob(t, "public", "p.img", data, nil)
	src, err := openURL(context.Background(), u, azure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*azure.Source).Auth() != azure.AuthAnonymous {
		t.Fatalf("auth %q", src.(*azure.Source).Auth())
	}
	sourcetest.CheckReads(t, src, data)
}

func TestAzurePageBlobUsesEncfsSize(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "pages", false)
	data := sourcetest.RandBytes(t, 5000) // padded to 5120
	u := az.BlobURL("pages", "p.img")
	pb, err := pageblob.NewClientWithSharedKeyCredential(u, az.SharedKey(), &pageblob.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	size := "5000"
	ctx := context.Background()
	if _, err := pb.Create(ctx, 5120, &pageblob.CreateOptions{Metadata: map[string]*string{azure.MetaSize: &size}}); err != nil {
		t.Fatal(err)
	}
	padded := append(append([]byte{}, data...), make([]byte, 120)...)
	if _, err := pb.UploadPages(ctx, nopCloser{bytes.NewReader(padded)}, blob.HTTPRange{Offset: 0, Count: 5120}, nil); err != nil {
		t.Fatal(err)
	}
	src, err := openURL(ctx, u, azure.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*azure.Source).BlobType() != "PageBlob" {
		t.Fatalf("type %s", src.(*azure.Source).BlobType())
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
	data := sourcetest.RandBytes(t, 2<<20)
	u := az.PutBlockBlob(t, "secure", "o.img", data, nil)
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("not https: %s", u)
	}
	src, err := openURL(context.Background(), u, azure.Options{Credential: azuritetest.Token{}, HTTPClient: az.HTTPClient})
	if err != nil {
		t.Fatal(err)
	}
	if src.(*azure.Source).Auth() != azure.AuthIdentity {
		t.Fatalf("auth %q", src.(*azure.Source).Auth())
	}
	sourcetest.CheckReads(t, src, data)
	// A token for another audience is refused.
	_, err = openURL(context.Background(), u, azure.Options{Credential: badAudience{}, HTTPClient: az.HTTPClient})
	if !errors.Is(err, blobio.ErrAuth) {
		t.Fatalf("wrong audience: %v", err)
	}
}

func TestAzureChangedBlob(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	data := sourcetest.RandBytes(t, 1<<20)
	u := az.PutBlockBlob(t, "images", "c.img", data, nil)
	src, err := openURL(context.Background(), u, azure.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	if _, err := src.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	az.PutBlockBlob(t, "images", "c.img", sourcetest.RandBytes(t, 1<<20), nil)
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
	_, err := openURL(context.Background(), u, azure.Options{Credential: failingToken{}, HTTPClient: az.HTTPClient})
	if !errors.Is(err, blobio.ErrAuth) || time.Since(start) > 5*time.Second {
		t.Fatalf("open without a token: %v after %v", err, time.Since(start))
	}
	if strings.Contains(err.Error(), "eyJsecret") {
		t.Fatalf("error leaks a token: %v", err)
	}
	t.Log(err)
}
