package sidecar

import (
	"context"
	"strings"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/location"
	"github.com/encfs/encfs/image"
)

// SourceOptions say how an image location is opened.
type SourceOptions struct {
	Blob  location.Options
	Chunk blobio.ChunkOptions
}

// OpenSource opens an image location: a local path (or file:// URL), or a URL. Remote sources
// get the chunked, prefetching, caching fetch layer in front; a local file is read as it is.
func OpenSource(ctx context.Context, loc string, o SourceOptions) (image.Source, error) {
	return openSourceFor(ctx, loc, o, false)
}

// openMountSource opens the image of a mount: a local image is read the way
// blobio.FileSource.ForMount says.
func openMountSource(ctx context.Context, loc string, o SourceOptions) (image.Source, error) {
	return openSourceFor(ctx, loc, o, true)
}

// openSourceFor is OpenSource, with a local image read the way a mount reads it when forMount
// is set.
func openSourceFor(ctx context.Context, loc string, o SourceOptions, forMount bool) (image.Source, error) {
	loc = strings.TrimPrefix(loc, "file://")
	src, err := location.Open(ctx, loc, o.Blob)
	if err != nil {
		return nil, err
	}
	if blobio.IsRemote(loc) {
		return blobio.NewChunked(src, o.Chunk), nil
	}
	f := src.(*blobio.FileSource) // what a local path opens as
	if forMount {
		if c, ok := f.ForMount(); ok {
			return c, nil
		}
	}
	return image.Plain(f), nil
}
