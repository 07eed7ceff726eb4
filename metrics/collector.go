package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/encfs/encfs/blobio"
	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/image"
)

// Stats is one mount's counters at one moment.
type Stats struct {
	FS     encfs.Stats
	Image  image.Stats
	Source *blobio.Stats // nil when the source keeps no statistics
}

// StatsFunc takes a snapshot; it is called on every scrape.
type StatsFunc func() Stats

// sourceStats is implemented by sources that count their fetches (blobio.Chunked, Counting).
type sourceStats interface{ Stats() blobio.Stats }

// For returns the StatsFunc of a mounted filesystem: its own counters, its image's and, if the
// image's source keeps any, the source's.
func For(f *encfs.FS) StatsFunc {
	return func() Stats {
		s := Stats{FS: f.Stats(), Image: f.Image().Stats()}
		if src, ok := f.Image().Source().(sourceStats); ok {
			st := src.Stats()
			s.Source = &st
		}
		return s
	}
}

// Collector is a prometheus.Collector over any number of mounts, labelled by mount point.
type Collector struct {
	mu     sync.Mutex
	mounts map[string]StatsFunc
}

// NewCollector returns an empty collector; register it with a prometheus.Registry.
func NewCollector() *Collector { return &Collector{mounts: make(map[string]StatsFunc)} }

// Add starts reporting a mount; the returned func stops it.
func (c *Collector) Add(mountpoint string, f StatsFunc) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mounts[mountpoint] = f
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.mounts, mountpoint)
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("encfs_"+name, help, append([]string{"mount"}, labels...), nil)
}

var (
	descBytesRead    = desc("read_bytes_total", "Bytes returned to readers of the mount.")
	descReads        = desc("read_requests_total", "Read requests served.")
	descReadErrors   = desc("read_errors_total", "Requests that failed with EIO, by cause (integrity: a block failed verification; io: the source failed).", "cause")
	descIntegrity    = desc("integrity_failures_total", "Blocks that failed verification (each time one was read).")
	descVerified     = desc("blocks_verified_total", "4 KiB blocks verified and decrypted.")
	descCacheHits    = desc("cache_hits_total", "Cache lookups served from memory, by cache (plaintext: verified blocks; chunk: fetched ciphertext).", "cache")
	descCacheMisses  = desc("cache_misses_total", "Cache lookups that had to read from below, by cache.", "cache")
	descOpenFiles    = desc("open_files", "Files open on the mount now.")
	descPrefetch     = desc("prefetch_bytes_total", "Bytes hinted for prefetch ahead of sequential readers.")
	descFetched      = desc("fetch_bytes_total", "Bytes read from the image's storage.")
	descFetchLatency = desc("fetch_duration_seconds", "Time taken by reads from the image's storage.")
	descFetchErrors  = desc("fetch_errors_total", "Reads from storage that failed after retries.")
	descFetchRetries = desc("fetch_retries_total", "Retried attempts of reads from storage.")
	allDescs         = []*prometheus.Desc{descBytesRead, descReads, descReadErrors, descIntegrity, descVerified, descCacheHits, descCacheMisses, descOpenFiles, descPrefetch, descFetched, descFetchLatency, descFetchErrors, descFetchRetries}
)

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	mounts := make(map[string]StatsFunc, len(c.mounts))
	for k, v := range c.mounts {
		mounts[k] = v
	}
	c.mu.Unlock()
	for mp, f := range mounts {
		s := f()
		counter := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{mp}, labels...)...)
		}
		counter(descBytesRead, float64(s.FS.BytesRead))
		counter(descReads, float64(s.FS.Reads))
		counter(descReadErrors, float64(s.FS.IntegrityErrors), "integrity")
		counter(descReadErrors, float64(s.FS.ReadErrors-s.FS.IntegrityErrors), "io")
		counter(descIntegrity, float64(s.Image.IntegrityFailures))
		counter(descVerified, float64(s.Image.BlocksVerified))
		counter(descCacheHits, float64(s.Image.CacheHits), "plaintext")
		counter(descCacheMisses, float64(s.Image.CacheMisses), "plaintext")
		counter(descPrefetch, float64(s.FS.PrefetchBytes))
		ch <- prometheus.MustNewConstMetric(descOpenFiles, prometheus.GaugeValue, float64(s.FS.OpenFiles), mp)
		if src := s.Source; src != nil {
			counter(descCacheHits, float64(src.CacheHits), "chunk")
			counter(descCacheMisses, float64(src.CacheMisses), "chunk")
			counter(descFetched, float64(src.BytesFetched))
			counter(descFetchErrors, float64(src.FetchErrors))
			counter(descFetchRetries, float64(src.Retries))
			ch <- prometheus.MustNewConstSummary(descFetchLatency, uint64(src.FetchLatencyCount), src.FetchLatencySum.Seconds(), nil, mp)
		}
	}
}
