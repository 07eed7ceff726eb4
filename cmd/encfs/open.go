package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/sidecar"
)

// sourceFlags are the flags of every command that reads an image, for remote images.
type sourceFlags struct {
	clientID, auth, diskCache, diskCacheSize, chunkSize string
	readTimeout                                         time.Duration
	loc                                                 *locationFlags
}

// addSourceFlags adds the source flags to cmd. A mount caches fetched ciphertext on disk by
// default (diskCache "auto"); a command that reads an image once does not ("none").
func addSourceFlags(cmd *cobra.Command, diskCache string) *sourceFlags {
	sf := &sourceFlags{loc: addLocationFlags(cmd)}
	f := cmd.Flags()
	f.StringVar(&sf.auth, "auth", "auto", "how to reach an Azure blob: auto, sas, anonymous, identity or connection-string")
	f.StringVar(&sf.clientID, "client-id", "", "client id of the user-assigned managed identity (or workload identity) for Azure")
	f.StringVar(&sf.chunkSize, "chunk-size", "8M", "size of the range requests to remote storage")
	f.StringVar(&sf.diskCache, "disk-cache", diskCache, "on-disk cache of fetched ciphertext (remote images): a directory (kept across restarts), auto (a private directory under $ENCFS_CACHE_DIR or the temp dir, removed at exit) or none")
	f.StringVar(&sf.diskCacheSize, "disk-cache-size", "auto", "size bound of --disk-cache (auto: the image's size for an automatic cache, at most half the free space; 1G for a directory)")
	f.DurationVar(&sf.readTimeout, "read-timeout", 30*time.Second, "give up on one read of remote storage after this long, retries included (the read fails with EIO)")
	return sf
}

func (sf *sourceFlags) options() (sidecar.SourceOptions, error) {
	var o sidecar.SourceOptions
	var err error
	if o.Blob.Auth, err = azure.ParseAuth(sf.auth); err != nil {
		return o, fmt.Errorf("--auth: %w", err)
	}
	o.Blob.ClientID = sf.clientID
	if o.Blob.ConnectionString, err = sf.loc.connectionString(); err != nil {
		return o, err
	}
	o.Blob.Retry.Budget = sf.readTimeout
	chunk, err := config.ParseByteSize(sf.chunkSize)
	// A multiple of the verification unit, so that no unit straddles two chunks and each is
	// verified in the chunk cache (image.Source, View).
	if err != nil || chunk < 64<<10 || chunk%image.UnitSize != 0 {
		return o, fmt.Errorf("--chunk-size %q: want a multiple of %dK of at least 64K, such as 8M", sf.chunkSize, image.UnitSize>>10)
	}
	o.Chunk.ChunkSize = int64(chunk)
	if sf.diskCache != "none" {
		o.Chunk.DiskCache = sf.diskCache
	}
	if sf.diskCacheSize != "auto" {
		size, err := config.ParseByteSize(sf.diskCacheSize)
		if err != nil {
			return o, fmt.Errorf("--disk-cache-size: %w", err)
		}
		o.Chunk.DiskCacheBytes = int64(size)
	}
	return o, nil
}

// withLocation returns args with the image location first, wherever it came from (see
// locationFlags.split); min is the number of arguments with the location given as one.
func (sf *sourceFlags) withLocation(args []string, min int) ([]string, error) {
	loc, rest, err := sf.loc.split(args, min)
	if err != nil {
		return nil, err
	}
	return append([]string{loc}, rest...), nil
}

// readKeyFiles reads release keys; the returned func zeroes them.
func readKeyFiles(files []string) ([][]byte, func(), error) {
	var ks [][]byte
	zero := func() {
		for _, k := range ks {
			keys.Zero(k)
		}
	}
	if len(files) == 0 {
		return nil, zero, fmt.Errorf("--key-file is required")
	}
	for _, f := range files {
		k, err := keys.ReadKeyFile(f)
		if err != nil {
			zero()
			return nil, zero, err
		}
		ks = append(ks, k)
	}
	return ks, zero, nil
}

// openImage opens and authenticates an image with key files.
func openImage(ctx context.Context, loc string, keyFiles []string, sf *sourceFlags, opts image.Options) (*image.Image, error) {
	so, err := sf.options()
	if err != nil {
		return nil, err
	}
	ks, zero, err := readKeyFiles(keyFiles)
	if err != nil {
		return nil, err
	}
	defer zero()
	src, err := sidecar.OpenSource(ctx, loc, so)
	if err != nil {
		return nil, err
	}
	im, err := image.Open(ctx, src, ks, opts)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("%s: %w", blobio.Display(loc), err)
	}
	return im, nil
}
