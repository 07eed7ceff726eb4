package main

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// mkContainer creates the container at URL (http://HOST/ACCOUNT/CONTAINER) with the account
// key of AZURE_STORAGE_CONNECTION_STRING; one that exists already is fine. Volumes need it:
// encfs creates containers for uploads but not for volumes.
func mkContainer(args []string) error {
	if len(args) != 1 {
		usage()
	}
	cred, err := connStringCredential()
	if err != nil {
		return err
	}
	c, err := container.NewClientWithSharedKeyCredential(args[0], cred, nil)
	if err != nil {
		return err
	}
	_, err = c.Create(context.Background(), nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == "ContainerAlreadyExists" {
		return nil
	}
	return err
}

// rmBlob deletes the blob at URL, so that a benchmark's volumes do not pile up in Azurite's
// in-memory store (which refuses writes once full: HTTP 409 MemoryExtentStoreAtSizeLimit).
func rmBlob(args []string) error {
	if len(args) != 1 {
		usage()
	}
	cred, err := connStringCredential()
	if err != nil {
		return err
	}
	b, err := blob.NewClientWithSharedKeyCredential(args[0], cred, nil)
	if err != nil {
		return err
	}
	_, err = b.Delete(context.Background(), nil)
	return err
}

// connStringCredential is the shared key of AZURE_STORAGE_CONNECTION_STRING.
func connStringCredential() (*blob.SharedKeyCredential, error) {
	name, key := "", ""
	for _, kv := range strings.Split(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "accountname":
			name = v
		case "accountkey":
			key = strings.TrimSpace(kv[len(k)+1:])
		}
	}
	return blob.NewSharedKeyCredential(name, key)
}
