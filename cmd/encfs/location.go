package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/encfs/encfs/blobio"
)

// A SAS URL is a password: on the command line every local user can read it (ps,
// /proc/PID/cmdline), and shells keep it in their history. So every command that takes an image
// location also takes it from a file (--url-file) or from the environment (ENCFS_URL), and
// warns when a SAS is given as an argument. Connection strings never go on the command line:
// they come from AZURE_STORAGE_CONNECTION_STRING or --connection-string-file.

// urlEnv is the environment variable an omitted location argument is read from.
const urlEnv = "ENCFS_URL"

// locationFlags are --url-file and --connection-string-file of a command that takes a location.
type locationFlags struct {
	urlFile, connStringFile string
}

func addLocationFlags(cmd *cobra.Command) *locationFlags {
	lf := &locationFlags{}
	cmd.Flags().StringVar(&lf.urlFile, "url-file", "", "read the image URL (with its SAS) from this file instead of an argument, which other local users can see; ENCFS_URL works too")
	cmd.Flags().StringVar(&lf.connStringFile, "connection-string-file", "", "read the storage connection string from this file (else AZURE_STORAGE_CONNECTION_STRING)")
	return lf
}

// split takes the location out of args: from --url-file when given (args are then all the
// rest), else from ENCFS_URL when args has fewer than min entries (the location was left
// out), else args[0]. A SAS in args[0] gets a warning.
func (lf *locationFlags) split(args []string, min int) (loc string, rest []string, err error) {
	if lf.urlFile != "" {
		b, err := os.ReadFile(lf.urlFile)
		if err != nil {
			return "", nil, fmt.Errorf("--url-file: %w", err)
		}
		loc = strings.TrimSpace(string(b))
		if loc == "" || strings.ContainsAny(loc, "\n\r") {
			return "", nil, fmt.Errorf("--url-file %s: want one URL on one line", lf.urlFile)
		}
		return loc, args, nil
	}
	if len(args) < min {
		loc = strings.TrimSpace(os.Getenv(urlEnv))
		if loc == "" {
			return "", nil, fmt.Errorf("the image location is missing: give it as an argument, with --url-file FILE, or in %s", urlEnv)
		}
		return loc, args, nil
	}
	warnSASArgument(args[0])
	return args[0], args[1:], nil
}

// connectionString reads --connection-string-file, if given.
func (lf *locationFlags) connectionString() (string, error) {
	if lf.connStringFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(lf.connStringFile)
	if err != nil {
		return "", fmt.Errorf("--connection-string-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--connection-string-file %s is empty", lf.connStringFile)
	}
	return s, nil
}

// locationArgs accepts min..max arguments, or one fewer when the location comes from
// --url-file or ENCFS_URL.
func locationArgs(lf *locationFlags, min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		lo := min
		hi := max
		if lf.urlFile != "" {
			hi--
		}
		if lf.urlFile != "" || os.Getenv(urlEnv) != "" {
			lo--
		}
		if len(args) < lo && lf.urlFile == "" && os.Getenv(urlEnv) == "" {
			return fmt.Errorf("want %d arguments, got %d; the image location may come from --url-file FILE or %s instead of an argument", lo, len(args), urlEnv)
		}
		if len(args) < lo || len(args) > hi {
			want := fmt.Sprintf("%d", lo)
			if hi != lo {
				want = fmt.Sprintf("%d to %d", lo, hi)
			}
			return fmt.Errorf("want %s arguments, got %d", want, len(args))
		}
		return nil
	}
}

// warnSASArgument warns about a SAS given as a command-line argument.
func warnSASArgument(arg string) {
	if blobio.IsRemote(arg) && strings.Contains(strings.ToLower(arg), "sig=") {
		slog.Warn("the SAS in the command line can be read by every local user (ps, /proc/PID/cmdline) and stays in shell history; pass the URL with --url-file FILE or in " + urlEnv)
	}
}
