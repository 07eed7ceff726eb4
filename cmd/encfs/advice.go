package main

import (
	"errors"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/sidecar"
	"github.com/encfs/encfs/volume/writeback"
)

// Library errors say what went wrong and, when they can find out, why (blobio.Error.Cause);
// what to do about it in terms of encfs's own flags and commands is said here, once, so that
// the libraries never name a flag of a command line they know nothing about. main prints the
// advice under the error, and `encfs mount` logs it with a filesystem that failed to mount.

// adviceRule gives the advice for one kind of error.
type adviceRule struct {
	is     error
	advice string
}

// adviceRules are tried in order; the first that matches wins, so the specific causes come
// before the broad kinds they are wrapped in.
var adviceRules = []adviceRule{
	{sidecar.ErrKeyFileInTEE, "for development only, `encfs mount --dev-allow-key-file` accepts it"},
	{keys.ErrKeyFileSize, "create a key file with `encfs keygen --out FILE`"},
	{azure.ErrNoToken, "on Azure, assign a managed identity to the container group (and pass --client-id for a user-assigned one); elsewhere run az login, or use a SAS URL (--url-file keeps it off the command line)"},
	{azure.ErrNoWriteCredential, "give a SAS URL with create and write permission (sp=cw), set AZURE_STORAGE_CONNECTION_STRING (or --connection-string-file), or use an identity with the Storage Blob Data Contributor role (--client-id, az login)"},
	{azure.ErrNoAccountKey, "or pass --connection-string-file"},
	{azure.ErrExists, "pass --overwrite to replace it, or choose another blob name"},
	{azure.ErrIncomplete, "run the same `encfs upload` again to finish it"},
	{azure.ErrTooManyBlocks, "raise --block-size"},
	{azure.ErrVolumeExists, "choose another blob name, or delete the old blob first if it holds nothing you need"},
	{azure.ErrNotPageBlob, "a volume lives in a page blob: create one with `encfs volume create`"},
	{azure.ErrLeased, "stop the other mount first, or mount this one read-only"},
	{azure.ErrLeaseLost, "mount the volume again: it continues from its last successful flush"},
	{writeback.ErrLost, "mount the volume again: it continues from its last successful flush"},
	{blobio.ErrDiskCache, "choose a writable directory with room for the cache: --disk-cache DIR (or ENCFS_CACHE_DIR for the automatic one), or --disk-cache none"},
	{blobio.ErrChanged, "the blob was replaced after it was opened: restart the mount to serve the new image"},
	{blobio.ErrUnreachable, "check network access to the storage endpoint (firewall, private endpoint DNS, proxy); --read-timeout bounds how long a read waits"},
}

// advice says what the user can do about err, or "" when there is nothing to add to the
// error itself.
func advice(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range adviceRules {
		if errors.Is(err, r.is) {
			return r.advice
		}
	}
	// A refused or missing blob: the error's Cause, when the source diagnosed one, already
	// says what was wrong with the request; otherwise give the general advice of the kind.
	var e *blobio.Error
	if !errors.As(err, &e) || e.Cause != "" {
		return ""
	}
	switch {
	case errors.Is(err, blobio.ErrNotFound) && e.Azure:
		return "check the account, container and blob names; a private blob also answers 404 to anonymous requests, so give a SAS URL or an identity with the Storage Blob Data Reader role"
	case errors.Is(err, blobio.ErrNotFound):
		return "check the URL"
	case errors.Is(err, blobio.ErrAuth) && e.Azure:
		return "the SAS may have expired or lack read permission, or the identity lacks the Storage Blob Data Reader role (Contributor to upload)"
	case errors.Is(err, blobio.ErrAuth):
		return "the presigned URL may have expired"
	}
	return ""
}
