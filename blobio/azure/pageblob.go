package azure

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/google/uuid"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
)

// A PageBlob is an Azure page blob used as a read-write volume's store (volume.Store, which it
// satisfies without importing package volume). A writer holds the blob's lease for as long as
// it is open and renews it in the background; every write carries the lease id, so the
// service itself refuses a write once the lease is lost. Page writes are durable when the
// service answers, so Flush only waits for the writes in flight and reports their errors.
//
// Writes are retried within the retry budget: a Put Page of the same bytes at the same offset
// is idempotent. A refusal because of the lease (HTTP 412) is never retried. One case is not
// covered: a try that timed out on the client may still be applied by the service later, after
// a newer write to the same pages; the volume's per-block authentication then reports those
// pages as corrupt (EIO), never as data.
type PageBlob struct {
	pb        *pageblob.Client
	url       *url.URL
	name      string // redacted
	cred      azureCred
	transport policy.Transporter
	retry     remote.Retrier
	retries   atomic.Int64
	log       *slog.Logger
	readOnly  bool
	size      atomic.Int64

	readFacts, writeFacts, leaseFacts requestFacts // to explain a refusal

	// The lease (writers only).
	holder    string
	leaseID   string
	leaseDur  time.Duration
	leaseAC   *blob.AccessConditions // carries the lease id on every write
	stopRenew context.CancelFunc
	renewDone chan struct{}
	lost      atomic.Pointer[error]
	lostOnce  sync.Once

	// writes is held shared by each write for its whole duration (retries included) and
	// exclusively by Flush and Close, which so wait for the writes in flight.
	writes   sync.RWMutex
	closed   atomic.Bool
	errMu    sync.Mutex
	firstErr error // the first failed write since the last Flush

	closeOnce sync.Once
	closeErr  error
}

// PageBlobOptions say how OpenPageBlob and CreatePageBlob reach a page blob.
type PageBlobOptions struct {
	// Options are the credential, HTTP client and retry bounds, as for images. Writes need a
	// credential that can write: a SAS with sp=rw (sp=cw to create), a connection string, or an
	// identity with the Storage Blob Data Contributor role.
	Options
	// ReadOnly opens without the lease: every write fails, and another writer may hold the blob.
	ReadOnly bool
	// LeaseDuration is the lease's duration, whole seconds from 15 s to 60 s (default 60 s). A
	// writer that dies holds the blob at most this long.
	LeaseDuration time.Duration
	// LeaseWait is how long a writer waits for another writer's lease to end before it is
	// refused (default 0: refused at once). A writer that died without releasing its lease
	// (a killed sidecar) holds the blob up to LeaseDuration after its last renewal, so a
	// restarted sidecar waits a little longer than the longest lease and then takes the blob.
	LeaseWait time.Duration
	// Holder names this writer in the blob's metadata while it holds the lease, so that a
	// refused second writer learns who holds it (default DefaultHolder: host, pid, start time).
	Holder string
	// Log receives the one message of a lost lease (default slog.Default).
	Log *slog.Logger
}

// MaxPageBlobSize is the largest page blob Azure allows (8 TiB).
const MaxPageBlobSize = 8 << 40

var (
	// ErrVolumeExists: CreatePageBlob found a blob at the URL already (it never replaces one).
	ErrVolumeExists = errors.New("a blob exists there already")
	// ErrNotPageBlob: OpenPageBlob found a block or append blob, which cannot hold a volume.
	ErrNotPageBlob = errors.New("not a page blob")
)

// volumeURL parses and checks the URL of a volume's page blob.
func volumeURL(rawURL, op string, o Options) (*url.URL, error) {
	if !blobio.IsRemote(rawURL) {
		return nil, fmt.Errorf("%s: %q is not a URL; give https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB", op, rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid URL: %v", op, redact.Err(err))
	}
	if !o.AnyHost && !IsAzureURL(u) {
		return nil, fmt.Errorf("%s %s: not an Azure blob URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB); for a custom domain use the azure:// scheme", op, redact.DisplayURL(u))
	}
	switch strings.ToLower(u.Scheme) {
	case "azure", "azure+https":
		u.Scheme = "https"
	case "azure+http":
		u.Scheme = "http"
	}
	if f := newRequestFacts(op, u, azureCred{}); f.container == "" || f.blob == "" {
		return nil, fmt.Errorf("%s %s: an Azure blob URL needs a container and a blob name: https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB", op, redact.DisplayURL(u))
	}
	return u, nil
}

// CreatePageBlob creates an empty (all-zero) page blob of size bytes, rounded up to a whole
// page (512 bytes). It never replaces a blob: one that exists already is refused with
// ErrVolumeExists. The container must exist; encfs does not create containers for volumes.
func CreatePageBlob(ctx context.Context, rawURL string, size int64, o PageBlobOptions) error {
	u, err := volumeURL(rawURL, "create", o.Options)
	if err != nil {
		return err
	}
	name := redact.DisplayURL(u)
	if size <= 0 || size > MaxPageBlobSize {
		return fmt.Errorf("create %s: size %d: a page blob holds 1 byte to 8 TiB", name, size)
	}
	size = (size + pageSize - 1) / pageSize * pageSize
	cred, err := writeCredential(ctx, u, name, "create", o.Options)
	if err != nil {
		return err
	}
	pb, err := newPageBlobClient(u, cred, o.Options)
	if err != nil {
		return &blobio.Error{Op: "create", Source: name, Kind: blobio.ErrBadResponse, Err: redact.Err(err), Azure: true}
	}
	r := remote.NewRetrier(o.Retry, nil, name, true)
	anyETag := azcore.ETagAny
	err = r.Do(ctx, "create", func(ctx context.Context) *remote.Attempt {
		_, err := pb.Create(ctx, size, &pageblob.CreateOptions{AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &anyETag}}})
		a := classifyAzure(err)
		if a != nil && (a.Status == http.StatusConflict || a.Status == http.StatusPreconditionFailed) {
			a.Kind, a.Retryable = ErrVolumeExists, false
			a.Err = errors.New("encfs never replaces a blob with a new volume")
		}
		return a
	})
	if errors.Is(err, ErrVolumeExists) {
		return err
	}
	return explain(err, newRequestFacts("create", u, cred))
}

// OpenPageBlob opens a page blob as a volume's store. Unless o.ReadOnly, it takes the blob's
// lease (refused with ErrLeased, naming the holder, when another writer has it), records
// o.Holder in the blob's metadata and renews the lease until Close.
func OpenPageBlob(ctx context.Context, rawURL string, o PageBlobOptions) (*PageBlob, error) {
	u, err := volumeURL(rawURL, "open", o.Options)
	if err != nil {
		return nil, err
	}
	name := redact.DisplayURL(u)
	dur, err := checkLeaseDuration(o.LeaseDuration)
	if err != nil {
		return nil, fmt.Errorf("open %s: %v", name, err)
	}
	var creds []azureCred
	if o.ReadOnly {
		if creds, err = resolveAuth(u, o.Options); err != nil {
			return nil, &blobio.Error{Op: "open", Source: name, Kind: blobio.ErrAuth, Err: err}
		}
	} else {
		c, err := writeCredential(ctx, u, name, "open", o.Options)
		if err != nil {
			return nil, err
		}
		creds = []azureCred{c}
	}
	var last error
	for _, c := range creds {
		b, err := openPageBlobWith(ctx, u, c, o, dur)
		if err == nil {
			return b, nil
		}
		// Only a refusal is worth trying the next credential for.
		if !errors.Is(err, blobio.ErrAuth) && !errors.Is(err, blobio.ErrNotFound) {
			return nil, err
		}
		last = err
	}
	return nil, last
}

func openPageBlobWith(ctx context.Context, u *url.URL, c azureCred, o PageBlobOptions, dur time.Duration) (*PageBlob, error) {
	b := &PageBlob{url: u, name: redact.DisplayURL(u), cred: c, transport: o.transport(), log: o.Log,
		readOnly: o.ReadOnly, holder: headerValue(o.Holder), leaseDur: dur,
		readFacts: newRequestFacts("read", u, c), writeFacts: newRequestFacts("write to", u, c),
		leaseFacts: newRequestFacts("lease", u, c)}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.holder == "" {
		b.holder = headerValue(DefaultHolder())
	}
	b.retry = remote.NewRetrier(o.Retry, &b.retries, b.name, true)
	pb, err := newPageBlobClient(u, c, o.Options)
	if err != nil {
		return nil, &blobio.Error{Op: "open", Source: b.name, Kind: blobio.ErrBadResponse, Err: redact.Err(err), Azure: true,
			Cause: "expected https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB"}
	}
	b.pb = pb
	if err := checkToken(ctx, c, b.retry.Policy.TryTimeout, "open", b.name); err != nil {
		return nil, err
	}
	var props blob.GetPropertiesResponse
	err = b.retry.Do(ctx, "open", func(ctx context.Context) *remote.Attempt {
		var err error
		props, err = pb.GetProperties(ctx, nil)
		return classifyAzure(err)
	})
	if err != nil {
		return nil, explain(err, newRequestFacts("open", u, c))
	}
	if props.BlobType == nil || *props.BlobType != blob.BlobTypePageBlob || props.ContentLength == nil {
		typ := "a blob of unknown type"
		if props.BlobType != nil {
			typ = "a " + string(*props.BlobType)
		}
		return nil, &blobio.Error{Op: "open", Source: b.name, Kind: ErrNotPageBlob, Azure: true,
			Err: fmt.Errorf("it is %s; a volume lives in a page blob", typ)}
	}
	b.size.Store(*props.ContentLength)
	if b.readOnly {
		return b, nil
	}
	b.leaseAC = &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: &b.leaseID}}
	taken, err := b.acquireLease(ctx, o.LeaseWait)
	if err != nil {
		return nil, err
	}
	if err := b.recordHolder(ctx, props.Metadata); err != nil {
		_ = b.releaseLease()
		return nil, err
	}
	renewCtx, stop := context.WithCancel(context.Background())
	b.stopRenew, b.renewDone = stop, make(chan struct{})
	go b.renewLoop(renewCtx, taken)
	return b, nil
}

func newLeaseID() string { return uuid.NewString() }

// ReadAt fills p from off with ranged Get Blob requests, retried; a body cut short resumes
// after the bytes that arrived. Reading past the end is an error.
func (b *PageBlob) ReadAt(ctx context.Context, p []byte, off int64) error {
	size := b.size.Load()
	if off < 0 || off+int64(len(p)) > size {
		return fmt.Errorf("read %d bytes at %d from %s: past the end of the blob (%d bytes)", len(p), off, b.name, size)
	}
	_, err := remote.ReadRanged(ctx, &b.retry, b.name, size, p, off, func(ctx context.Context, start, count int64) (io.ReadCloser, *remote.Attempt) {
		resp, err := b.pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: start, Count: count}})
		if a := classifyAzure(err); a != nil {
			return nil, a
		}
		if resp.ContentLength != nil && *resp.ContentLength != count {
			resp.Body.Close()
			return nil, &remote.Attempt{Kind: blobio.ErrBadResponse, Err: fmt.Errorf("asked for %d bytes, the answer has %d", count, *resp.ContentLength)}
		}
		return resp.Body, nil
	})
	if err != nil {
		return explain(err, b.readFacts)
	}
	return nil
}

// checkWrite refuses a write this store cannot send.
func (b *PageBlob) checkWrite(op string, n int, off int64) error {
	switch {
	case b.readOnly:
		return fmt.Errorf("%s %s: opened read-only", op, b.name)
	case b.closed.Load():
		return fmt.Errorf("%s %s: closed", op, b.name)
	case off < 0 || off%pageSize != 0 || n%pageSize != 0:
		return fmt.Errorf("%s %s: %d bytes at %d: offsets and lengths must be multiples of %d (a page)", op, b.name, n, off, pageSize)
	case n > maxPageWrite:
		return fmt.Errorf("%s %s: %d bytes in one write, at most %d (Put Page's limit): split it", op, b.name, n, maxPageWrite)
	case off+int64(n) > b.size.Load():
		return fmt.Errorf("%s %s: %d bytes at %d: past the end of the blob (%d bytes): grow it first", op, b.name, n, off, b.size.Load())
	}
	return nil
}

// WriteAt writes p (a whole number of pages, at most 4 MiB) at off with one Put Page that
// carries the lease id and an MD5 the service checks. It is durable when it returns nil.
func (b *PageBlob) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := b.checkWrite("write to", len(p), off); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	b.writes.RLock()
	defer b.writes.RUnlock()
	if err := b.lostErr(); err != nil {
		b.noteErr(err)
		return err
	}
	sum := md5.Sum(p)
	err := b.retry.Do(ctx, fmt.Sprintf("write %d bytes at %d to", len(p), off), func(ctx context.Context) *remote.Attempt {
		if err := b.lostErr(); err != nil { // lost between two tries: send nothing more
			return &remote.Attempt{Kind: ErrLeaseLost, Err: err}
		}
		_, err := b.pb.UploadPages(ctx, readSeekNopCloser{bytes.NewReader(p)}, blob.HTTPRange{Offset: off, Count: int64(len(p))},
			&pageblob.UploadPagesOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]), AccessConditions: b.leaseAC})
		return leaseRefusal(classifyAzure(err))
	})
	return b.writeFailed(err)
}

// leaseRefusal marks a write refused because of the lease (HTTP 412: LeaseLost,
// LeaseIdMismatchWithBlobOperation, LeaseNotPresentWithBlobOperation) as final.
func leaseRefusal(a *remote.Attempt) *remote.Attempt {
	if a != nil && a.Status == http.StatusPreconditionFailed {
		a.Kind, a.Retryable = ErrLeaseLost, false
	}
	return a
}

// writeFailed explains a failed write or resize, loses the lease on a lease refusal, and
// keeps the first error for Flush.
func (b *PageBlob) writeFailed(err error) error {
	if err == nil {
		return nil
	}
	err = explain(err, b.writeFacts)
	var e *blobio.Error
	if errors.As(err, &e) && errors.Is(e.Kind, ErrLeaseLost) {
		e.Cause = "the lease expired (its renewal failed) or another client broke or took it"
		b.loseLease(err)
	}
	b.noteErr(err)
	return err
}

func (b *PageBlob) noteErr(err error) {
	b.errMu.Lock()
	if b.firstErr == nil {
		b.firstErr = err
	}
	b.errMu.Unlock()
}

// Flush waits for the writes in flight and returns the first error of the writes since the
// previous Flush, or the error of a lost lease. Each Put Page is durable when it succeeds, so
// there is nothing else to wait for.
func (b *PageBlob) Flush(ctx context.Context) error {
	b.writes.Lock()
	b.errMu.Lock()
	err := b.firstErr
	b.firstErr = nil
	b.errMu.Unlock()
	b.writes.Unlock()
	if err == nil {
		err = b.lostErr()
	}
	return err
}

// Size is the blob's size in bytes.
func (b *PageBlob) Size() int64 { return b.size.Load() }

// Resize sets the blob's size (Set Blob Properties, keeping the lease); new pages read as zero.
func (b *PageBlob) Resize(ctx context.Context, size int64) error {
	if err := b.checkWrite("resize", 0, 0); err != nil {
		return err
	}
	if size <= 0 || size > MaxPageBlobSize || size%pageSize != 0 {
		return fmt.Errorf("resize %s to %d bytes: a page blob holds a whole number of 512-byte pages, up to 8 TiB", b.name, size)
	}
	b.writes.RLock()
	defer b.writes.RUnlock()
	if err := b.lostErr(); err != nil {
		return err
	}
	err := b.retry.Do(ctx, fmt.Sprintf("resize to %d bytes", size), func(ctx context.Context) *remote.Attempt {
		_, err := b.pb.Resize(ctx, size, &pageblob.ResizeOptions{AccessConditions: b.leaseAC})
		return leaseRefusal(classifyAzure(err))
	})
	if err != nil {
		return b.writeFailed(err)
	}
	b.size.Store(size)
	return nil
}

// Close stops the renewal, waits for the writes in flight and releases the lease, so the
// next writer need not wait for it to expire. It does not flush: call Flush first.
func (b *PageBlob) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		if b.stopRenew != nil {
			b.stopRenew()
			<-b.renewDone
		}
		b.writes.Lock()
		defer b.writes.Unlock()
		if b.leaseID != "" && b.lostErr() == nil {
			b.closeErr = b.releaseLease()
		}
	})
	return b.closeErr
}

// String names the blob without its SAS signature.
func (b *PageBlob) String() string { return b.name }

// Retries counts retried requests since open.
func (b *PageBlob) Retries() int64 { return b.retries.Load() }

// LeaseID is the id of the lease this writer holds ("" when read-only).
func (b *PageBlob) LeaseID() string { return b.leaseID }

// LeaseHeld reports whether this writer holds the blob's lease now: false for a reader, after
// Close, and once the lease is lost (its renewal failed, or another client broke it), when
// every write fails.
func (b *PageBlob) LeaseHeld() bool {
	return b.leaseID != "" && !b.closed.Load() && b.lostErr() == nil
}
