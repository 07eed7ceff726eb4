package main

import (
	"fmt"
	"os"
	"time"

	"github.com/encfs/encfs/blobio"
	azureblob "github.com/encfs/encfs/blobio/azure" // the name azure is the --azure flag here
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func init() {
	var (
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
	)
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
			if check {
				return locationArgs(loc, 1, 1)(cmd, args)
			}
			return locationArgs(loc, 2, 2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if check {
				return checkUpload(cmd, args, loc, auth, clientID, azure)
			}
			// The URL is the last argument: take it out, then put it back from wherever it came.
			var rest []string
			if len(args) == 2 && loc.urlFile == "" {
				rest = args[1:]
			}
			url, _, err := loc.split(rest, 1)
			if err != nil {
				return err
			}
			args = []string{args[0], url}
			connString, err := loc.connectionString()
			if err != nil {
				return err
			}
			a, err := azureblob.ParseAuth(auth)
			if err != nil {
				return err
			}
			if blockMiB <= 0 || blockMiB > 4000 {
				return fmt.Errorf("--block-size %d: give a size in MiB from 1 to 4000", blockMiB)
			}
			if parallel <= 0 || parallel > 256 {
				return fmt.Errorf("--parallel %d: give 1 to 256", parallel)
			}
			st, err := os.Stat(args[0])
			if err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			opts := azureblob.UploadOptions{
				PageBlob: pageBlob, Overwrite: overwrite, BlockSize: blockMiB << 20, Workers: parallel,
				Open: azureblob.Options{Auth: a, ClientID: clientID, AnyHost: azure, ConnectionString: connString},
			}
			var bar *progressbar.ProgressBar
			if !quiet {
				bar = newProgress(st.Size(), "uploading")
			}
			if bar != nil {
				opts.Progress = func(n int64) { _ = bar.Add64(n) }
			}
			start := time.Now()
			res, err := azureblob.Upload(cmd.Context(), args[0], args[1], opts)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil && cmd.Context().Err() != nil {
				kept := "the blocks already sent stay in the service, uncommitted, for up to 7 days; the blob is unchanged"
				if pageBlob {
					kept = "the pages already written are kept and the blob is marked unfinished (mounts refuse it)"
				}
				return fmt.Errorf("interrupted: %s; run the same command again to resume", kept)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case res.AlreadyUploaded:
				fmt.Fprintf(out, "%s already holds this image (%d bytes, id %.16s); nothing to do\n", res.URL, res.Size, res.ID)
			default:
				secs := time.Since(start).Seconds()
				fmt.Fprintf(out, "uploaded %s to %s as a %s: %d bytes sent in %.1fs (%.1f MB/s)",
					args[0], res.URL, res.BlobType, res.SentBytes, secs, float64(res.SentBytes)/1e6/max(secs, 1e-3))
				if res.ResumedBytes > 0 {
					fmt.Fprintf(out, ", %d bytes already there from an interrupted upload", res.ResumedBytes)
				}
				fmt.Fprintln(out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&pageBlob, "page-blob", false, "upload a page blob (padded to 512 bytes; the real size goes in metadata encfs_size)")
	f.BoolVar(&overwrite, "overwrite", false, "replace a blob that holds a different image")
	f.Int64Var(&blockMiB, "block-size", 8, "block size in MiB for block blobs")
	f.IntVar(&parallel, "parallel", 8, "blocks or pages in flight")
	f.StringVar(&clientID, "client-id", "", "client ID of a user-assigned managed identity (or workload identity app)")
	f.StringVar(&auth, "auth", "auto", "credential: auto, sas, identity or connection-string")
	f.BoolVar(&azure, "azure", false, "treat URL as Azure Blob Storage even if its host does not look like it")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.BoolVar(&check, "check", false, "only check, writing nothing, that the credential can upload to URL (then give URL alone)")
	loc = addLocationFlags(cmd)
	rootCmd.AddCommand(cmd)
}

// checkUpload runs `encfs upload --check [URL]`.
func checkUpload(cmd *cobra.Command, args []string, loc *locationFlags, auth, clientID string, azure bool) error {
	url, _, err := loc.split(args, 1)
	if err != nil {
		return err
	}
	a, err := azureblob.ParseAuth(auth)
	if err != nil {
		return err
	}
	conn, err := loc.connectionString()
	if err != nil {
		return err
	}
	if err := azureblob.CheckUpload(cmd.Context(), url, azureblob.Options{Auth: a, ClientID: clientID, AnyHost: azure, ConnectionString: conn}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "an upload to %s can go ahead: the credential is accepted\n", blobio.Display(url))
	return nil
}
