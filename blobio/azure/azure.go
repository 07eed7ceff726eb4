package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
)

// Blob metadata that encfs upload writes and the Azure source reads.
const (
	// MetaSize is the image's real length: a page blob is padded to 512 bytes.
	MetaSize = "encfs_size"
	// MetaID identifies the image content (see ImageID): the same image uploaded twice is
	// recognised, and an interrupted upload resumes only into the same image.
	MetaID = "encfs_id"
	// MetaState is "uploading" on a page blob whose pages are still being written.
	MetaState = "encfs_state"
)

// storageScope is the scope of bearer tokens for Azure Storage.
const storageScope = "https://storage.azure.com/.default"

var (
	// ErrIncomplete reports a blob whose upload has not finished.
	ErrIncomplete = errors.New("upload not finished")
	// ErrNoToken: the identity credential (managed identity, workload identity, az login) gave
	// no token, so no request was sent.
	ErrNoToken = errors.New("no token from the identity")
)

// Source reads an image from an Azure block or page blob. Every read carries If-Match
// with the ETag seen at open, so a blob replaced while mounted fails reads with blobio.ErrChanged
// instead of mixing versions.
type Source struct {
	client   *blob.Client
	url      *url.URL
	name     string // redacted
	etag     azcore.ETag
	size     int64
	blobType string
	auth     Auth
	facts    requestFacts // what reads carry, to explain a refusal
	retry    remote.Retrier
	retries  atomic.Int64
}

func openAzure(ctx context.Context, u *url.URL, opts Options) (*Source, error) {
	name := redact.DisplayURL(u)
	creds, err := resolveAuth(u, opts)
	if err != nil {
		return nil, &blobio.Error{Op: "open", Source: name, Kind: blobio.ErrAuth, Err: err}
	}
	var errs []string
	var last error
	for _, c := range creds {
		s, err := openAzureWith(ctx, u, c, opts)
		if err == nil {
			return s, nil
		}
		// Only a refusal is worth trying the next credential for.
		if !errors.Is(err, blobio.ErrAuth) && !errors.Is(err, blobio.ErrNotFound) {
			return nil, err
		}
		last = err
		errs = append(errs, fmt.Sprintf("%s: %s", c.mode, brief(err)))
	}
	if len(errs) > 1 {
		return nil, fmt.Errorf("%w (tried %s)", last, strings.Join(errs[:len(errs)-1], "; "))
	}
	return nil, last
}

func openAzureWith(ctx context.Context, u *url.URL, c azureCred, opts Options) (*Source, error) {
	s := &Source{url: u, name: redact.DisplayURL(u), auth: c.mode, facts: newRequestFacts("read", u, c)}
	s.retry = remote.NewRetrier(opts.Retry, &s.retries, s.name, true)
	cl, err := newBlobClient(u.String(), c, opts)
	if err != nil {
		return nil, &blobio.Error{Op: "open", Source: s.name, Kind: blobio.ErrBadResponse, Err: redact.Err(err), Azure: true,
			Cause: "expected https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB"}
	}
	s.client = cl
	if err := checkToken(ctx, c, s.retry.Policy.TryTimeout, "open", s.name); err != nil {
		return nil, err
	}
	var props blob.GetPropertiesResponse
	err = s.retry.Do(ctx, "open", func(ctx context.Context) *remote.Attempt {
		var err error
		props, err = cl.GetProperties(ctx, nil)
		return classifyAzure(err)
	})
	if err != nil {
		return nil, explain(err, newRequestFacts("open", u, c))
	}
	if props.ETag == nil || props.ContentLength == nil {
		return nil, &blobio.Error{Op: "open", Source: s.name, Kind: blobio.ErrBadResponse, Err: errors.New("no ETag or Content-Length in the blob's properties")}
	}
	s.etag = *props.ETag
	s.size = *props.ContentLength
	if props.BlobType != nil {
		s.blobType = string(*props.BlobType)
	}
	meta := lowerKeys(props.Metadata)
	if meta[MetaState] == "uploading" {
		return nil, &blobio.Error{Op: "open", Source: s.name, Kind: ErrIncomplete, Azure: true,
			Cause: "its upload was interrupted before the last block"}
	}
	if v, ok := meta[MetaSize]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > s.size {
			return nil, &blobio.Error{Op: "open", Source: s.name, Kind: blobio.ErrBadResponse,
				Err: fmt.Errorf("metadata %s=%q is not a length within the blob's %d bytes", MetaSize, v, s.size)}
		}
		s.size = n
	}
	return s, nil
}

// lowerKeys flattens SDK metadata; services and the SDK differ in key case.
func lowerKeys(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[strings.ToLower(k)] = *v
		}
	}
	return out
}

// classifyAzure maps an SDK error to an attempt error.
func classifyAzure(err error) *remote.Attempt {
	if err == nil {
		return nil
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		return &remote.Attempt{Kind: blobio.ErrAuth, Err: redact.Err(errors.New("the identity could not get a token"))}
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		var h http.Header
		if re.RawResponse != nil {
			h = re.RawResponse.Header
		}
		a := remote.ClassifyStatus(re.StatusCode, re.ErrorCode, h, nil)
		a.Err = nil // the SDK's message repeats the URL and the whole answer
		if d := authDetail(re); d != "" {
			a.Err = errors.New(d)
		}
		return a
	}
	return remote.ClassifyTransport(err)
}

// ReadAt reads len(p) bytes at off with one ranged Get Blob pinned by If-Match, retried;
// a body cut short resumes after the bytes that arrived.
func (s *Source) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	etag := s.etag
	n, err := remote.ReadRanged(ctx, &s.retry, s.name, s.size, p, off, func(ctx context.Context, start, count int64) (io.ReadCloser, *remote.Attempt) {
		resp, err := s.client.DownloadStream(ctx, &blob.DownloadStreamOptions{
			Range: blob.HTTPRange{Offset: start, Count: count},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
				IfMatch: &etag}},
		})
		if a := classifyAzure(err); a != nil {
			return nil, a
		}
		if resp.ETag != nil && *resp.ETag != etag {
			resp.Body.Close()
			return nil, &remote.Attempt{Kind: blobio.ErrChanged, Err: fmt.Errorf("ETag is now %s, was %s", *resp.ETag, etag)}
		}
		if resp.ContentLength != nil && *resp.ContentLength != count {
			resp.Body.Close()
			return nil, &remote.Attempt{Kind: blobio.ErrBadResponse, Err: fmt.Errorf("asked for %d bytes, the answer has %d", count, *resp.ContentLength)}
		}
		return resp.Body, nil
	})
	if err != nil && err != io.EOF {
		err = explain(err, s.facts) // a SAS may expire while mounted
	}
	return n, err
}

// brief is a failed attempt in a list of attempts: its status and code, without the URL.
func brief(err error) string {
	var e *blobio.Error
	if errors.As(err, &e) && e.Status != 0 {
		return strings.TrimSpace(fmt.Sprintf("HTTP %d %s", e.Status, e.Code))
	}
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

func (s *Source) Size() int64    { return s.size }
func (s *Source) String() string { return s.name }
func (s *Source) Close() error   { return nil }

// ETag is the version every read is pinned to.
func (s *Source) ETag() string { return string(s.etag) }

// BlobType is BlockBlob or PageBlob.
func (s *Source) BlobType() string { return s.blobType }

// Auth says which credential opened the blob.
func (s *Source) Auth() Auth { return s.auth }

// Retries counts retried attempts since open.
func (s *Source) Retries() int64 { return s.retries.Load() }

// Identity names this exact version of the blob (for the disk cache): the URL without the SAS
// (which changes when it is renewed), snapshot or version id included, and the ETag.
func (s *Source) Identity() string {
	u := *s.url
	q := u.Query()
	keep := url.Values{}
	for _, k := range []string{"snapshot", "versionid"} {
		if v := q.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	u.RawQuery = keep.Encode()
	u.User = nil
	return "azure " + u.String() + " " + string(s.etag) + " " + strconv.FormatInt(s.size, 10)
}

// checkToken gets a token first when the credential is an identity: a missing identity is an
// access problem to report at once, not a network failure to retry for the whole budget.
func checkToken(ctx context.Context, c azureCred, timeout time.Duration, op, name string) error {
	if c.token == nil {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.token.GetToken(tctx, policy.TokenRequestOptions{Scopes: []string{storageScope}})
	if err != nil {
		return &blobio.Error{Op: op, Source: name, Kind: blobio.ErrAuth, Err: fmt.Errorf("%w: %w", ErrNoToken, redact.Err(err)), Azure: true}
	}
	return nil
}
