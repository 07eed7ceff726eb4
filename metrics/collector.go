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
	Source *blobio.Stats  // nil when the source keeps no statistics
	Health *blobio.Health // nil when the source does not track its health (a local file)
}

// StatsFunc takes a snapshot; it is called on every scrape.
type StatsFunc func() Stats

// sourceStats is implemented by sources that count their fetches (blobio.Chunked, Counting).
type sourceStats interface{ Stats() blobio.Stats }

// sourceHealth is implemented by sources that follow their storage's state (blobio.Chunked).
type sourceHealth interface{ Health() blobio.Health }

// For returns the StatsFunc of a mounted filesystem: its own counters, its image's and, if the
// image's source keeps any, the source's.
func For(f *encfs.FS) StatsFunc {
	return func() Stats {
		s := Stats{FS: f.Stats(), Image: f.Image().Stats()}
		if src, ok := f.Image().Source().(sourceStats); ok {
			st := src.Stats()
			s.Source = &st
		}
		if src, ok := f.Image().Source().(sourceHealth); ok {
			h := src.Health()
			s.Health = &h
		}
		return s
	}
}

// Collector is a prometheus.Collector over any number of mounts, labelled by mount point.
type Collector struct {
	mu     sync.Mutex
	mounts map[string]StatsFunc
	budget int64 // memory budget in bytes, 0 if none was set
}

// SetMemoryBudget reports the process's memory budget (encfs_memory_budget_bytes).
func (c *Collector) SetMemoryBudget(bytes int64) {
	c.mu.Lock()
	c.budget = bytes
	c.mu.Unlock()
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
	descFetchErrors  = desc("fetch_errors_total", "Reads from storage that failed after retries, by cause (unreachable, not_found, auth, changed, bad_response, timeout: no answer within the reader's deadline, other).", "cause")
	descFetchRetries = desc("fetch_retries_total", "Retried attempts of reads from storage.")
	descBreakerOpen  = desc("storage_breaker_open", "1 while a permanent storage condition (blob replaced or deleted, access refused) stops reads; the sidecar should be restarted.")
	descOutage       = desc("storage_outage", "1 while storage cannot be reached and reads are failing; 0 again after a read succeeds.")
	descDiskWrites   = desc("disk_cache_writes_total", "Chunks written to the disk cache.")
	descDiskErrors   = desc("disk_cache_errors_total", "Writes to the disk cache that failed (a full filesystem shrinks the cache).")
	descDiskCorrupt  = desc("disk_cache_corrupt_total", "Chunks from the disk cache that failed verification and were fetched again: the local disk returned other bytes than were written.")
	descDiskBytes    = desc("disk_cache_bytes", "Bytes in the disk cache directory now.")
	descMemBudget    = prometheus.NewDesc("encfs_memory_budget_bytes", "The memory the sidecar is configured to stay within (see docs/OPERATIONS.md, Memory); the Go runtime's memory limit is set from it.", nil, nil)
	allDescs         = []*prometheus.Desc{descBytesRead, descReads, descReadErrors, descIntegrity, descVerified, descCacheHits, descCacheMisses, descOpenFiles, descPrefetch, descFetched, descFetchLatency, descFetchErrors, descFetchRetries, descBreakerOpen, descOutage, descDiskWrites, descDiskErrors, descDiskCorrupt, descDiskBytes, descMemBudget}
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
	budget := c.budget
	c.mu.Unlock()
	if budget > 0 {
		ch <- prometheus.MustNewConstMetric(descMemBudget, prometheus.GaugeValue, float64(budget))
	}
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
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, mp)
		}
		if src := s.Source; src != nil {
			counter(descCacheHits, float64(src.CacheHits), "chunk")
			counter(descCacheMisses, float64(src.CacheMisses), "chunk")
			counter(descCacheHits, float64(src.DiskHits), "disk")
			counter(descCacheMisses, float64(src.DiskMisses), "disk")
			counter(descDiskWrites, float64(src.DiskWrites))
			counter(descDiskErrors, float64(src.DiskErrors))
			counter(descDiskCorrupt, float64(src.DiskCorrupt))
			gauge(descDiskBytes, float64(src.DiskBytes))
			counter(descFetched, float64(src.BytesFetched))
			for i, cause := range blobio.FetchErrorCauses() {
				counter(descFetchErrors, float64(src.FetchErrorsByCause[i]), cause)
			}
			counter(descFetchRetries, float64(src.Retries))
			ch <- prometheus.MustNewConstSummary(descFetchLatency, uint64(src.FetchLatencyCount), src.FetchLatencySum.Seconds(), nil, mp)
		}
		if h := s.Health; h != nil {
			gauge(descBreakerOpen, b2f(h.State == blobio.StateBroken))
			gauge(descOutage, b2f(h.State == blobio.StateOutage))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
