package metrics

import (
	"sync"
	"time"

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
	Volume *VolumeStats   // nil for an image: the write side of a read-write volume
}

// VolumeStats are the write side of a read-write volume: the loop device's requests, the
// volume's commits, and its store's write-back cache and lease where it has them.
type VolumeStats struct {
	Writes, BytesWritten, WriteErrors uint64 // write requests of the loop device
	Flushes, FlushErrors              uint64 // flush requests (the filesystem's commit points)
	Commits, CommitFailures           uint64 // flushes that committed changes, and those that failed
	CommitTime                        time.Duration
	WriteBack                         *WriteBackStats // zeros for a local file (written through), nil read-only
	// WriterLockHeld: the store's exclusive-writer lock is held (a local file's flock, a page
	// blob's lease, which can be lost); nil for a read-only mount.
	WriterLockHeld *bool
}

// WriteBackStats are a volume's write-back cache in front of a page blob.
type WriteBackStats struct {
	DirtyBytes                    int64 // written pages not yet sent to storage
	WriteOutBytes, WriteOutErrors int64
	Waits                         int64 // writes that waited for room in the cache
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
	descBytesRead      = desc("read_bytes_total", "Bytes returned to readers of the mount.")
	descReads          = desc("read_requests_total", "Read requests served.")
	descReadErrors     = desc("read_errors_total", "Requests that failed with EIO, by cause (integrity: a block failed verification; io: the source failed).", "cause")
	descIntegrity      = desc("integrity_failures_total", "Blocks that failed verification (each time one was read).")
	descVerified       = desc("blocks_verified_total", "4 KiB blocks verified and decrypted.")
	descCacheHits      = desc("cache_hits_total", "Cache lookups served from memory, by cache (plaintext: verified blocks; chunk: fetched ciphertext).", "cache")
	descCacheMisses    = desc("cache_misses_total", "Cache lookups that had to read from below, by cache.", "cache")
	descFilesRead      = desc("files_read_total", "Files read at least once since the mount (the kernel does not tell a read-only mount about opens and closes).")
	descPrefetch       = desc("prefetch_bytes_total", "Bytes hinted for prefetch ahead of sequential readers.")
	descFetched        = desc("fetch_bytes_total", "Bytes read from the image's storage.")
	descFetchLatency   = desc("fetch_duration_seconds", "Time taken by reads from the image's storage.")
	descFetchRequests  = desc("fetch_requests_total", "Reads from the image's storage, by kind (chunk: a whole chunk; range: a smaller range for random reads, see docs/PERFORMANCE.md).", "kind")
	descCoalesced      = desc("fetch_ranges_coalesced_total", "Range reads that went out inside a neighbour's request instead of their own.")
	descBackground     = desc("background_fetches_total", "Chunks the whole-image background fetch started (--prefetch).")
	descFetchErrors    = desc("fetch_errors_total", "Reads from storage that failed after retries, by cause (unreachable, not_found, auth, changed, bad_response, timeout: no answer within the reader's deadline, other).", "cause")
	descFetchRetries   = desc("fetch_retries_total", "Retried attempts of reads from storage.")
	descBreakerOpen    = desc("storage_breaker_open", "1 while a permanent storage condition (blob replaced or deleted, access refused) stops reads; the sidecar should be restarted.")
	descOutage         = desc("storage_outage", "1 while storage cannot be reached and reads are failing; 0 again after a read succeeds.")
	descDiskWrites     = desc("disk_cache_writes_total", "Chunks written to the disk cache.")
	descDiskErrors     = desc("disk_cache_errors_total", "Writes to the disk cache that failed (a full filesystem shrinks the cache).")
	descDiskCorrupt    = desc("disk_cache_corrupt_total", "Chunks from the disk cache that failed verification and were fetched again: the local disk returned other bytes than were written.")
	descDiskBytes      = desc("disk_cache_bytes", "Bytes in the disk cache directory now.")
	descVolWriteBytes  = desc("volume_write_bytes_total", "Bytes written to a read-write volume by its filesystem (through the loop device).")
	descVolWrites      = desc("volume_write_requests_total", "Write requests to a read-write volume.")
	descVolWriteErrors = desc("volume_write_errors_total", "Write requests to a read-write volume answered with EIO.")
	descVolFlushes     = desc("volume_flush_requests_total", "Flush requests to a read-write volume (journal commits, fsync): its commit points.")
	descVolFlushErrors = desc("volume_flush_errors_total", "Flush requests answered with EIO: the filesystem was told its data is not durable.")
	descVolCommit      = desc("volume_commit_duration_seconds", "Commits of a read-write volume (flushes with changes) and their duration; writes wait while one runs.")
	descVolCommitFails = desc("volume_commit_failures_total", "Commits that failed: the volume refuses writes until it is mounted again, which recovers the last commit.")
	descWBDirty        = desc("volume_writeback_dirty_bytes", "Bytes written to the volume's write-back cache and not yet sent to the page blob.")
	descWBBytes        = desc("volume_writeback_bytes_total", "Bytes the write-back cache sent to the page blob.")
	descWBErrors       = desc("volume_writeback_errors_total", "Write-outs to the page blob that failed after retries: the data since the last commit is lost and the volume must be mounted again.")
	descWBWaits        = desc("volume_writeback_waits_total", "Writes that waited for room in the full write-back cache (storage slower than the writers).")
	descVolLock        = desc("volume_writer_lock_held", "1 while this writer holds the store's exclusive lock (a local file's flock, a page blob's lease); 0 once a lease is lost (every write then fails). Absent for read-only mounts.")
	descMemBudget      = prometheus.NewDesc("encfs_memory_budget_bytes", "The memory the sidecar is configured to stay within (see docs/OPERATIONS.md, Memory); the Go runtime's memory limit is set from it.", nil, nil)
	allDescs           = []*prometheus.Desc{descBytesRead, descReads, descReadErrors, descIntegrity, descVerified, descCacheHits, descCacheMisses, descFilesRead, descPrefetch, descFetched, descFetchLatency, descFetchRequests, descCoalesced, descBackground, descFetchErrors, descFetchRetries, descBreakerOpen, descOutage, descDiskWrites, descDiskErrors, descDiskCorrupt, descDiskBytes, descVolWriteBytes, descVolWrites, descVolWriteErrors, descVolFlushes, descVolFlushErrors, descVolCommit, descVolCommitFails, descWBDirty, descWBBytes, descWBErrors, descWBWaits, descVolLock, descMemBudget}
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
		counter(descFilesRead, float64(s.FS.FilesRead))
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
			counter(descFetchRequests, float64(src.Fetches-src.RangeFetches), "chunk")
			counter(descFetchRequests, float64(src.RangeFetches), "range")
			counter(descCoalesced, float64(src.Coalesced))
			counter(descBackground, float64(src.BackgroundFetches))
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
		if v := s.Volume; v != nil {
			counter(descVolWriteBytes, float64(v.BytesWritten))
			counter(descVolWrites, float64(v.Writes))
			counter(descVolWriteErrors, float64(v.WriteErrors))
			counter(descVolFlushes, float64(v.Flushes))
			counter(descVolFlushErrors, float64(v.FlushErrors))
			ch <- prometheus.MustNewConstSummary(descVolCommit, v.Commits, v.CommitTime.Seconds(), nil, mp)
			counter(descVolCommitFails, float64(v.CommitFailures))
			if wb := v.WriteBack; wb != nil {
				gauge(descWBDirty, float64(wb.DirtyBytes))
				counter(descWBBytes, float64(wb.WriteOutBytes))
				counter(descWBErrors, float64(wb.WriteOutErrors))
				counter(descWBWaits, float64(wb.Waits))
			}
			if v.WriterLockHeld != nil {
				gauge(descVolLock, b2f(*v.WriterLockHeld))
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
