package sidecar

import (
	"context"
	"strings"

	"github.com/encfs/encfs/blobio"
)

// SourceOptions say how an image location is opened.
type SourceOptions struct {
	Blob  blobio.Options
	Chunk blobio.ChunkOptions
}

// OpenSource opens an image location: a local path (or file:// URL), or a URL. Remote sources
// get the chunked, prefetching, caching fetch layer in front.
func OpenSource(ctx context.Context, loc string, o SourceOptions) (blobio.Source, error) {
	loc = strings.TrimPrefix(loc, "file://")
	src, err := blobio.Open(ctx, loc, o.Blob)
	if err != nil {
		return nil, err
	}
	if blobio.IsRemote(loc) {
		return blobio.NewChunked(src, o.Chunk), nil
	}
	return src, nil
}

// openMountSource opens the image of a mount: a local image is read the way
// blobio.FileSource.ForMount says.
func openMountSource(ctx context.Context, loc string, o SourceOptions) (blobio.Source, error) {
	src, err := OpenSource(ctx, loc, o)
	if f, ok := src.(*blobio.FileSource); ok && err == nil {
		return f.ForMount(), nil
	}
	return src, err
}
