package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// A bench.sh report is markdown: a paragraph saying when, where and at which commit it ran,
// then one "### " section per benchmark with a table. These functions read those tables back.

// table is a markdown table: its header cells and rows of cells, trimmed.
type table struct {
	header []string
	rows   [][]string
}

// section returns the text of the "### " section whose heading starts with prefix (heading
// included), up to the next heading of level 2 or 3; "" if there is none.
func section(md, prefix string) (heading, body string) {
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "### "+prefix) {
			continue
		}
		end := len(lines)
		for j := i + 1; j < len(lines); j++ {
			if strings.HasPrefix(lines[j], "### ") || strings.HasPrefix(lines[j], "## ") {
				end = j
				break
			}
		}
		return strings.TrimPrefix(l, "### "), strings.Join(lines[i+1:end], "\n")
	}
	return "", ""
}

// firstTable returns the first markdown table in text.
func firstTable(text string) (table, bool) {
	var t table
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			if t.header != nil {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case t.header == nil:
			t.header = cells
		case strings.Trim(strings.Join(cells, ""), "-: ") == "": // the |---|---:| line
		default:
			t.rows = append(t.rows, cells)
		}
	}
	return t, t.header != nil
}

// col returns the index of the first header cell equal to name, or -1.
func (t table) col(name string) int {
	for i, h := range t.header {
		if h == name {
			return i
		}
	}
	return -1
}

// cell returns row r's cell in column i, "" when the row is short or i is -1.
func cell(r []string, i int) string {
	if i < 0 || i >= len(r) {
		return ""
	}
	return r[i]
}

var number = regexp.MustCompile(`^[0-9][0-9,]*(\.[0-9]+)?`)

// parseNumber reads the number at the start of s ("1,144", "490 MB/s", "83.9"); NaN for "n/a"
// or anything else that does not start with a number.
func parseNumber(s string) float64 {
	m := number.FindString(strings.TrimSpace(s))
	if m == "" {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(m, ",", ""), 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// parseRange reads "749-1129" (or "749-1,129"); NaNs when it is not a range.
func parseRange(s string) (lo, hi float64) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return math.NaN(), math.NaN()
	}
	return parseNumber(a), parseNumber(b)
}

var (
	runDate   = regexp.MustCompile(`run on (\d{4}-\d\d-\d\d) from (\d\d:\d\d)`)
	runCommit = regexp.MustCompile(`encfs at ([0-9a-f]{7,40})( \+ uncommitted changes)?`)
	runCount  = regexp.MustCompile(`median of (\d+) runs`)
	runCPUs   = regexp.MustCompile(`\((\d+) vCPUs`)
)

// provenance is the subtitle of every chart of a report: when, at which commit, on what.
func provenance(md string) string {
	var parts []string
	if m := runDate.FindStringSubmatch(md); m != nil {
		parts = append(parts, m[1]+" "+m[2]+" UTC")
	}
	if m := runCommit.FindStringSubmatch(md); m != nil {
		c := "encfs " + m[1]
		if m[2] != "" {
			c += "+changes"
		}
		parts = append(parts, c)
	}
	if m := runCPUs.FindStringSubmatch(md); m != nil {
		parts = append(parts, m[1]+" shared vCPUs")
	}
	if m := runCount.FindStringSubmatch(md); m != nil {
		parts = append(parts, "median of "+m[1]+" cold runs, whiskers: their range")
	}
	return strings.Join(parts, " · ")
}

// targetLabels name bench.sh's targets for a reader of the chart.
var targetLabels = map[string]string{
	"encfs":     "encfs",
	"gocryptfs": "gocryptfs",
	"loopback":  "loopback (go-fuse, no crypto)",
	"plain":     "plain (the disk, no FUSE)",
}

// chartsOf builds a chart for each benchmark section the report holds.
func chartsOf(md string) ([]*Chart, error) {
	sub := provenance(md)
	var charts []*Chart
	for _, b := range []struct {
		name, section, value, unit, what string
	}{
		{"sequential", "Sequential read", "cold: MB/s", "MB/s", "Sequential read, page cache dropped"},
		{"shuffled", "Shuffled reads", "files/s", "files/s", "Shuffled small files"},
	} {
		heading, body := section(md, b.section)
		if heading == "" {
			continue
		}
		t, ok := firstTable(body)
		if !ok {
			return nil, fmt.Errorf("section %q has no table", heading)
		}
		vi, ri, ti, qi := t.col(b.value), t.col("(range)"), t.col("target"), t.col("encfs / target")
		if vi < 0 || ti < 0 {
			return nil, fmt.Errorf("section %q: no %q or target column", heading, b.value)
		}
		c := &Chart{Name: b.name, Title: b.what + ": " + strings.TrimPrefix(heading, b.section+", "), Subtitle: sub, Unit: b.unit}
		var ratios []string
		for _, r := range t.rows {
			target := cell(r, ti)
			label, known := targetLabels[target]
			if !known {
				label = target
			}
			lo, hi := parseRange(cell(r, ri))
			c.Bars = append(c.Bars, Bar{Label: label, Value: parseNumber(cell(r, vi)), Lo: lo, Hi: hi, Highlight: target == "encfs"})
			// The report's own ratio, of the unrounded medians.
			if q := parseNumber(cell(r, qi)); target != "encfs" && !math.IsNaN(q) {
				ratios = append(ratios, fmt.Sprintf("%.2fx %s", q, target))
			}
		}
		if len(ratios) > 0 {
			c.Note = "encfs = " + strings.Join(ratios, ", ")
		}
		charts = append(charts, c)
	}

	if heading, body := section(md, "Streaming from Azurite"); heading != "" {
		t, ok := firstTable(body)
		if !ok {
			return nil, fmt.Errorf("section %q has no table", heading)
		}
		mi, vi, ri := t.col("measurement"), t.col("median"), t.col("(range)")
		if mi < 0 || vi < 0 {
			return nil, fmt.Errorf("section %q: no measurement or median column", heading)
		}
		c := &Chart{Name: "streaming", Title: "Streaming a blob from Azurite on the same machine", Subtitle: sub, Unit: "MB/s",
			Note: "plain download: 8 MiB range GETs, 8 in flight, into reused buffers"}
		for _, row := range []struct{ prefix, label string }{
			{"sequential read of the", "encfs mount URL"},
			{"plain parallel download", "plain download"},
			{"the same with azblob", "azblob DownloadBuffer"},
		} {
			for _, r := range t.rows {
				if strings.HasPrefix(strings.TrimLeft(cell(r, mi), "`"), row.prefix) {
					lo, hi := parseRange(cell(r, ri))
					c.Bars = append(c.Bars, Bar{Label: row.label, Value: parseNumber(cell(r, vi)), Lo: lo, Hi: hi, Highlight: row.label == "encfs mount URL"})
				}
			}
		}
		for _, r := range t.rows {
			if q := parseNumber(cell(r, vi)); cell(r, mi) == "mount / plain download" && !math.IsNaN(q) {
				c.Note = fmt.Sprintf("encfs = %.2fx the plain download (8 MiB range GETs, 8 in flight, into reused buffers)", q)
			}
		}
		if len(c.Bars) > 0 {
			charts = append(charts, c)
		}
	}
	return charts, nil
}
