package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/encfs/encfs/blobio"
	azureblob "github.com/encfs/encfs/blobio/azure" // the name azure is the --azure flag here
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// uploadOptions are the flags of `encfs upload`.
type uploadOptions struct {
	pageBlob  bool
	overwrite bool
	blockMiB  int64
	parallel  int
	clientID  string
	auth      string
	azure     bool
	quiet     bool
	check     bool
	loc       *locationFlags
}

func newUploadCommand() *cobra.Command {
	opts := &uploadOptions{}
	cmd := &cobra.Command{
		Use:   "upload IMAGE URL",
		Short: "Upload an image to Azure Blob Storage (resumable, checked by the service)",
		Long: `Upload copies a packed image to an Azure blob: a block blob by default (blocks staged in
parallel, each checked by the service against its MD5, then committed), or a page blob with
--page-blob. The container is created when the credential allows. Running the same command
again after an interruption resumes it; uploading an image that is already there does nothing;
replacing a blob that holds a different image needs --overwrite.

URL is https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB (or another cloud's or Azurite's
endpoint). Credentials, in order: a SAS in the URL (needs create and write permission),
AZURE_STORAGE_CONNECTION_STRING, or a Microsoft Entra identity (managed identity, --client-id
for a user-assigned one, workload identity, az login) with the Storage Blob Data Contributor
role.

A SAS URL on the command line can be read by every local user: give it with --url-file FILE
or in ENCFS_URL instead (then leave URL out); a connection string comes from
--connection-string-file or AZURE_STORAGE_CONNECTION_STRING.

--check URL only checks, writing nothing, that an upload to URL can work (scripts run it
before a long pack).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.check {
				return locationArgs(opts.loc, 1, 1)(cmd, args)
			}
			return locationArgs(opts.loc, 2, 2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpload(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.pageBlob, "page-blob", false, "upload a page blob (padded to 512 bytes; the real size goes in metadata encfs_size)")
	f.BoolVar(&opts.overwrite, "overwrite", false, "replace a blob that holds a different image")
	f.Int64Var(&opts.blockMiB, "block-size", 8, "block size in MiB for block blobs")
	f.IntVar(&opts.parallel, "parallel", 8, "blocks or pages in flight")
	f.StringVar(&opts.clientID, "client-id", "", "client ID of a user-assigned managed identity (or workload identity app)")
	f.StringVar(&opts.auth, "auth", "auto", "credential: auto, sas, identity or connection-string")
	f.BoolVar(&opts.azure, "azure", false, "treat URL as Azure Blob Storage even if its host does not look like it")
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "no progress bar")
	f.BoolVar(&opts.check, "check", false, "only check, writing nothing, that the credential can upload to URL (then give URL alone)")
	opts.loc = addLocationFlags(cmd)
	return cmd
}

// runUpload uploads the image args[0] to the URL args[1] (or only checks, with --check).
func runUpload(ctx context.Context, opts *uploadOptions, args []string, stdout io.Writer) error {
	if opts.check {
		return checkUpload(ctx, opts, args, stdout)
	}
	// The URL is the last argument: take it out, then put it back from wherever it came.
	var rest []string
	if len(args) == 2 && opts.loc.urlFile == "" {
		rest = args[1:]
	}
	url, _, err := opts.loc.split(rest, 1)
	if err != nil {
		return err
	}
	args = []string{args[0], url}
	connString, err := opts.loc.connectionString()
	if err != nil {
		return err
	}
	a, err := azureblob.ParseAuth(opts.auth)
	if err != nil {
		return err
	}
	if opts.blockMiB <= 0 || opts.blockMiB > 4000 {
		return fmt.Errorf("--block-size %d: give a size in MiB from 1 to 4000", opts.blockMiB)
	}
	if opts.parallel <= 0 || opts.parallel > 256 {
		return fmt.Errorf("--parallel %d: give 1 to 256", opts.parallel)
	}
	st, err := os.Stat(args[0])
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	uo := azureblob.UploadOptions{
		PageBlob: opts.pageBlob, Overwrite: opts.overwrite, BlockSize: opts.blockMiB << 20, Workers: opts.parallel,
		Open: azureblob.Options{Auth: a, ClientID: opts.clientID, AnyHost: opts.azure, ConnectionString: connString},
	}
	var bar *progressbar.ProgressBar
	if !opts.quiet {
		bar = newProgress(st.Size(), "uploading")
	}
	if bar != nil {
		uo.Progress = func(n int64) { _ = bar.Add64(n) }
	}
	start := time.Now()
	res, err := azureblob.Upload(ctx, args[0], args[1], uo)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil && ctx.Err() != nil {
		kept := "the blocks already sent stay in the service, uncommitted, for up to 7 days; the blob is unchanged"
		if opts.pageBlob {
			kept = "the pages already written are kept and the blob is marked unfinished (mounts refuse it)"
		}
		return fmt.Errorf("interrupted: %s; run the same command again to resume", kept)
	}
	if err != nil {
		return err
	}
	switch {
	case res.AlreadyUploaded:
		fmt.Fprintf(stdout, "%s already holds this image (%d bytes, id %.16s); nothing to do\n", res.URL, res.Size, res.ID)
	default:
		secs := time.Since(start).Seconds()
		fmt.Fprintf(stdout, "uploaded %s to %s as a %s: %d bytes sent in %.1fs (%.1f MB/s)",
			args[0], res.URL, res.BlobType, res.SentBytes, secs, float64(res.SentBytes)/1e6/max(secs, 1e-3))
		if res.ResumedBytes > 0 {
			fmt.Fprintf(stdout, ", %d bytes already there from an interrupted upload", res.ResumedBytes)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// checkUpload runs `encfs upload --check [URL]`.
func checkUpload(ctx context.Context, opts *uploadOptions, args []string, stdout io.Writer) error {
	url, _, err := opts.loc.split(args, 1)
	if err != nil {
		return err
	}
	a, err := azureblob.ParseAuth(opts.auth)
	if err != nil {
		return err
	}
	conn, err := opts.loc.connectionString()
	if err != nil {
		return err
	}
	if err := azureblob.CheckUpload(ctx, url, azureblob.Options{Auth: a, ClientID: opts.clientID, AnyHost: opts.azure, ConnectionString: conn}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "an upload to %s can go ahead: the credential is accepted\n", blobio.Display(url))
	return nil
}
