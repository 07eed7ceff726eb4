package azure_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
)

// maxErrorLine is the longest error line the storage-error cases may print.
const maxErrorLine = 300

// checkStorageError checks a storage error: of kind, naming its cause (every string in want),
// the URL at most once, no signature, and short enough to read.
func checkStorageError(t *testing.T, err error, kind error, url string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	t.Logf("%d characters: %s", len(msg), msg)
	if !errors.Is(err, kind) {
		t.Errorf("error is not %v", kind)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not say %q", w)
		}
	}
	plain, _, _ := strings.Cut(url, "?")
	if n := strings.Count(msg, plain); n > 1 {
		t.Errorf("the URL appears %d times", n)
	}
	if i := strings.Index(url, "sig="); i >= 0 {
		sig, _, _ := strings.Cut(url[i+4:], "&")
		if strings.Contains(msg, sig) {
			t.Error("the error leaks the SAS signature")
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		if len(line) > maxErrorLine {
			t.Errorf("a line of %d characters (at most %d)", len(line), maxErrorLine)
		}
	}
}

// containerSAS signs a service SAS for a whole container with the development key.
func containerSAS(t *testing.T, az *azuritetest.Server, containerName, perms string) string {
	t.Helper()
	v := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, StartTime: time.Now().Add(-time.Hour).UTC(),
		ExpiryTime: time.Now().Add(time.Hour).UTC(), Permissions: perms, ContainerName: containerName}
	k, err := blob.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := v.SignWithSharedKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// TestStorageErrorsAzurite runs each cause of a refused or missing blob against a real
// Azurite and checks that the error names that cause, not another. Azurite answers
// AuthorizationFailure to every authentication problem; the diagnosis tells them apart by
// what the request carried (TestDiagnoseRealAzureCodes covers the codes real Azure sends).
func TestStorageErrorsAzurite(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.Config{})
	az.CreateContainer(t, "images", false)
	az.PutBlockBlob(t, "images", "s.img", sourcetest.RandBytes(t, 4096), nil)
	ctx := context.Background()
	readSAS := az.SAS(t, "images", "s.img", sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour))
	_, query, _ := strings.Cut(readSAS, "?")
	open := func(u string, o azure.Options) error {
		src, err := openURL(ctx, u, o)
		if err == nil {
			src.Close()
		}
		return err
	}

	t.Run("signature mismatch: container typo with a blob SAS", func(t *testing.T) {
		u := az.BlobURL("imagez", "s.img") + "?" + query
		checkStorageError(t, open(u, azure.Options{}), blobio.ErrAuth, u, "does not fit this URL", "blob SAS", "check the names")
	})
	t.Run("signature mismatch: wrong account key", func(t *testing.T) {
		u := az.BlobURL("images", "s.img")
		bad := strings.Replace(az.ConnectionString, azuritetest.Key, "AAAA"+azuritetest.Key[4:], 1)
		checkStorageError(t, open(u, azure.Options{ConnectionString: bad}), blobio.ErrAuth, u, "AccountKey", "devstoreaccount1")
	})
	t.Run("expired SAS", func(t *testing.T) {
		u := az.SAS(t, "images", "s.img", sas.BlobPermissions{Read: true}, time.Now().Add(-time.Minute))
		checkStorageError(t, open(u, azure.Options{}), blobio.ErrAuth, u, "SAS expired at")
	})
	t.Run("missing permission", func(t *testing.T) {
		u := az.SAS(t, "images", "s.img", sas.BlobPermissions{Write: true}, time.Now().Add(time.Hour))
		checkStorageError(t, open(u, azure.Options{}), blobio.ErrAuth, u, "sp=w", "open needs r")
	})
	t.Run("no credential", func(t *testing.T) {
		u := az.BlobURL("images", "s.img")
		checkStorageError(t, open(u, azure.Options{}), blobio.ErrAuth, u, "no credential was sent")
	})
	t.Run("container missing", func(t *testing.T) {
		u := az.BlobURL("nope", "s.img")
		checkStorageError(t, open(u, azure.Options{ConnectionString: az.ConnectionString}), blobio.ErrNotFound, u, `no container "nope"`)
	})
	t.Run("blob missing", func(t *testing.T) {
		u := az.BlobURL("images", "t.img") + "?" + containerSAS(t, az, "images", "r")
		checkStorageError(t, open(u, azure.Options{}), blobio.ErrNotFound, u, `no blob "t.img"`)
	})

	img := writeImage(t, sourcetest.RandBytes(t, 8192))
	upload := func(u string, o azure.Options) error {
		_, err := azure.Upload(ctx, img, u, azure.UploadOptions{Open: o})
		return err
	}
	t.Run("upload: a container SAS cannot create the container", func(t *testing.T) {
		u := az.BlobURL("newc", "x.img") + "?" + containerSAS(t, az, "newc", "rcw")
		checkStorageError(t, upload(u, azure.Options{}), blobio.ErrNotFound, u, "a SAS cannot create it", "az storage container create -n newc")
	})
	t.Run("upload: wrong account key", func(t *testing.T) {
		u := az.BlobURL("images", "y.img")
		bad := strings.Replace(az.ConnectionString, azuritetest.Key, "AAAA"+azuritetest.Key[4:], 1)
		err := upload(u, azure.Options{ConnectionString: bad})
		checkStorageError(t, err, blobio.ErrAuth, u, "AccountKey")
		if strings.Contains(err.Error(), "sp=") {
			t.Error("a wrong key is blamed on SAS permissions")
		}
	})
	t.Run("upload: read-only SAS", func(t *testing.T) {
		u := az.BlobURL("images", "z.img") + "?" + containerSAS(t, az, "images", "r")
		checkStorageError(t, upload(u, azure.Options{}), blobio.ErrAuth, u, "sp=r", "upload needs cw")
	})

	t.Run("check before upload", func(t *testing.T) {
		bad := strings.Replace(az.ConnectionString, azuritetest.Key, "AAAA"+azuritetest.Key[4:], 1)
		for _, ok := range []struct {
			name string
			url  string
			o    azure.Options
		}{
			{"account key, container to create", az.BlobURL("tocreate", "a.img"), azure.Options{ConnectionString: az.ConnectionString}},
			{"container SAS rcw", az.BlobURL("images", "new.img") + "?" + containerSAS(t, az, "images", "rcw"), azure.Options{}},
			{"write-only SAS", az.BlobURL("images", "new.img") + "?" + containerSAS(t, az, "images", "cw"), azure.Options{}},
			{"SAS, existing blob", az.BlobURL("images", "s.img") + "?" + containerSAS(t, az, "images", "rcw"), azure.Options{}},
		} {
			if err := azure.CheckUpload(ctx, ok.url, ok.o); err != nil {
				t.Errorf("%s: %v", ok.name, err)
			}
		}
		u := az.BlobURL("images", "new.img") + "?" + containerSAS(t, az, "images", "r")
		checkStorageError(t, azure.CheckUpload(ctx, u, azure.Options{}), blobio.ErrAuth, u, "sp=r", "rcw")
		u = az.SAS(t, "images", "new.img", sas.BlobPermissions{Read: true, Create: true, Write: true}, time.Now().Add(-time.Minute))
		checkStorageError(t, azure.CheckUpload(ctx, u, azure.Options{}), blobio.ErrAuth, u, "expired at")
		u = az.BlobURL("nope2", "x.img") + "?" + containerSAS(t, az, "nope2", "rcw")
		checkStorageError(t, azure.CheckUpload(ctx, u, azure.Options{}), blobio.ErrNotFound, u, "a SAS cannot create it")
		u = az.BlobURL("images", "new.img")
		checkStorageError(t, azure.CheckUpload(ctx, u, azure.Options{ConnectionString: bad}), blobio.ErrAuth, u, "AccountKey")
		checkStorageError(t, azure.CheckUpload(ctx, u, azure.Options{}), blobio.ErrAuth, u, "no credential that can write")
		if _, err := az.Container(t, "tocreate").GetProperties(ctx, nil); err == nil {
			t.Error("the check created a container")
		}
	})
}
