// Command benchchart draws the charts of one scripts/bench.sh report: for each benchmark, encfs
// against gocryptfs, the no-crypto loopback mount and the plain file or plain download, as SVG
// bar charts with each figure's range over the runs.
//
//	benchchart -out DIR -prefix NAME REPORT.md
//
// It reads the report's own tables (so any dated report in docs/bench/ can be drawn again),
// writes DIR/NAME-sequential.svg, DIR/NAME-shuffled.svg and DIR/NAME-streaming.svg for the
// benchmarks the report holds, and prints one markdown image link per chart, relative to DIR.
//
// It is a benchmark tool, not part of encfs: it lives under scripts/ and bench.sh runs it. The
// SVG is written by hand (a few rectangles and labels) rather than with a plotting library, so
// that no charting dependency enters the encfs module.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", ".", "directory for the SVG files")
	prefix := flag.String("prefix", "bench", "file name prefix of the SVG files (bench.sh uses the report's date)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: benchchart [-out DIR] [-prefix NAME] REPORT.md")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
}

func run(reportFile, outDir, prefix string) error {
	b, err := os.ReadFile(reportFile)
	if err != nil {
		return err
	}
	charts, err := chartsOf(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", reportFile, err)
	}
	if len(charts) == 0 {
		return fmt.Errorf("%s: no benchmark table found (want the sections of a scripts/bench.sh report)", reportFile)
	}
	for _, c := range charts {
		name := prefix + "-" + c.Name + ".svg"
		if err := os.WriteFile(filepath.Join(outDir, name), c.SVG(), 0o644); err != nil {
			return err
		}
		fmt.Printf("![%s](%s)\n", c.Title, name)
	}
	return nil
}
