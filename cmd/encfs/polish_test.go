package main

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestVersion prints the module version, the VCS revision (or why there is none) and the Go
// version.
func TestVersion(t *testing.T) {
	out := mustRun(t, "--version")
	t.Logf("%s", out)
	if !strings.HasPrefix(out, "encfs ") || !strings.Contains(out, "revision ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: %q", out)
	}
}

// TestUsageOnWrongArguments prints the command's usage after the error, and exits 2.
func TestUsageOnWrongArguments(t *testing.T) {
	for _, args := range [][]string{{"pack"}, {"pack", "--no-such-flag"}, {"upload", "a", "b", "c"}} {
		out, code := run(t, args...)
		if code != 2 || !strings.Contains(out, "Usage:\n  encfs "+args[0]) {
			t.Errorf("encfs %s: exit %d, want 2 and the usage:\n%s", strings.Join(args, " "), code, out)
		}
	}
	// An error that is not about the command line prints no usage.
	out, _ := run(t, "inspect", "/no/such/image")
	if strings.Contains(out, "Usage:") {
		t.Errorf("usage printed for a missing file:\n%s", out)
	}
}

// TestLogDurations writes durations as text in both log formats.
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		h, err := newLogHandler(&buf, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		slog.New(h).Info("waited", "waited", 10*time.Second, "took", 1234567*time.Nanosecond, "short", 42*time.Microsecond)
		got := buf.String()
		want := map[string][]string{
			"json": {`"waited":"10s"`, `"took":"1.235ms"`, `"short":"42µs"`},
			"text": {`waited=10s`, `took=1.235ms`, `short=42µs`},
		}[format]
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s log lacks %s: %s", format, w, got)
			}
		}
	}
}
