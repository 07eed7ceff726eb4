package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/image"
)

// Counting wraps a source that keeps no statistics of its own (a local file, through
// image.Plain) so that the fetch metrics cover it too. Remote sources go through
// blobio.Chunked, which counts itself. Every capability of the image source is forwarded
// (embedding); only ReadAt is counted, which is how a plain source is read (it lends no views).
type Counting struct {
	image.Source
	bytes, reads, errs, nanos atomic.Int64
}

// Count returns src itself if it already keeps statistics, else src wrapped in Counting.
func Count(src image.Source) image.Source {
	if _, ok := src.(sourceStats); ok {
		return src
	}
	return &Counting{Source: src}
}

func (c *Counting) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	start := time.Now()
	n, err := c.Source.ReadAt(ctx, p, off)
	c.nanos.Add(int64(time.Since(start)))
	c.reads.Add(1)
	c.bytes.Add(int64(n))
	if err != nil {
		c.errs.Add(1)
	}
	return n, err
}

// Stats reports the reads in the shape of blobio's statistics.
func (c *Counting) Stats() blobio.Stats {
	st := blobio.Stats{BytesFetched: c.bytes.Load(), Fetches: c.reads.Load(), FetchErrors: c.errs.Load(),
		FetchLatencySum: time.Duration(c.nanos.Load()), FetchLatencyCount: c.reads.Load()}
	st.FetchErrorsByCause[len(st.FetchErrorsByCause)-1] = st.FetchErrors // a local disk's errors are all "other"
	return st
}
