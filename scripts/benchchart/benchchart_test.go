package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The full run of 2026-11-29 02:03 UTC, as bench.sh wrote it: real figures, not a fixture.
const recordedRun = "../../docs/bench/2026-11-29-0203.md"

func TestChartsOfRecordedRun(t *testing.T) {
	b, err := os.ReadFile(recordedRun)
	if err != nil {
		t.Fatal(err)
	}
	charts, err := chartsOf(string(b))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		label     string
		v, lo, hi float64
		highlight bool
	}
	for name, bars := range map[string][]want{
		"sequential": {{"plain (the disk, no FUSE)", 1000, 749, 1129, false}, {"encfs", 1144, 938, 1190, true}, {"gocryptfs", 663, 573, 701, false}, {"loopback (go-fuse, no crypto)", 898, 770, 1178, false}},
		"shuffled":   {{"plain (the disk, no FUSE)", 9994, 6963, 10267, false}, {"encfs", 4683, 4313, 5810, true}, {"gocryptfs", 2709, 2635, 2887, false}, {"loopback (go-fuse, no crypto)", 4992, 4749, 5842, false}},
		"streaming":  {{"encfs mount URL", 461, 329, 507, true}, {"plain download", 490, 419, 519, false}, {"azblob DownloadBuffer", 457, 381, 560, false}},
	} {
		var c *Chart
		for _, x := range charts {
			if x.Name == name {
				c = x
			}
		}
		if c == nil {
			t.Errorf("no %s chart", name)
			continue
		}
		if len(c.Bars) != len(bars) {
			t.Errorf("%s: %d bars, want %d", name, len(c.Bars), len(bars))
			continue
		}
		for i, w := range bars {
			got := c.Bars[i]
			if got.Label != w.label || got.Value != w.v || got.Lo != w.lo || got.Hi != w.hi || got.Highlight != w.highlight {
				t.Errorf("%s bar %d: %+v, want %+v", name, i, got, w)
			}
		}
		if !strings.Contains(c.Subtitle, "2026-11-29 02:03 UTC") || !strings.Contains(c.Subtitle, "encfs 7d3b942") {
			t.Errorf("%s: subtitle %q lacks the run's date or commit", name, c.Subtitle)
		}
	}
	// The ratios are the report's own (of unrounded medians), not recomputed from rounded ones.
	for name, note := range map[string]string{
		"sequential": "encfs = 1.14x plain, 1.72x gocryptfs, 1.27x loopback",
		"shuffled":   "encfs = 0.47x plain, 1.73x gocryptfs, 0.94x loopback",
		"streaming":  "encfs = 0.94x the plain download",
	} {
		for _, c := range charts {
			if c.Name == name && !strings.HasPrefix(c.Note, note) {
				t.Errorf("%s note %q, want it to start with %q", name, c.Note, note)
			}
		}
	}
}

var rectRE = regexp.MustCompile(`<rect x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)" height="[0-9]+" fill="[^"]+"><title>([^<]+)</title>`)

// TestSVG draws a chart and checks the SVG is well-formed XML and that bar lengths are
// proportional to the values on one scale.
func TestSVG(t *testing.T) {
	c := &Chart{Name: "x", Title: "A & B <test>", Subtitle: "sub", Unit: "MB/s", Note: "note",
		Bars: []Bar{{Label: "encfs", Value: 1200, Lo: 900, Hi: 1300, Highlight: true}, {Label: "other", Value: 600, Lo: math.NaN(), Hi: math.NaN()}, {Label: "missing", Value: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}}}
	svg := c.SVG()
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
	}
	m := rectRE.FindAllStringSubmatch(string(svg), -1)
	if len(m) != 2 {
		t.Fatalf("%d bars drawn, want 2 (the third has no value)\n%s", len(m), svg)
	}
	w0, _ := strconv.ParseFloat(m[0][2], 64)
	w1, _ := strconv.ParseFloat(m[1][2], 64)
	if math.Abs(w0/w1-2) > 0.01 {
		t.Errorf("bar widths %.1f and %.1f for 1200 and 600", w0, w1)
	}
	for _, want := range []string{"not measured", "A &amp; B &lt;test&gt;", "1,200 MB/s"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct{ max, step, axisMax float64 }{
		{1190, 250, 1250}, {10267, 2500, 12500}, {560, 200, 600}, {5, 1, 5}, {0, 1, 1},
	} {
		if step, axisMax := ticks(c.max); step != c.step || axisMax != c.axisMax {
			t.Errorf("ticks(%v) = %v, %v; want %v, %v", c.max, step, axisMax, c.step, c.axisMax)
		}
	}
}

func TestRunWritesChartsAndLinks(t *testing.T) {
	dir := t.TempDir()
	if err := run(recordedRun, dir, "p"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"p-sequential.svg", "p-shuffled.svg", "p-streaming.svg"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Error(err)
		}
	}
	empty := filepath.Join(dir, "empty.md")
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	if err := run(empty, dir, "q"); err == nil || !strings.Contains(err.Error(), "no benchmark table") {
		t.Errorf("a report without tables: %v", err)
	}
}
