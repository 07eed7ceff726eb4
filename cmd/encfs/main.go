// Command encfs packs directories into encrypted, integrity-protected images and mounts them
// with FUSE, fetching the key by SEV-SNP attestation and Azure secure key release in production
// or from a key file in development.
//
// Each subcommand lives in a file of its own: newXCommand builds it, holding its flags in an
// xOptions struct, and runX(ctx, opts, args, writers) does the work, so that a test can call
// it without the command line. main builds the tree with newRootCommand. What `encfs mount`
// runs (key release, sources, mounts, probes) is package sidecar.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// globalOptions are the flags of every command.
type globalOptions struct {
	logLevel  string
	logFormat string
}

// newRootCommand builds the encfs command with every subcommand.
func newRootCommand() *cobra.Command {
	gopts := &globalOptions{}
	root := &cobra.Command{
		Use:           "encfs",
		Short:         "Encrypted, integrity-protected filesystem images for confidential containers",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return setupLogging(gopts.logLevel, gopts.logFormat)
		},
	}
	root.Version = versionString()
	root.SetVersionTemplate("encfs {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{cmd: c, err: err} })
	root.PersistentFlags().StringVar(&gopts.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&gopts.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal, JSON otherwise)")
	root.AddCommand(
		newCatCommand(),
		newDemoCommand(),
		newInspectCommand(),
		newKeyCommand(),
		newKeygenCommand(),
		newLsCommand(),
		newMountCommand(),
		newPackCommand(),
		newRekeyCommand(),
		newSASCommand(),
		newSKRCommand(gopts),
		newUploadCommand(),
		newVerifyCommand(),
		newVolumeCommand(),
	)
	withUsage(root)
	return root
}

// setupLogging installs the process-wide slog logger on standard error.
func setupLogging(level, format string) error {
	if strings.ToLower(format) == "auto" {
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "text"
		} else {
			format = "json"
		}
	}
	h, err := newLogHandler(os.Stderr, level, format)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(h))
	return nil
}

// newLogHandler is the handler of every encfs log: text or JSON at level, with durations
// written the way people read them ("10s", "1.5ms") rather than in nanoseconds.
func newLogHandler(w io.Writer, level, format string) (slog.Handler, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: humanDuration}
	switch strings.ToLower(format) {
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "text":
		return slog.NewTextHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text, json or auto", format)
}

// humanDuration turns a time.Duration attribute into text, rounded to what matters.
func humanDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	d := a.Value.Duration()
	switch {
	case d >= time.Second:
		d = d.Round(time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(time.Microsecond)
	}
	return slog.String(a.Key, d.String())
}

// versionString is the module version, VCS revision and Go version this binary was built
// from, as the Go toolchain recorded them.
func versionString() string {
	version, revision, when, modified := "(devel)", "unknown: built without VCS stamping", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = ", committed " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " with local changes"
				}
			}
		}
	}
	return fmt.Sprintf("%s (revision %s%s%s), %s %s/%s", version, revision, modified, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// usageError is a command line that does not fit the command: the error is printed with the
// command's usage.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// withUsage makes every argument check of the tree under c report a usageError.
func withUsage(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		withUsage(sub)
	}
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// A closed standard output (encfs demo DIR | head) must not kill a process that has a
	// filesystem mounted, which would leave a dead mount: writes fail with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := startCPUProfile()
	if err == nil {
		err = newRootCommand().ExecuteContext(ctx)
		stopProfile()
	}
	stop()
	if errors.Is(err, syscall.EPIPE) {
		os.Exit(141) // the reader went away (cat ... | head): quietly, as SIGPIPE would
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "encfs:", err)
		if a := advice(err); a != "" {
			fmt.Fprintln(os.Stderr, "encfs: hint:", a)
		}
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "\n%s", ue.cmd.UsageString())
			os.Exit(2)
		}
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
