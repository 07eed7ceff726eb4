package pack

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Totals are what a tree holds, counted the way Pack counts: regular files and their bytes.
type Totals struct {
	Files, Bytes int64
}

// Measure walks srcDir quickly (names and lstat only, no data) to count what Pack will read,
// so that progress can show a total and an estimate of the time left. Entries it cannot read
// are skipped: Pack reports them.
func Measure(ctx context.Context, srcDir string) (Totals, error) {
	var t Totals
	seen := map[[2]uint64]bool{} // hard-linked files are packed once
	err := filepath.WalkDir(srcDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		t.Files++
		t.Bytes += info.Size()
		return nil
	})
	return t, err
}
