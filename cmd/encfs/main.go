// Command encfs packs directories into encrypted, integrity-protected images and mounts them
// with FUSE, fetching the key by SEV-SNP attestation and Azure secure key release in production
// or from a key file in development. Each subcommand lives in a file of its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// rootCmd is the encfs command; subcommands add themselves to it from their init functions.
var rootCmd = &cobra.Command{
	Use:           "encfs",
	Short:         "Encrypted, integrity-protected filesystem images for confidential containers",
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
		return setupLogging(logLevel, logFormat)
	},
}

var (
	logLevel  string
	logFormat string
)

func init() {
	rootCmd.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	rootCmd.PersistentFlags().StringVar(&logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal, JSON otherwise)")
}

// setupLogging installs the process-wide slog logger on standard error.
func setupLogging(level, format string) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "auto":
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "text"
		} else {
			format = "json"
		}
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text, json or auto", format)
	}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	} else {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	slog.SetDefault(slog.New(h))
	return nil
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "encfs:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
