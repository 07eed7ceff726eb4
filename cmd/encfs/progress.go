package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newProgress returns a byte progress bar on standard error when it is a terminal, else nil;
// a nil bar is quiet. total -1 means unknown.
func newProgress(total int64, desc string) *progressbar.ProgressBar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return newProgressTo(os.Stderr, total, desc)
}

// newProgressTo is a byte progress bar on w: bytes done of total, rate, elapsed and time left.
func newProgressTo(w io.Writer, total int64, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(250*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
	)
}

// packProgress shows a pack's bytes and files done out of the totals of a pre-walk
// (pack.Measure), with the time left. Its methods are safe for concurrent use.
type packProgress struct {
	bar        *progressbar.ProgressBar
	files      atomic.Int64
	totalFiles int64
}

func newPackProgress(w io.Writer, totalFiles, totalBytes int64) *packProgress {
	p := &packProgress{totalFiles: totalFiles}
	p.bar = newProgressTo(w, max(totalBytes, 1), p.describe(0))
	// Rendering the empty bar now starts the throttle, so the first rate shown is measured over
	// a quarter of a second at least, not over the microseconds of the first buffered read.
	_ = p.bar.RenderBlank()
	return p
}

func (p *packProgress) describe(files int64) string {
	return fmt.Sprintf("packing %d/%d files", files, p.totalFiles)
}

func (p *packProgress) addBytes(n int64) { _ = p.bar.Add64(n) }

func (p *packProgress) fileDone() { p.bar.Describe(p.describe(p.files.Add(1))) }

func (p *packProgress) finish() { _ = p.bar.Finish() }
