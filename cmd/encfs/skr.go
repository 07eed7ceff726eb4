package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/skrapi"
)

// The environment variables the reference SKR sidecar reads; the flags of the same names win.
const (
	envSKRPort     = "Port"
	envSKRLogLevel = "LogLevel"
	envSKRLogFile  = "LogFile"
)

// skrOptions are the settings of `encfs skr`: its flags, and what they fall back to.
type skrOptions struct {
	port, address, skrArgs, logFile string
	maxConcurrent                   int
	requestTimeout                  time.Duration
	// portSet, skrArgsSet, logFileSet and logLevelSet say which flags were given; the others
	// come from the environment, as the reference sidecar reads them.
	portSet, skrArgsSet, logFileSet, logLevelSet bool
	// release is the release configuration every request's release starts from; SkrSideCarArgs
	// is written over it (config.SKRArgs.AttestationConfig). It holds what the settings do not
	// say (the SEV-SNP device, the HTTP client and trust roots); zero in production.
	release keys.AzureSKRConfig
}

func newSKRCommand(gopts *globalOptions) *cobra.Command {
	return skrCommand(gopts, &skrOptions{})
}

// skrCommand builds `encfs skr` on opts.
func skrCommand(gopts *globalOptions, opts *skrOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "skr",
		Short: "Serve the secure key release API (SEV-SNP report, attestation token, key release) to the group's containers",
		Long: `Serve the reference SKR sidecar's REST API in the foreground, so that the other containers of
a confidential container group can get a raw SEV-SNP report, an Azure Attestation token or a key
released from Key Vault / Managed HSM with curl, without linking any attestation code:

  GET  /status        {"message": "STATUS OK"}
  POST /attest/raw    {"runtime_data": BASE64}                       -> {"report": HEX}
  POST /attest/combined {"runtime_data": BASE64}  -> {"evidence", "endorsements", "endorsed_tcb", "uvm_endorsements"}
  POST /attest/maa    {"maa_endpoint", "runtime_data": BASE64}       -> {"token": JWT}
  POST /key/release   {"maa_endpoint", "akv_endpoint", "kid", "access_token" (optional)}
                                                                     -> {"key": "<JWK>"}

Errors are {"error": MESSAGE} with 400 (bad request), 403 (attestation or release failed or
refused; the message names the stage and carries the service's words) or 503 (a service stayed
unavailable, or too many requests: retry).

Configuration as the reference takes it, from the environment: SkrSideCarArgs (base64 JSON with
certcache and identity), Port (default 8080), LogLevel (trace, debug, info, warning, error),
LogFile (append the log there). Each flag below wins over its variable. The API listens on
127.0.0.1 only: the containers of a group share its network namespace, and nothing outside it
should be able to ask for this group's keys. SIGTERM or SIGINT stops it cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			opts.portSet, opts.skrArgsSet, opts.logFileSet = fl.Changed("port"), fl.Changed("skr-args"), fl.Changed("log-file")
			opts.logLevelSet = fl.Changed("log-level")
			return runSKR(cmd.Context(), gopts, opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.port, "port", "", "TCP port to listen on (default $"+envSKRPort+", else 8080; 0 picks a free one)")
	f.StringVar(&opts.address, "address", "127.0.0.1", "address to listen on; anything but loopback exposes the API beyond the container group and is logged as a warning")
	f.StringVar(&opts.skrArgs, "skr-args", "", "base64 JSON settings: certcache, identity (default $"+config.SKREnvVar+")")
	f.StringVar(&opts.logFile, "log-file", "", "append the log to this file instead of standard error (default $"+envSKRLogFile+")")
	f.IntVar(&opts.maxConcurrent, "max-concurrent", skrapi.DefaultMaxConcurrent, "attestations and releases worked on at once; more wait for a slot")
	f.DurationVar(&opts.requestTimeout, "request-timeout", skrapi.DefaultRequestTimeout, "bound on one request, every outbound call and retry included")
	return cmd
}

// runSKR serves the key release API until ctx ends.
func runSKR(ctx context.Context, gopts *globalOptions, opts *skrOptions, stdout io.Writer) error {
	port, skrArgs, logFile := opts.port, opts.skrArgs, opts.logFile
	if !opts.logFileSet {
		logFile = os.Getenv(envSKRLogFile)
	}
	closeLog, err := skrLogging(gopts, opts.logLevelSet, logFile)
	if err != nil {
		return err
	}
	defer closeLog()
	if !opts.portSet {
		port = os.Getenv(envSKRPort)
	}
	if port == "" {
		port = "8080"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q (--port or $%s): want a number from 0 to 65535", port, envSKRPort)
	}
	if !opts.skrArgsSet {
		skrArgs = os.Getenv(config.SKREnvVar)
	}
	args, err := config.ParseSKRArgs(skrArgs)
	if err != nil {
		return err
	}
	base := args.AttestationConfig(opts.release)
	if opts.maxConcurrent < 1 {
		return fmt.Errorf("--max-concurrent %d: want at least 1", opts.maxConcurrent)
	}
	if opts.requestTimeout < time.Second {
		return fmt.Errorf("--request-timeout %v: want at least 1s", opts.requestTimeout)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(opts.address, port))
	if err != nil {
		return fmt.Errorf("key release API: %w", err)
	}
	if !isLoopback(opts.address) {
		slog.Warn("the key release API listens beyond loopback: anything that can reach this address can obtain attestation reports, tokens and this group's keys; use only where the network is the container group's own",
			"addr", ln.Addr().String())
	}
	srv := skrapi.New(skrapi.Options{Base: base, MaxConcurrent: opts.maxConcurrent, RequestTimeout: opts.requestTimeout, Logger: slog.Default()})
	slog.Info("serving the key release API", "addr", ln.Addr().String(), "certcache", args.CertCache.EndpointType, "identity_client_id", args.Identity.ClientID)
	fmt.Fprintf(stdout, "serving the key release API on http://%s (GET /status, POST /attest/raw, /attest/combined, /attest/maa, /key/release)\n", ln.Addr())
	err = srv.Serve(ctx, ln)
	slog.Info("key release API stopped")
	return err
}

// skrLogging sets the process logger for `encfs skr`: the level from --log-level (levelSet), else
// $LogLevel (the reference's names), and the log file when one is given. It returns a function
// that closes the file.
func skrLogging(gopts *globalOptions, levelSet bool, file string) (func(), error) {
	level := gopts.logLevel
	if !levelSet {
		if v := os.Getenv(envSKRLogLevel); v != "" {
			var err error
			if level, err = referenceLogLevel(v); err != nil {
				return nil, err
			}
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	var w io.Writer = os.Stderr
	closeFn := func() {}
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	if file != "" {
		f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file (--log-file or $%s): %w", envSKRLogFile, err)
		}
		w, tty, closeFn = f, false, func() { f.Close() }
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(gopts.logFormat) {
	case "text":
		tty = true
	case "json":
		tty = false
	}
	if tty {
		slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
	} else {
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, opts)))
	}
	return closeFn, nil
}

// referenceLogLevel maps the reference sidecar's logrus level names to slog's.
func referenceLogLevel(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "trace", "debug":
		return "debug", nil
	case "info":
		return "info", nil
	case "warning", "warn":
		return "warn", nil
	case "error", "fatal", "panic":
		return "error", nil
	}
	return "", fmt.Errorf("$%s %q: want trace, debug, info, warning, error, fatal or panic", envSKRLogLevel, v)
}

// isLoopback reports whether a listen address reaches only this network namespace.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
