package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Chart is one horizontal bar chart: one bar per target, the subject highlighted.
type Chart struct {
	Name     string // file name part: sequential, shuffled, streaming
	Title    string
	Subtitle string // when, where, how many runs
	Unit     string // of the values, shown on the axis and after each value
	Note     string // one line under the axis, e.g. the ratios
	Bars     []Bar
}

// Bar is one measured figure: the median Value and the range [Lo, Hi] over the runs (NaN when
// the report gives none).
type Bar struct {
	Label     string
	Value     float64
	Lo, Hi    float64
	Highlight bool
}

// Layout, in SVG user units (pixels at 100%).
const (
	plotWidth = 440
	valueRoom = 120 // right of the plot: room for the value after the longest bar
	charWidth = 7.8 // of a 13-pixel label, generously, to size the label column
	top       = 70  // title and subtitle
	barHeight = 26
	barGap    = 14
	axisRoom  = 34 // tick labels and the unit under the plot
	noteRoom  = 24
)

var (
	colorSubject = "#1f5fa8"
	colorOther   = "#9aa5b1"
	colorWhisker = "#2d3748"
	colorGrid    = "#e2e8f0"
	colorText    = "#1a202c"
	colorMuted   = "#4a5568"
)

// SVG renders the chart. Bars with no value are drawn as "not measured".
func (c *Chart) SVG() []byte {
	labelWidth := 120
	for _, b := range c.Bars {
		labelWidth = max(labelWidth, int(float64(len(b.Label))*charWidth)+24)
	}
	width := labelWidth + plotWidth + valueRoom
	plotW := float64(plotWidth)
	plotH := len(c.Bars)*(barHeight+barGap) - barGap
	height := top + plotH + axisRoom + 10
	if c.Note != "" {
		height += noteRoom
	}
	maxV := 0.0
	for _, b := range c.Bars {
		for _, v := range []float64{b.Value, b.Hi} {
			if !math.IsNaN(v) && v > maxV {
				maxV = v
			}
		}
	}
	step, axisMax := ticks(maxV)
	x := func(v float64) float64 { return float64(labelWidth) + v/axisMax*plotW }

	var s bytes.Buffer
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	text(&s, 16, 26, 17, "bold", colorText, "start", c.Title)
	text(&s, 16, 48, 12, "normal", colorMuted, "start", c.Subtitle)

	// Grid and axis.
	for v := 0.0; v <= axisMax+step/2; v += step {
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1"/>`+"\n", x(v), top-6, x(v), top+plotH+4, colorGrid)
		text(&s, x(v), float64(top+plotH+20), 11, "normal", colorMuted, "middle", group(v))
	}
	text(&s, float64(labelWidth)+plotW/2, float64(top+plotH+axisRoom), 11, "normal", colorMuted, "middle", c.Unit+", more is better")

	for i, b := range c.Bars {
		y := float64(top + i*(barHeight+barGap))
		mid := y + barHeight/2
		weight := "normal"
		fill := colorOther
		if b.Highlight {
			weight, fill = "bold", colorSubject
		}
		text(&s, float64(labelWidth-10), mid+4, 13, weight, colorText, "end", b.Label)
		if math.IsNaN(b.Value) {
			text(&s, float64(labelWidth+6), mid+4, 12, "normal", colorMuted, "start", "not measured")
			continue
		}
		fmt.Fprintf(&s, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s: %s %s</title></rect>`+"\n",
			labelWidth, y, x(b.Value)-float64(labelWidth), barHeight, fill, esc(b.Label), group(b.Value), esc(c.Unit))
		end := x(b.Value)
		if !math.IsNaN(b.Lo) && !math.IsNaN(b.Hi) {
			lo, hi := x(b.Lo), x(b.Hi)
			fmt.Fprintf(&s, `<g stroke="%s" stroke-width="1.5"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>`+"\n",
				colorWhisker, lo, mid, hi, mid, lo, mid-6, lo, mid+6, hi, mid-6, hi, mid+6)
			end = math.Max(end, hi)
		}
		text(&s, end+8, mid+4, 13, weight, colorText, "start", group(b.Value)+" "+c.Unit)
	}
	if c.Note != "" {
		text(&s, 16, float64(height-14), 12, "normal", colorText, "start", c.Note)
	}
	s.WriteString("</svg>\n")
	return s.Bytes()
}

// ticks chooses a tick step of 1, 2 or 5 times a power of ten giving about five intervals, and
// the axis maximum: the first tick at or above max.
func ticks(max float64) (step, axisMax float64) {
	if max <= 0 {
		return 1, 1
	}
	raw := max / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step = m * pow; step >= raw {
			break
		}
	}
	return step, math.Ceil(max/step) * step
}

// group formats v with thousands separators and no decimals (one below 10).
func group(v float64) string {
	if v < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	digits := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	var out []string
	for len(digits) > 3 {
		out = append([]string{digits[len(digits)-3:]}, out...)
		digits = digits[:len(digits)-3]
	}
	return strings.Join(append([]string{digits}, out...), ",")
}

func text(s *bytes.Buffer, x, y float64, size int, weight, color, anchor, t string) {
	fmt.Fprintf(s, `<text x="%.1f" y="%.1f" font-size="%d" font-weight="%s" fill="%s" text-anchor="%s">%s</text>`+"\n",
		x, y, size, weight, color, anchor, esc(t))
}

func esc(t string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(t))
	return b.String()
}
