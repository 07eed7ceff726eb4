package main

import (
	"context"
	"fmt"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
	"github.com/encfs/encfs/keys"
)

// openSource opens an image location: a local path or a URL.
func openSource(ctx context.Context, loc string) (blobio.Source, error) {
	return blobio.OpenFile(loc)
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
func openImage(ctx context.Context, loc string, keyFiles []string, opts image.Options) (*image.Image, error) {
	ks, zero, err := readKeyFiles(keyFiles)
	if err != nil {
		return nil, err
	}
	defer zero()
	src, err := openSource(ctx, loc)
	if err != nil {
		return nil, err
	}
	im, err := image.Open(ctx, src, ks, opts)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	return im, nil
}
