package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// The chart: two panels side by side, both against the offered load (log scale). Left: goodput
// in rows/s, with the 1x goodput and the 90% target. Right: latencies in ms (log scale), with the
// targets as dashed lines.
const (
	svgW, svgH   = 1000, 460
	panelW       = 400
	panelH       = 280
	panelTop     = 60
	leftA, leftB = 80, 580
)

type series struct {
	name   string
	color  string
	dashed bool
	pts    [][2]float64 // offered multiple, value
}

type axis struct {
	lo, hi float64
	log    bool
}

func (a axis) frac(v float64) float64 {
	if a.log {
		v, lo, hi := math.Log10(max(v, a.lo)), math.Log10(a.lo), math.Log10(a.hi)
		return (v - lo) / (hi - lo)
	}
	return (v - a.lo) / (a.hi - a.lo)
}

type panel struct {
	left          float64
	title, ylabel string
	x, y          axis
	yticks        []float64
	series        []series
}

func (p panel) px(v float64) float64 { return p.left + p.x.frac(v)*panelW }
func (p panel) py(v float64) float64 {
	return panelTop + panelH - min(max(p.y.frac(v), 0), 1)*panelH
}

func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func (p panel) draw(b *bytes.Buffer, xticks []float64) {
	fmt.Fprintf(b, `<text x="%.0f" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", p.left, panelTop-22, p.title)
	fmt.Fprintf(b, `<rect x="%.0f" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", p.left, panelTop, panelW, panelH)
	for _, t := range p.yticks {
		y := p.py(t)
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", p.left, y, p.left+panelW, y)
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", p.left-6, y+4, fmtTick(t))
	}
	for _, t := range xticks {
		x := p.px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, panelTop, x, panelTop+panelH)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%sx</text>`+"\n", x, panelTop+panelH+16, fmtTick(t))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%d" font-size="12" text-anchor="middle">offered load (multiple of capacity)</text>`+"\n",
		p.left+panelW/2, panelTop+panelH+34)
	fmt.Fprintf(b, `<text x="%.0f" y="%d" font-size="12" text-anchor="middle" transform="rotate(-90 %.0f %d)">%s</text>`+"\n",
		p.left-55, panelTop+panelH/2, p.left-55, panelTop+panelH/2, p.ylabel)
	for _, s := range p.series {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var path bytes.Buffer
		for i, pt := range s.pts {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, p.px(pt[0]), p.py(pt[1]))
		}
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", path.String(), s.color, dash)
		if !s.dashed {
			for _, pt := range s.pts {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", p.px(pt[0]), p.py(pt[1]), s.color)
			}
		}
	}
	// Legend, below the axis label; unnamed series have no entry.
	i := -1
	for _, s := range p.series {
		if s.name == "" {
			continue
		}
		i++
		x := p.left + float64(i%2)*panelW/2
		y := float64(panelTop + panelH + 56 + 18*(i/2))
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`+"\n", x, y-4, x+22, y-4, s.color, dash)
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="11">%s</text>`+"\n", x+28, y, s.name)
	}
}

func (r *report) svg() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n",
		svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="13">exportd under overload: capacity %.1f exports/s (%d CPUs, max exports %d, load average %s → %s)</text>`+"\n",
		leftA, r.Capacity.GoodputExportsPerSec, r.CPUs, r.Config.MaxExports, r.LoadBefore, r.LoadAfter)
	if len(r.Levels) == 0 {
		b.WriteString("</svg>\n")
		return b.Bytes()
	}
	xMin, xMax := r.Levels[0].Multiple, r.Levels[len(r.Levels)-1].Multiple
	x := axis{lo: xMin / 1.25, hi: xMax * 1.25, log: true}
	var xticks []float64
	for _, l := range r.Levels {
		xticks = append(xticks, l.Multiple)
	}

	good := series{name: "goodput", color: "#1f77b4"}
	var yMax float64
	for _, l := range r.Levels {
		good.pts = append(good.pts, [2]float64{l.Multiple, l.GoodputRowsPerSec})
		yMax = max(yMax, l.GoodputRowsPerSec)
	}
	a := panel{left: leftA, title: "Goodput", ylabel: "rows/s of completed exports", x: x, series: []series{good}}
	if base := r.level(1); base != nil {
		yMax = max(yMax, base.GoodputRowsPerSec)
		a.series = append(a.series,
			series{name: "1x goodput", color: "#888", dashed: true, pts: [][2]float64{{x.lo, base.GoodputRowsPerSec}, {x.hi, base.GoodputRowsPerSec}}},
			series{name: "target: 90% of 1x", color: "#d62728", dashed: true, pts: [][2]float64{{x.lo, 0.9 * base.GoodputRowsPerSec}, {x.hi, 0.9 * base.GoodputRowsPerSec}}})
	}
	step := niceStep(yMax * 1.15 / 5)
	a.y = axis{lo: 0, hi: step * math.Ceil(yMax*1.15/step)}
	for t := 0.0; t <= a.y.hi+step/2; t += step {
		a.yticks = append(a.yticks, t)
	}

	p99 := series{name: "admitted completion p99", color: "#1f77b4"}
	p50 := series{name: "admitted completion p50", color: "#aec7e8"}
	shed := series{name: "shed response p99", color: "#ff7f0e"}
	get := series{name: "GET p99", color: "#2ca02c"}
	floor := series{name: "/healthz p99 (the floor)", color: "#999"}
	lo, hi := math.Inf(1), 0.0
	for _, l := range r.Levels {
		p99.pts = append(p99.pts, [2]float64{l.Multiple, l.CompletionP99Ms})
		p50.pts = append(p50.pts, [2]float64{l.Multiple, l.CompletionP50Ms})
		shed.pts = append(shed.pts, [2]float64{l.Multiple, l.ShedP99Ms})
		get.pts = append(get.pts, [2]float64{l.Multiple, l.GetP99Ms})
		floor.pts = append(floor.pts, [2]float64{l.Multiple, l.HealthzP99Ms})
		for _, v := range []float64{l.CompletionP99Ms, l.CompletionP50Ms, l.ShedP99Ms, l.GetP99Ms, l.HealthzP99Ms} {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	// Shed series with no sheds at a level would sit at 0: drop those points.
	shed.pts, floor.pts = dropZero(shed.pts), dropZero(floor.pts)
	limit := 2 * r.Uncontended.CompletionP99Ms
	hi = max(hi, limit, 10)
	lo = min(lo, 1)
	bPanel := panel{left: leftB, title: "Latency", ylabel: "milliseconds (log)", x: x,
		y: axis{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi))), log: true},
		series: []series{p99, p50, shed, get, floor,
			{name: "target: 2x uncontended p99", color: "#1f77b4", dashed: true, pts: [][2]float64{{x.lo, limit}, {x.hi, limit}}},
			{name: "targets: shed 5ms, GET 10ms", color: "#d62728", dashed: true, pts: [][2]float64{{x.lo, 5}, {x.hi, 5}}},
			{color: "#d62728", dashed: true, pts: [][2]float64{{x.lo, 10}, {x.hi, 10}}}, // no legend entry of its own
		}}
	for t := bPanel.y.lo; t <= bPanel.y.hi*1.01; t *= 10 {
		bPanel.yticks = append(bPanel.yticks, t)
	}
	a.draw(&b, xticks)
	bPanel.draw(&b, xticks)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func dropZero(pts [][2]float64) [][2]float64 {
	out := pts[:0]
	for _, p := range pts {
		if p[1] > 0 {
			out = append(out, p)
		}
	}
	return out
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
