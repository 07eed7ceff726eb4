package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/encfs/encfs/blobio/azure"
	"github.com/spf13/cobra"
)

// sasOptions are the flags of `encfs sas`.
type sasOptions struct {
	perms, out string
	expires    time.Duration
	container  bool
	loc        *locationFlags
}

func newSASCommand() *cobra.Command {
	opts := &sasOptions{loc: &locationFlags{}}
	cmd := &cobra.Command{
		Use:   "sas [--permissions r] [--expires 24h] [--container] [--out FILE] URL",
		Short: "Make a SAS URL for a blob with the account key (no az CLI needed)",
		Long: `Sign a service SAS for URL (a blob, or its container with --container) with the account key
of the connection string in AZURE_STORAGE_CONNECTION_STRING or --connection-string-file, the
way 'az storage blob generate-sas' does. UseDevelopmentStorage=true signs for Azurite.

The SAS URL is a secret: with --out FILE it is written there (mode 0600) for --url-file,
otherwise to standard output. r is what a mount needs; rcw what an upload needs (c and w to
write, r to resume an interrupted upload).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSAS(opts, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.perms, "permissions", "r", "SAS permissions: r to mount, rcw to upload")
	f.DurationVar(&opts.expires, "expires", 24*time.Hour, "how long the SAS is valid")
	f.BoolVar(&opts.container, "container", false, "sign for the whole container (sr=c) rather than the blob")
	f.StringVar(&opts.out, "out", "", "write the SAS URL to this file (mode 0600) instead of standard output")
	f.StringVar(&opts.loc.connStringFile, "connection-string-file", "", "read the connection string from this file (else AZURE_STORAGE_CONNECTION_STRING)")
	return cmd
}

// runSAS signs a SAS for the URL of args.
func runSAS(opts *sasOptions, args []string, stdout, stderr io.Writer) error {
	conn, err := opts.loc.connectionString()
	if err != nil {
		return err
	}
	s, err := azure.MakeSAS(args[0], azure.SASOptions{Permissions: opts.perms, Expires: opts.expires, Container: opts.container, ConnectionString: conn})
	if err != nil {
		return err
	}
	if opts.out == "" {
		fmt.Fprintln(stdout, s)
		return nil
	}
	if err := os.WriteFile(opts.out, []byte(s+"\n"), 0o600); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(stderr, "wrote a SAS URL (sp=%s, valid for %s) to %s; use it with --url-file %s\n", opts.perms, opts.expires, opts.out, opts.out)
	return nil
}
