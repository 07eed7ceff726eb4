package azure

import (
	"context"
	"fmt"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
)

// CheckUpload finds out, without writing anything, whether an upload to location can work: a
// credential that may write, a SAS with create and write permission inside its validity
// window and accepted by the service, and a container that exists or that the credential can
// create. Scripts run it before a long pack, so that a bad SAS fails in a second, not after
// the pack.
func CheckUpload(ctx context.Context, location string, o Options) error {
	u, err := uploadURL(location, o)
	if err != nil {
		return err
	}
	name := redact.DisplayURL(u)
	cred, err := writeCredential(ctx, u, name, "upload to", o)
	if err != nil {
		return err
	}
	facts := newRequestFacts("upload to", u, cred)
	if s := facts.sas; s.present {
		refuse := func(format string, args ...any) error {
			return &blobio.Error{Op: "check upload to", Source: name, Kind: blobio.ErrAuth, Err: fmt.Errorf(format, args...)}
		}
		switch now := time.Now(); {
		case !s.expiry.IsZero() && now.After(s.expiry):
			return refuse("the SAS expired at %s (se=); make a new one", s.expiry.UTC().Format(time.RFC3339))
		case s.lacks("cw") != "":
			return refuse("the SAS allows sp=%s but an upload needs c and w (rcw to resume); make a SAS with sp=rcw", s.perms)
		}
	}
	bc, err := newBlobClient(u.String(), cred, o)
	if err != nil {
		return &blobio.Error{Op: "check upload to", Source: name, Kind: blobio.ErrBadResponse, Err: redact.Err(err)}
	}
	canCreateContainer := !facts.sas.present || facts.sas.account
	r := remote.NewRetrier(o.Retry, nil, name, true)
	err = r.Do(ctx, "check upload to", func(ctx context.Context) *remote.Attempt {
		_, err := bc.GetProperties(ctx, nil)
		a := classifyAzure(err)
		switch {
		case a == nil:
			return nil // the blob exists and the credential reads it: the upload decides what to do
		case a.Kind == blobio.ErrNotFound && a.Code != codeContainerNotFound:
			return nil // no blob yet
		case a.Kind == blobio.ErrNotFound && canCreateContainer:
			return nil // the upload creates the container
		case a.Kind == blobio.ErrAuth && a.Code == codePermissionMismatch && facts.sas.present:
			return nil // a write-only SAS: authenticated, and its permissions were checked above
		}
		return a
	})
	return explain(err, facts)
}
