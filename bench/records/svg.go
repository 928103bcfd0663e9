package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// The chart: three panels of paired bars, the small size against the large one per metric:
// latencies (ms), replica memory (MiB) and creates/s.
const (
	svgH     = 430
	panelTop = 70
	panelH   = 250
	groupW   = 74
	barW     = 26
)

type bar struct {
	label      string
	small, big float64
	bigOnly    bool // measured at the large size only (the expiry)
}

type barPanel struct {
	title, unit string
	bars        []bar
}

func (r *report) svg() []byte {
	var b bytes.Buffer
	if len(r.Sizes) < 2 {
		b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="400" height="60"><text x="10" y="30">incomplete run</text></svg>`)
		return b.Bytes()
	}
	s, l := r.Sizes[0], r.Sizes[len(r.Sizes)-1]
	panels := []barPanel{
		{"Latency (ms)", "ms", []bar{
			{"list p50", s.ListFirst.P50Ms, l.ListFirst.P50Ms, false},
			{"list p99", s.ListFirst.P99Ms, l.ListFirst.P99Ms, false},
			{"deep p99", s.ListDeep.P99Ms, l.ListDeep.P99Ms, false},
			{"17 scopes p99", s.ListMulti.P99Ms, l.ListMulti.P99Ms, false},
			{"get p99", s.Get.P99Ms, l.Get.P99Ms, false},
			{"create p99", s.Create.P99Ms, l.Create.P99Ms, false},
		}},
		{"Replica RSS (MiB)", "MiB", []bar{
			{"warm", s.RSSWarmMiB, l.RSSWarmMiB, false},
			{"after", s.RSSAfterMiB, l.RSSAfterMiB, false},
		}},
		{"Creates/s", "/s", []bar{
			{"1 replica", s.Creates1.PerSec, l.Creates1.PerSec, false},
			{strconv.Itoa(r.Config.Replicas) + " replicas", s.CreatesN.PerSec, l.CreatesN.PerSec, false},
		}},
	}
	if x := r.Expiry; x != nil {
		panels[1].bars = append(panels[1].bars, bar{"expiry peak", 0, x.RSSPeakMiB, true})
	}
	width := 40.0
	for _, p := range panels {
		width += float64(len(p.bars))*groupW + 90
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%d" font-family="sans-serif">`+"\n", width, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="20" y="24" font-size="16" font-weight="bold">exportd control plane: %s vs %s export records</text>`+"\n",
		human(int64(s.Seeded)), human(int64(l.Seeded)))
	fmt.Fprintf(&b, `<rect x="20" y="36" width="12" height="12" fill="#7aa6d8"/><text x="38" y="46" font-size="12">%s records</text>`+"\n", human(int64(s.Seeded)))
	fmt.Fprintf(&b, `<rect x="140" y="36" width="12" height="12" fill="#d8703a"/><text x="158" y="46" font-size="12">%s records</text>`+"\n", human(int64(l.Seeded)))
	left := 70.0
	for _, p := range panels {
		p.draw(&b, left)
		left += float64(len(p.bars))*groupW + 90
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (p barPanel) draw(b *bytes.Buffer, left float64) {
	w := float64(len(p.bars)) * groupW
	top := 0.0
	for _, x := range p.bars {
		top = max(top, x.small, x.big)
	}
	step := niceStep(top / 4)
	top = math.Ceil(top*1.12/step) * step
	if top <= 0 {
		top, step = 1, 0.25
	}
	y := func(v float64) float64 { return panelTop + panelH - v/top*panelH }
	fmt.Fprintf(b, `<text x="%.0f" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, panelTop-10, html.EscapeString(p.title))
	for t := 0.0; t <= top+step/2; t += step {
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(t), left+w, y(t))
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", left-5, y(t)+4, fmtNum(t))
	}
	fmt.Fprintf(b, `<rect x="%.0f" y="%d" width="%.0f" height="%d" fill="none" stroke="#444"/>`+"\n", left, panelTop, w, panelH)
	for i, x := range p.bars {
		gx := left + float64(i)*groupW + (groupW-2*barW)/2
		vals := []struct {
			v     float64
			color string
			skip  bool
		}{{x.small, "#7aa6d8", x.bigOnly}, {x.big, "#d8703a", false}}
		for j, v := range vals {
			if v.skip {
				continue
			}
			bx := gx + float64(j)*barW
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"/>`+"\n", bx, y(v.v), barW-2, panelTop+panelH-y(v.v), v.color)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`+"\n", bx+(barW-2)/2, y(v.v)-3, fmtNum(v.v))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`+"\n", left+float64(i)*groupW+groupW/2,
			panelTop+panelH+16, html.EscapeString(x.label))
	}
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
