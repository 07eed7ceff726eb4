package azure

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"golang.org/x/sync/errgroup"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
)

// UploadOptions configure Upload.
type UploadOptions struct {
	// PageBlob uploads a page blob (length padded to 512 bytes, the real length in the
	// encfs_size metadata) instead of a block blob.
	PageBlob bool
	// Overwrite replaces an existing blob that holds a different image.
	Overwrite bool
	// BlockSize is the staged block size of a block blob (default 8 MiB, at most 4000 MiB).
	// Page blobs are written 4 MiB at a time, the service's limit.
	BlockSize int64
	// Workers is the number of blocks or pages in flight (default 8).
	Workers int
	// Progress, when set, is called with the number of bytes just done (or found already
	// staged on a resume). It is called from several goroutines.
	Progress func(n int64)
	// Open supplies credentials and retry bounds, as for Open. An upload cannot be anonymous.
	Open Options
}

// UploadResult says what Upload did.
type UploadResult struct {
	URL             string // redacted
	Size            int64
	ID              string // ImageID of the image
	BlobType        string
	AlreadyUploaded bool  // the blob already held this image; nothing was sent
	ResumedBytes    int64 // bytes found already staged or written by an interrupted upload
	SentBytes       int64
}

const (
	defaultUploadBlock = 8 << 20
	maxPageWrite       = 4 << 20
	pageSize           = 512
	idSample           = 1 << 20
)

// ImageID identifies an image file's content cheaply: SHA-256 over its length, its first MiB
// and its last MiB. The first MiB holds the encfs header, which carries the image's random
// salt and the authenticated root of its integrity tree, so two different images never share
// it; the tail is a second guard for files that are not encfs images. Block IDs are derived
// from it, so a resumed upload reuses only blocks of the same image.
func ImageID(r io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(size))
	h.Write([]byte("encfs image id v1\x00"))
	h.Write(n[:])
	head := min(size, idSample)
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, head)); err != nil {
		return "", err
	}
	tail := max(head, size-idSample)
	if _, err := io.Copy(h, io.NewSectionReader(r, tail, size-tail)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// blockID names block i of an image uploaded in blocks of blockSize. All IDs of a blob must
// have the same length, which this format keeps whatever the image.
func blockID(imageID string, blockSize int64, i int) string {
	h := sha256.Sum256([]byte(imageID + "/" + strconv.FormatInt(blockSize, 10)))
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("encfs%x%010d", h[:12], i)))
}

// uploader holds what both blob types need.
type uploader struct {
	o      UploadOptions
	f      *os.File
	size   int64
	id     string
	u      *url.URL
	name   string
	cred   azureCred
	retry  remote.Retrier
	result *UploadResult
	sent   sync.Mutex
	// blind: the credential may write but not read (a SAS with sp=cw), so what the blob holds
	// is unknown; the upload then only creates (If-None-Match: *) unless Overwrite.
	blind bool
}

// Upload copies a local image to an Azure blob: staged blocks in parallel then one commit
// (block blob), or pages (page blob), every request checked by the service against a
// transactional MD5. It creates the container when allowed, resumes an interrupted upload of
// the same image, and refuses to replace a blob holding another image unless Overwrite.
func Upload(ctx context.Context, imagePath, location string, o UploadOptions) (*UploadResult, error) {
	if o.BlockSize <= 0 {
		o.BlockSize = defaultUploadBlock
	}
	if o.BlockSize > 4000<<20 {
		return nil, fmt.Errorf("block size %d: at most 4000 MiB", o.BlockSize)
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Open.Retry.Budget == 0 {
		o.Open.Retry.Budget = 5 * time.Minute // an upload may wait longer than a read
	}
	f, err := os.Open(imagePath)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("upload: %s is not a regular file", imagePath)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("upload: %s is empty; pack an image first (encfs pack)", imagePath)
	}
	u, err := uploadURL(location, o.Open)
	if err != nil {
		return nil, err
	}
	up := &uploader{o: o, f: f, size: st.Size(), u: u, name: redact.DisplayURL(u)}
	up.retry = remote.NewRetrier(o.Open.Retry, nil, up.name, true)
	if up.id, err = ImageID(f, up.size); err != nil {
		return nil, fmt.Errorf("upload: reading %s: %w", imagePath, err)
	}
	if up.cred, err = writeCredential(ctx, u, up.name, "upload to", o.Open); err != nil {
		return nil, err
	}
	up.result = &UploadResult{URL: up.name, Size: up.size, ID: up.id, BlobType: "BlockBlob"}
	if o.PageBlob {
		up.result.BlobType = "PageBlob"
	}
	up.createContainer(ctx)
	if o.PageBlob {
		err = up.pageBlob(ctx)
	} else {
		err = up.blockBlob(ctx)
	}
	if err != nil {
		return nil, explain(err, newRequestFacts("upload to", u, up.cred))
	}
	return up.result, nil
}

// writeCredential picks the credential an upload (or a volume) writes with: any but anonymous
// access. An identity must be able to get a token. op names the operation in errors.
func writeCredential(ctx context.Context, u *url.URL, name, op string, o Options) (azureCred, error) {
	creds, err := resolveAuth(u, o)
	if err != nil {
		return azureCred{}, &blobio.Error{Op: op, Source: name, Kind: blobio.ErrAuth, Err: err}
	}
	var cred azureCred
	for _, c := range creds {
		if c.mode != AuthAnonymous {
			cred = c
			break
		}
	}
	if cred.mode == "" {
		e := &blobio.Error{Op: op, Source: name, Kind: blobio.ErrAuth, Err: ErrNoWriteCredential, Azure: true}
		if op != "upload to" { // a volume's writes need other permissions than an upload's
			e.Cause = fmt.Sprintf("a SAS for this needs sp=%s", newRequestFacts(op, u, azureCred{}).needs())
		}
		return azureCred{}, e
	}
	if err := checkToken(ctx, cred, o.Retry.WithDefaults().TryTimeout, op, name); err != nil {
		return azureCred{}, err
	}
	return cred, nil
}

// uploadURL parses and checks the URL of an upload.
func uploadURL(location string, o Options) (*url.URL, error) {
	if !blobio.IsRemote(location) {
		return nil, fmt.Errorf("upload: %q is not a URL; give https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB", location)
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("upload: not a valid URL: %v", redact.Err(err))
	}
	if !o.AnyHost && !IsAzureURL(u) {
		return nil, fmt.Errorf("upload %s: not an Azure blob URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB); for a custom domain use the azure:// scheme", redact.DisplayURL(u))
	}
	switch strings.ToLower(u.Scheme) {
	case "azure", "azure+https":
		u.Scheme = "https"
	case "azure+http":
		u.Scheme = "http"
	}
	return u, nil
}

// createContainer creates the blob's container if the credential allows; a container that
// exists (409) or a credential scoped to the blob (403) is fine: the upload itself will say
// if access is really missing.
//
// It is one REST call (Create Container, PUT ?restype=container) sent by hand: the SDK's
// container client would link Apache Arrow, flatbuffers, zstd and lz4 (for blob queries)
// into the sidecar binary, for this one request. An account key signs a short-lived account
// SAS for it rather than the request itself, so no Shared Key signing code is needed here.
func (up *uploader) createContainer(ctx context.Context) {
	cu := *up.u
	need := 1 // host-style: /CONTAINER/BLOB
	if h := cu.Hostname(); net.ParseIP(h) != nil || h == "localhost" || !strings.Contains(h, ".") {
		need = 2 // path-style: /ACCOUNT/CONTAINER/BLOB
	}
	parts := strings.SplitN(strings.TrimPrefix(cu.Path, "/"), "/", need+1)
	if len(parts) <= need {
		return
	}
	cu.Path = "/" + strings.Join(parts[:need], "/")
	cu.RawPath = ""
	cu.User = nil
	var bearer string
	switch {
	case up.cred.token != nil:
		if cu.Scheme != "https" {
			return // a token never travels in clear
		}
		tok, err := up.cred.token.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storageScope}})
		if err != nil {
			slog.Default().Debug("could not create the container; continuing", "err", redact.Err(err).Error())
			return
		}
		bearer = tok.Token
		cu.RawQuery = ""
	case up.cred.shared != nil:
		now := time.Now().UTC()
		protocol := sas.ProtocolHTTPS
		if cu.Scheme == "http" {
			protocol = sas.ProtocolHTTPSandHTTP // Azurite
		}
		q, err := sas.AccountSignatureValues{Protocol: protocol, StartTime: now.Add(-5 * time.Minute), ExpiryTime: now.Add(5 * time.Minute),
			Permissions:   (&sas.AccountPermissions{Create: true, Write: true}).String(),
			ResourceTypes: (&sas.AccountResourceTypes{Container: true}).String()}.SignWithSharedKey(up.cred.shared)
		if err != nil {
			return
		}
		cu.RawQuery = q.Encode()
	case up.cred.sasURL != "":
		su, _ := url.Parse(up.cred.sasURL)
		cu.RawQuery = su.RawQuery
	} // else the URL's own SAS, already in cu
	q := cu.Query()
	q.Set("restype", "container")
	cu.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, cu.String(), http.NoBody)
	if err != nil {
		return
	}
	req.Header.Set("x-ms-version", sas.Version)
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	cu.RawQuery = ""
	resp, err := up.o.Open.transport().Do(req)
	switch {
	case err != nil:
		slog.Default().Debug("could not create the container; continuing", "err", redact.Err(err).Error())
	case resp.StatusCode == http.StatusCreated:
		slog.Default().Info("created container", "url", cu.String())
	case resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusForbidden:
	default:
		slog.Default().Debug("could not create the container; continuing", "url", cu.String(), "status", resp.Status,
			"code", resp.Header.Get("x-ms-error-code"))
	}
	if resp != nil {
		remote.DrainClose(resp.Body)
	}
}

// sasLacks reports whether the upload's credential is a SAS without one of the permissions.
func (up *uploader) sasLacks(perms string) bool {
	f := newRequestFacts("upload to", up.u, up.cred)
	return f.sas.present && f.sas.lacks(perms) != ""
}

func (up *uploader) progress(n int64) {
	if up.o.Progress != nil && n > 0 {
		up.o.Progress(n)
	}
}

// existing looks at what the URL already holds: nothing (nil), or its properties.
func (up *uploader) existing(ctx context.Context, bc *blob.Client) (*blob.GetPropertiesResponse, error) {
	var props blob.GetPropertiesResponse
	var notFound bool
	err := up.retry.Do(ctx, "upload to", func(ctx context.Context) *remote.Attempt {
		var err error
		props, err = bc.GetProperties(ctx, nil)
		a := classifyAzure(err)
		if a != nil && a.Kind == blobio.ErrNotFound {
			notFound = true
			return nil
		}
		// Only a missing read permission makes the upload blind; any other refusal (a
		// signature that does not match, an expired SAS) would refuse the upload too.
		if a != nil && a.Kind == blobio.ErrAuth && (a.Code == codePermissionMismatch || up.sasLacks("r")) {
			up.blind = true
			return nil
		}
		return a
	})
	if err != nil {
		return nil, err
	}
	if up.blind {
		slog.Default().Warn("the credential cannot read the blob's properties, so an interrupted upload cannot resume and an existing blob cannot be recognised; a SAS with sp=rcw can")
		return nil, nil
	}
	if notFound {
		return nil, nil
	}
	return &props, nil
}

// decide checks an existing blob against the image: already there (done), replaceable, or
// refused. resumable reports an interrupted page blob upload of this image.
func (up *uploader) decide(props *blob.GetPropertiesResponse, wantType string) (done, resumable bool, err error) {
	if props == nil {
		return false, false, nil
	}
	meta := lowerKeys(props.Metadata)
	sameImage := meta[MetaID] == up.id && meta[MetaSize] == strconv.FormatInt(up.size, 10)
	typ := ""
	if props.BlobType != nil {
		typ = string(*props.BlobType)
	}
	if sameImage && typ == wantType {
		if meta[MetaState] == "uploading" {
			return false, true, nil
		}
		up.result.AlreadyUploaded = true
		up.progress(up.size)
		return true, false, nil
	}
	if up.o.Overwrite {
		return false, false, nil
	}
	what := "a different image"
	switch {
	case meta[MetaID] == "":
		what = "a blob that is not an encfs upload"
	case sameImage:
		what = "this image as a " + typ
	case meta[MetaState] == "uploading":
		what = "an unfinished upload of a different image"
	}
	return false, false, &blobio.Error{Op: "upload to", Source: up.name, Kind: ErrExists,
		Err: fmt.Errorf("the blob already holds %s (%s bytes, id %.16s)", what, orDash(meta[MetaSize]), orDash(meta[MetaID])), Azure: true}
}

// The upload's own failures, besides the blobio kinds.
var (
	// ErrExists reports that the target blob holds something else.
	ErrExists = errors.New("blob exists")
	// ErrNoWriteCredential: neither a SAS, a connection string nor an identity was found for
	// an upload, and anonymous access cannot write.
	ErrNoWriteCredential = errors.New("no credential that can write")
	// ErrTooManyBlocks: the image needs more blocks than a block blob may have at this block
	// size.
	ErrTooManyBlocks = errors.New("too many blocks for one block blob")
)

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (up *uploader) blockBlob(ctx context.Context) error {
	bb, err := newBlockBlobClient(up.u, up.cred, up.o.Open)
	if err != nil {
		return err
	}
	props, err := up.existing(ctx, bb.BlobClient())
	if err != nil {
		return err
	}
	done, _, err := up.decide(props, "BlockBlob")
	if err != nil || done {
		return err
	}
	// Blocks an interrupted run of this image staged (same IDs, same sizes) are kept.
	if props != nil && props.BlobType != nil && *props.BlobType != blob.BlobTypeBlockBlob {
		// Overwrite of a page or append blob: blocks cannot be staged on it, so delete it first.
		etag := props.ETag
		err := up.retry.Do(ctx, "delete the old blob at", func(ctx context.Context) *remote.Attempt {
			_, err := bb.Delete(ctx, &blob.DeleteOptions{AccessConditions: &blob.AccessConditions{
				ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: etag}}})
			return classifyAzure(err)
		})
		if err != nil {
			return err
		}
		props = nil
	}
	staged := map[string]int64{}
	err = up.retry.Do(ctx, "list staged blocks of", func(ctx context.Context) *remote.Attempt {
		resp, err := bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
		a := classifyAzure(err)
		if a != nil {
			if a.Kind == blobio.ErrNotFound || (up.blind && a.Kind == blobio.ErrAuth) {
				return nil
			}
			return a
		}
		for _, b := range resp.UncommittedBlocks {
			if b.Name != nil && b.Size != nil {
				staged[*b.Name] = *b.Size
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := int((up.size + up.o.BlockSize - 1) / up.o.BlockSize)
	if n > 50000 {
		return fmt.Errorf("upload: %w: %d blocks of %d bytes exceed the 50,000 a block blob may have", ErrTooManyBlocks, n, up.o.BlockSize)
	}
	ids := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(up.o.Workers)
	for i := range n {
		ids[i] = blockID(up.id, up.o.BlockSize, i)
		off := int64(i) * up.o.BlockSize
		length := min(up.o.BlockSize, up.size-off)
		if sz, ok := staged[ids[i]]; ok && sz == length {
			up.addResumed(length)
			continue
		}
		g.Go(func() error {
			buf := make([]byte, length)
			if _, err := up.f.ReadAt(buf, off); err != nil {
				return fmt.Errorf("upload: reading the image at %d: %w", off, err)
			}
			sum := md5.Sum(buf)
			err := up.retry.Do(gctx, fmt.Sprintf("stage block %d of", i), func(ctx context.Context) *remote.Attempt {
				_, err := bb.StageBlock(ctx, ids[i], readSeekNopCloser{bytes.NewReader(buf)},
					&blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum[:])})
				return classifyAzure(err)
			})
			if err != nil {
				return err
			}
			up.addSent(length)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	ac := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{}}
	if props != nil {
		ac.ModifiedAccessConditions.IfMatch = props.ETag // replace exactly what was checked
	} else if !(up.blind && up.o.Overwrite) {
		any := azcore.ETagAny
		ac.ModifiedAccessConditions.IfNoneMatch = &any // nobody created it meanwhile
	}
	ct := "application/octet-stream"
	return up.retry.Do(ctx, "commit", func(ctx context.Context) *remote.Attempt {
		_, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
			Metadata:         up.metadata(false),
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &ct},
			AccessConditions: ac,
		})
		a := classifyAzure(err)
		if a != nil && (a.Status == 409 || a.Status == 412) {
			a.Kind, a.Retryable = blobio.ErrChanged, false
			a.Err = errors.New("the blob changed while uploading; run the upload again")
			if up.blind {
				a.Kind = ErrExists
				a.Err = errors.New("a blob already exists there")
			}
		}
		return a
	})
}

func (up *uploader) metadata(uploading bool) map[string]*string {
	id, size := up.id, strconv.FormatInt(up.size, 10)
	m := map[string]*string{MetaID: &id, MetaSize: &size}
	if uploading {
		s := "uploading"
		m[MetaState] = &s
	}
	return m
}

func (up *uploader) addSent(n int64) {
	up.sent.Lock()
	up.result.SentBytes += n
	up.sent.Unlock()
	up.progress(n)
}

func (up *uploader) addResumed(n int64) {
	up.sent.Lock()
	up.result.ResumedBytes += n
	up.sent.Unlock()
	up.progress(n)
}

func (up *uploader) pageBlob(ctx context.Context) error {
	pb, err := newPageBlobClient(up.u, up.cred, up.o.Open)
	if err != nil {
		return err
	}
	props, err := up.existing(ctx, pb.BlobClient())
	if err != nil {
		return err
	}
	done, resumable, err := up.decide(props, "PageBlob")
	if err != nil || done {
		return err
	}
	padded := (up.size + pageSize - 1) / pageSize * pageSize
	written := map[int64]bool{} // page-write indexes already there
	if resumable && props.ContentLength != nil && *props.ContentLength == padded {
		if err := up.listWritten(ctx, pb, written); err != nil {
			return err
		}
	} else {
		ac := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{}}
		if props != nil {
			ac.ModifiedAccessConditions.IfMatch = props.ETag
		} else if !(up.blind && up.o.Overwrite) {
			any := azcore.ETagAny
			ac.ModifiedAccessConditions.IfNoneMatch = &any
		}
		err := up.retry.Do(ctx, "create page blob", func(ctx context.Context) *remote.Attempt {
			_, err := pb.Create(ctx, padded, &pageblob.CreateOptions{Metadata: up.metadata(true), AccessConditions: ac})
			return classifyAzure(err)
		})
		if err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(up.o.Workers)
	for i := int64(0); i*maxPageWrite < padded; i++ {
		off := i * maxPageWrite
		length := min(int64(maxPageWrite), padded-off)
		if written[i] {
			up.addResumed(min(length, up.size-off))
			continue
		}
		g.Go(func() error {
			buf := make([]byte, length) // the tail past the image stays zero: padding
			if _, err := up.f.ReadAt(buf[:min(length, up.size-off)], off); err != nil && err != io.EOF {
				return fmt.Errorf("upload: reading the image at %d: %w", off, err)
			}
			real := min(length, up.size-off)
			if allZero(buf) { // a new page blob reads as zeros: nothing to send
				up.addSent(real)
				return nil
			}
			sum := md5.Sum(buf)
			err := up.retry.Do(gctx, fmt.Sprintf("write pages at %d of", off), func(ctx context.Context) *remote.Attempt {
				_, err := pb.UploadPages(ctx, readSeekNopCloser{bytes.NewReader(buf)}, blob.HTTPRange{Offset: off, Count: length},
					&pageblob.UploadPagesOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum[:])})
				return classifyAzure(err)
			})
			if err != nil {
				return err
			}
			up.addSent(real)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return up.retry.Do(ctx, "finish", func(ctx context.Context) *remote.Attempt {
		_, err := pb.SetMetadata(ctx, up.metadata(false), nil)
		return classifyAzure(err)
	})
}

// listWritten marks the page writes of an interrupted upload that are wholly present. Each
// write is one UploadPages call, which the service applies atomically.
func (up *uploader) listWritten(ctx context.Context, pb *pageblob.Client, written map[int64]bool) error {
	type rng struct{ start, end int64 }
	var ranges []rng
	pager := pb.NewGetPageRangesPager(nil)
	for pager.More() {
		var page pageblob.GetPageRangesResponse
		err := up.retry.Do(ctx, "list pages of", func(ctx context.Context) *remote.Attempt {
			var err error
			page, err = pager.NextPage(ctx)
			return classifyAzure(err)
		})
		if err != nil {
			return err
		}
		for _, r := range page.PageRange {
			if r.Start != nil && r.End != nil {
				ranges = append(ranges, rng{*r.Start, *r.End})
			}
		}
	}
	padded := (up.size + pageSize - 1) / pageSize * pageSize
	covered := func(start, end int64) bool {
		for _, r := range ranges {
			if r.start <= start && end <= r.end {
				return true
			}
		}
		return false
	}
	for i := int64(0); i*maxPageWrite < padded; i++ {
		if covered(i*maxPageWrite, min((i+1)*maxPageWrite, padded)-1) {
			written[i] = true
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

func newBlockBlobClient(u *url.URL, c azureCred, opts Options) (*blockblob.Client, error) {
	co := &blockblob.ClientOptions{ClientOptions: azureClientOptions(opts).ClientOptions}
	switch {
	case c.token != nil:
		return blockblob.NewClient(u.String(), c.token, co)
	case c.shared != nil:
		return blockblob.NewClientWithSharedKeyCredential(u.String(), c.shared, co)
	case c.sasURL != "":
		return blockblob.NewClientWithNoCredential(c.sasURL, co)
	default:
		return blockblob.NewClientWithNoCredential(u.String(), co)
	}
}

func newPageBlobClient(u *url.URL, c azureCred, opts Options) (*pageblob.Client, error) {
	co := &pageblob.ClientOptions{ClientOptions: azureClientOptions(opts).ClientOptions}
	switch {
	case c.token != nil:
		return pageblob.NewClient(u.String(), c.token, co)
	case c.shared != nil:
		return pageblob.NewClientWithSharedKeyCredential(u.String(), c.shared, co)
	case c.sasURL != "":
		return pageblob.NewClientWithNoCredential(c.sasURL, co)
	default:
		return pageblob.NewClientWithNoCredential(u.String(), co)
	}
}
