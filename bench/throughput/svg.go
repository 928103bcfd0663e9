package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chart draws throughput (rows/s) against rows, both on log scales, one
// line per contender, as a self-contained SVG.
func chart(r *report) []byte {
	const (
		width, height            = 1100, 600
		left, right, top, bottom = 90, 400, 70, 70
	)
	pw, ph := float64(width-left-right), float64(height-top-bottom)

	type point struct{ x, y float64 }
	series := map[string][]point{}
	var keys []string
	names := map[string]string{}
	groups := map[string]string{}
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range r.Sizes {
		for _, c := range s.Contenders {
			if c.RowsPerSecond <= 0 || math.IsInf(c.RowsPerSecond, 0) || math.IsNaN(c.RowsPerSecond) {
				continue
			}
			if _, ok := series[c.Key]; !ok {
				keys = append(keys, c.Key)
				names[c.Key], groups[c.Key] = c.Name, c.Group
			}
			series[c.Key] = append(series[c.Key], point{float64(s.N), c.RowsPerSecond})
			minX, maxX = math.Min(minX, float64(s.N)), math.Max(maxX, float64(s.N))
			minY, maxY = math.Min(minY, c.RowsPerSecond), math.Max(maxY, c.RowsPerSecond)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="17" font-weight="bold">exportd vs ClickHouse tools: export throughput (higher is better)</text>`+"\n", left)
	fmt.Fprintf(&b, `<text x="%d" y="48" fill="#555">%s</text>`+"\n", left, html.EscapeString(fmt.Sprintf(
		"one enterprise, 17 columns, uncompressed unless noted, local file; median of runs; %d cores, %s; ClickHouse %s; %s",
		r.Machine.Cores, r.Machine.CPU, r.ClickHouse, r.Started.Format("2006-01-02"))))
	if len(keys) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`+"\n", left, top+40)
		return []byte(b.String())
	}

	// Axis ranges: whole decades around the data, with a margin so that
	// points on a decade do not sit on the frame.
	xlo, xhi := math.Floor(math.Log10(minX)), math.Ceil(math.Log10(maxX))
	if xlo == xhi {
		xlo, xhi = xlo-1, xhi+1
	}
	ylo, yhi := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if ylo == yhi {
		ylo, yhi = ylo-1, yhi+1
	}
	const pad = 0.12
	xlo, xhi = xlo-pad, xhi+pad
	ylo, yhi = ylo-pad, yhi+pad
	px := func(v float64) float64 { return float64(left) + (math.Log10(v)-xlo)/(xhi-xlo)*pw }
	py := func(v float64) float64 { return float64(top) + (yhi-math.Log10(v))/(yhi-ylo)*ph }

	// Grid, ticks and labels.
	b.WriteString(`<g stroke-width="1">` + "\n")
	for d := math.Ceil(xlo); d <= xhi; d++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, d)
			if math.Log10(v) > xhi {
				break
			}
			x := px(v)
			if m == 1 {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/>`+"\n", x, top, x, height-bottom)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", x, height-bottom, x, height-bottom+6)
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, height-bottom+20, siLabel(v))
			} else {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", x, top, x, height-bottom)
			}
		}
	}
	for d := math.Floor(ylo); d <= yhi; d++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, d)
			lv := math.Log10(v)
			if lv < ylo {
				continue
			}
			if lv > yhi {
				break
			}
			y := py(v)
			if m == 1 {
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ccc"/>`+"\n", left, y, width-right, y)
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", left-6, y, left, y)
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-10, y+4, siLabel(v))
			} else {
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", left, y, width-right, y)
				if m == 2 || m == 5 {
					fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#888" font-size="10">%s</text>`+"\n", left-10, y+3, siLabel(v))
				}
			}
		}
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle" font-size="13">rows exported (log scale)</text>`+"\n",
		float64(left)+pw/2, height-bottom+45)
	fmt.Fprintf(&b, `<text transform="translate(24 %.0f) rotate(-90)" text-anchor="middle" font-size="13">throughput, rows/s (log scale)</text>`+"\n",
		float64(top)+ph/2)

	// Series and legend.
	palette := []string{"#1f77b4", "#ff7f0e", "#8c564b", "#7f7f7f", "#2ca02c", "#d62728", "#9467bd", "#e377c2", "#17becf", "#bcbd22"}
	for i, k := range keys {
		color := palette[i%len(palette)]
		dash, sw := "", 2.5
		switch groups[k] {
		case "clickhouse":
			dash, sw = ` stroke-dasharray="7 4"`, 2
		case "baseline":
			dash, sw = ` stroke-dasharray="2 3"`, 2
		}
		var pts []string
		for _, p := range series[k] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f"%s/>`+"\n", strings.Join(pts, " "), color, sw, dash)
		for _, p := range series[k] {
			b.WriteString(marker(i, px(p.x), py(p.y), color))
			fmt.Fprintf(&b, "<title>%s: %s rows/s at %s rows</title>\n", html.EscapeString(names[k]), fmtRate(p.y), fmtCount(int64(p.x)))
		}
		ly := float64(top) + 10 + float64(i)*24
		lx := float64(width - right + 20)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="%.1f"%s/>`+"\n", lx, ly, lx+34, ly, color, sw, dash)
		b.WriteString(marker(i, lx+17, ly, color))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+42, ly+4, html.EscapeString(names[k]))
	}
	ly := float64(top) + 20 + float64(len(keys))*24
	fmt.Fprintf(&b, `<text x="%d" y="%.0f" fill="#555" font-size="11">dashed: ClickHouse tools; dotted: naive Go;</text>`+"\n", width-right+20, ly)
	fmt.Fprintf(&b, `<text x="%d" y="%.0f" fill="#555" font-size="11">solid: exportd (API: POST → ready)</text>`+"\n", width-right+20, ly+16)
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// marker draws the i-th marker shape centred on (x, y).
func marker(i int, x, y float64, color string) string {
	const r = 4.5
	switch i % 4 {
	case 0:
		return fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"/>`+"\n", x, y, r, color)
	case 1:
		return fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x-r, y-r, 2*r, 2*r, color)
	case 2:
		return fmt.Sprintf(`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`+"\n", x, y-r-1, x+r+1, y+r, x-r-1, y+r, color)
	default:
		return fmt.Sprintf(`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`+"\n",
			x, y-r-1, x+r+1, y, x, y+r+1, x-r-1, y, color)
	}
}

// siLabel prints 1, 10, 100, 1k, 20k, 1M, 10M ...
func siLabel(v float64) string {
	switch {
	case v >= 1e9:
		return trimFloat(v/1e9) + "G"
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e3:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") }
