package blockdev

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// failingDevice fails every read with err.
type failingDevice struct {
	Device
	err error
}

func (d failingDevice) ReadAt(context.Context, []byte, int64) error { return d.err }
func (d failingDevice) Size() int64                                 { return 1 << 20 }

// selfLogged is a Device error its Device has logged already, as a volume's integrity failure.
type selfLogged struct{}

func (selfLogged) Error() string { return "integrity check failed: data block 3" }
func (selfLogged) Logged() bool  { return true }

// TestFailLogsOnlyWhatTheDeviceDidNot: every failed read is EIO and counted; blockdev logs a
// Device's error unless the Device says it logged it itself (a volume logs each corrupt block
// once, however often the kernel reads it).
func TestFailLogsOnlyWhatTheDeviceDidNot(t *testing.T) {
	for _, tc := range []struct {
		err   error
		lines int
	}{{selfLogged{}, 0}, {errors.Join(errors.New("read data blocks 3..3"), selfLogged{}), 0}, {errors.New("storage unreachable"), 4}} {
		var logs bytes.Buffer
		f := &fileNode{dev: failingDevice{err: tc.err}, log: slog.New(slog.NewTextHandler(&logs, nil))}
		buf := make([]byte, 4096)
		for range 4 {
			if _, errno := f.Read(context.Background(), nil, buf, 8192); errno != syscall.EIO {
				t.Fatalf("%v: read answered %v, want EIO", tc.err, errno)
			}
		}
		if got := f.stats().ReadErrors; got != 4 {
			t.Errorf("%v: %d read errors counted, want 4", tc.err, got)
		}
		if n := strings.Count(logs.String(), "device read failed"); n != tc.lines {
			t.Errorf("%v: %d log lines, want %d:\n%s", tc.err, n, tc.lines, logs.String())
		}
	}
}
