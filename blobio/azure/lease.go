package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
)

// This file holds a page blob's exclusive-writer lease: the Lease Blob requests (acquire,
// renew, release), the renewal loop, and the message that names the holder when a second
// writer is refused.
//
// The requests are sent by hand, like Create Container in upload.go: the SDK's lease package
// also holds the container lease client, which would link azblob/container (and with it Apache
// Arrow, flatbuffers, zstd and lz4) into the sidecar binary.

// The lease durations the service accepts (besides an infinite lease, which encfs never takes:
// a writer that dies must not lock its volume for ever).
const (
	MinLeaseDuration     = 15 * time.Second
	MaxLeaseDuration     = 60 * time.Second
	DefaultLeaseDuration = MaxLeaseDuration
)

// Blob metadata a writer records when it takes the lease, so that a refused second writer can
// say who holds the blob.
const (
	MetaHolder       = "encfs_holder"        // PageBlobOptions.Holder: host, pid, start time
	MetaLeasedAt     = "encfs_leased_at"     // when the lease was taken (RFC 3339)
	MetaLeaseSeconds = "encfs_lease_seconds" // the lease's duration
)

var (
	// ErrLeased reports a page blob that another writer holds (its lease).
	ErrLeased = errors.New("the blob is leased by another writer")
	// ErrLeaseLost reports that this writer's lease ended (a renewal failed, or the lease was
	// broken or taken): no later write is sent.
	ErrLeaseLost = errors.New("this writer's lease on the blob was lost")
)

// The service's error code when acquiring a lease that someone else holds.
const codeLeaseAlreadyPresent = "LeaseAlreadyPresent"

// processStart is when this process started, for the default holder.
var processStart = time.Now()

// DefaultHolder names this process for the lease metadata: host, pid and start time.
func DefaultHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("host %s pid %d started %s", host, os.Getpid(), processStart.UTC().Format(time.RFC3339))
}

// checkLeaseDuration applies the default and the service's bounds.
func checkLeaseDuration(d time.Duration) (time.Duration, error) {
	if d == 0 {
		return DefaultLeaseDuration, nil
	}
	if d < MinLeaseDuration || d > MaxLeaseDuration || d%time.Second != 0 {
		return 0, fmt.Errorf("lease duration %v: Azure accepts whole seconds from %v to %v", d, MinLeaseDuration, MaxLeaseDuration)
	}
	return d, nil
}

// headerValue makes s a metadata value: printable ASCII (metadata travels in HTTP headers),
// at most 256 bytes.
func headerValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 256 {
		b = b[:256]
	}
	return strings.TrimSpace(string(b))
}

// leaseTry sends one Lease Blob request with the given action and headers.
func (b *PageBlob) leaseTry(ctx context.Context, action string, headers map[string]string) *remote.Attempt {
	u, bearer, err := b.authorize(ctx)
	if err != nil {
		return &remote.Attempt{Kind: blobio.ErrAuth, Err: err}
	}
	q := u.Query()
	q.Set("comp", "lease")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), http.NoBody)
	if err != nil {
		return &remote.Attempt{Kind: blobio.ErrBadResponse, Err: errors.New("cannot build the lease request")}
	}
	req.Header.Set("x-ms-version", sas.Version)
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("x-ms-lease-action", action)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.transport.Do(req)
	if err != nil {
		return remote.ClassifyTransport(err)
	}
	defer remote.DrainClose(resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return remote.ClassifyStatus(resp.StatusCode, resp.Header.Get("x-ms-error-code"), resp.Header, nil)
}

// lease runs a Lease Blob request under the retry policy.
func (b *PageBlob) lease(ctx context.Context, action string, headers map[string]string) error {
	err := b.retry.Do(ctx, action+" the lease of", func(ctx context.Context) *remote.Attempt {
		return b.leaseTry(ctx, action, headers)
	})
	return explain(err, b.leaseFacts)
}

// authorize returns the blob's URL and bearer token for a request sent by hand: the URL's
// own SAS or the connection string's, a short-lived SAS signed with the account key (so no
// Shared Key request signing is needed here), or an identity's token.
func (b *PageBlob) authorize(ctx context.Context) (*url.URL, string, error) {
	u := *b.url
	switch c := b.cred; {
	case c.token != nil:
		if u.Scheme != "https" {
			return nil, "", errors.New("a bearer token is sent only over https")
		}
		tok, err := c.token.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storageScope}})
		if err != nil {
			return nil, "", fmt.Errorf("no token from the identity: %w", redact.Err(err))
		}
		return &u, tok.Token, nil
	case c.shared != nil:
		now := time.Now().UTC()
		protocol := sas.ProtocolHTTPS
		if u.Scheme == "http" {
			protocol = sas.ProtocolHTTPSandHTTP // Azurite
		}
		q, err := sas.BlobSignatureValues{Protocol: protocol, StartTime: now.Add(-5 * time.Minute), ExpiryTime: now.Add(5 * time.Minute),
			Permissions:   (&sas.BlobPermissions{Read: true, Write: true}).String(),
			ContainerName: b.leaseFacts.container, BlobName: b.leaseFacts.blob}.SignWithSharedKey(c.shared)
		if err != nil {
			return nil, "", errors.New("cannot sign a SAS with the account key")
		}
		u.RawQuery = q.Encode()
	case c.sasURL != "":
		su, err := url.Parse(c.sasURL)
		if err != nil {
			return nil, "", errors.New("the connection string's SAS is not a valid query string")
		}
		u.RawQuery = su.RawQuery
	} // else the URL's own SAS, already in u
	return &u, "", nil
}

// leaseRetryInterval is how often a writer waiting for another's lease to end tries again.
const leaseRetryInterval = 2 * time.Second

// acquireLease takes the lease, waiting up to wait for another writer's lease to end, and
// returns when the try that took it started (the lease runs from then at the latest). A blob
// still held after the wait is refused with who holds it.
func (b *PageBlob) acquireLease(ctx context.Context, wait time.Duration) (time.Time, error) {
	start := time.Now()
	deadline := start.Add(wait)
	for first := true; ; first = false {
		taken := time.Now()
		b.leaseID = newLeaseID()
		err := b.lease(ctx, "acquire", map[string]string{
			"x-ms-lease-duration":    strconv.Itoa(int(b.leaseDur / time.Second)),
			"x-ms-proposed-lease-id": b.leaseID,
		})
		var e *blobio.Error
		if !errors.As(err, &e) || e.Code != codeLeaseAlreadyPresent {
			return taken, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return taken, b.refusal(ctx, wait)
		}
		if first { // say why the open waits
			b.log.Warn("the volume's page blob is leased by another writer; waiting for its lease to end",
				"blob", b.name, "wait", wait, "holder", b.refusal(ctx, 0))
		}
		t := time.NewTimer(min(leaseRetryInterval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return taken, b.refusal(ctx, time.Since(start))
		case <-t.C:
		}
	}
}

// refusal is the error for a blob someone else holds: who (from the metadata the holder
// recorded), since when, when its lease ends at most if the holder is gone, and how long this
// writer waited for it (if it did).
func (b *PageBlob) refusal(ctx context.Context, waited time.Duration) error {
	who := "a client that recorded no encfs holder (not an encfs mount, or one still starting)"
	ends := "if its holder is gone, the lease ends at most 60 s after its last renewal (the longest lease but an infinite one)"
	props, err := b.pb.GetProperties(ctx, nil)
	if err == nil {
		meta := lowerKeys(props.Metadata)
		if h := meta[MetaHolder]; h != "" {
			who = h
			if at := meta[MetaLeasedAt]; at != "" {
				who += ", leased at " + at
			}
			if s := meta[MetaLeaseSeconds]; s != "" {
				ends = fmt.Sprintf("if that holder is gone, its lease ends at most %s s after its last renewal", s)
			}
		}
		if props.LeaseDuration != nil && string(*props.LeaseDuration) == "infinite" {
			ends = "the lease is infinite and never ends by itself, even if its holder is gone"
		}
	}
	cause := "a volume has one writer at a time; " + ends
	if waited > 0 {
		cause += fmt.Sprintf("; waited %s for it to end", waited.Round(time.Second))
	}
	return &blobio.Error{Op: "open", Source: b.name, Kind: ErrLeased, Status: http.StatusConflict, Code: codeLeaseAlreadyPresent, Azure: true,
		Err: fmt.Errorf("held by %s", who), Cause: cause}
}

// recordHolder writes who holds the lease into the blob's metadata, keeping the rest.
func (b *PageBlob) recordHolder(ctx context.Context, existing map[string]*string) error {
	meta := make(map[string]*string, len(existing)+3)
	for k, v := range existing {
		switch strings.ToLower(k) {
		case MetaHolder, MetaLeasedAt, MetaLeaseSeconds:
		default:
			meta[k] = v
		}
	}
	holder, at, secs := b.holder, time.Now().UTC().Format(time.RFC3339), strconv.Itoa(int(b.leaseDur/time.Second))
	meta[MetaHolder], meta[MetaLeasedAt], meta[MetaLeaseSeconds] = &holder, &at, &secs
	err := b.retry.Do(ctx, "record the lease holder on", func(ctx context.Context) *remote.Attempt {
		_, err := b.pb.SetMetadata(ctx, meta, &blob.SetMetadataOptions{AccessConditions: b.leaseAC})
		return classifyAzure(err)
	})
	return explain(err, b.writeFacts)
}

// renewLoop renews the lease every third of its duration until ctx ends. A renewal is retried
// until just before the lease would expire; if it cannot be renewed by then, the lease is lost.
func (b *PageBlob) renewLoop(ctx context.Context, renewed time.Time) {
	defer close(b.renewDone)
	every := b.leaseDur / 3
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		sent := time.Now() // the new expiry counts from the service's receipt, never earlier
		rctx, cancel := context.WithDeadline(ctx, renewed.Add(b.leaseDur-time.Second))
		err := b.lease(rctx, "renew", map[string]string{"x-ms-lease-id": b.leaseID})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.loseLease(err)
			return
		}
		renewed = sent
		timer.Reset(time.Until(renewed.Add(every)))
	}
}

// loseLease records that the lease is gone: every later write fails with ErrLeaseLost. It is
// logged once.
func (b *PageBlob) loseLease(cause error) {
	b.lostOnce.Do(func() {
		err := fmt.Errorf("%w: %s: %v; nothing more is written to it", ErrLeaseLost, b.name, cause)
		b.lost.Store(&err)
		b.log.Error("lost the lease on a volume's blob: every later write fails; remount the volume",
			"blob", b.name, "err", cause.Error())
	})
}

// lostErr is the error of a lost lease, or nil.
func (b *PageBlob) lostErr() error {
	if p := b.lost.Load(); p != nil {
		return *p
	}
	return nil
}

// releaseLease gives the lease back, so the next writer need not wait for it to expire.
func (b *PageBlob) releaseLease() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return b.lease(ctx, "release", map[string]string{"x-ms-lease-id": b.leaseID})
}
