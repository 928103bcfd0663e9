package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The chart answers one question per size: how long does each contender take
// compared with clickhouse-client FORMAT Native, the bound, and does it meet
// its target? One panel per size (small multiples sharing a log ratio axis),
// one row per contender: a dot at the median time over Native's median, a
// whisker from the fastest to the slowest run (each run's seconds over the
// same Native median), the targets as ticks on their rows. chartModel holds
// the numbers, chart draws them; both are pure functions of the report, so
// the same JSON always gives the same bytes.

// wideSpread is the max/min of a contender's run times above which its
// point is flagged: the median of such runs says little.
const wideSpread = 1.5

type chartRow struct {
	Key, Name, Group string
	Targets          []timeTarget
}

// chartMark is one target evaluated at one size.
type chartMark struct {
	Target timeTarget
	At     float64 // the limit as a multiple of Native's median
	Pass   bool
}

// chartPoint is one contender at one size; times are multiples of Native's
// median at that size.
type chartPoint struct {
	Present          bool
	Median, Min, Max float64
	Seconds          float64 // the median, in seconds
	Runs             int
	Spread           float64 // slowest run over fastest; 0 with one run
	Wide             bool
	Marks            []chartMark
	Fail             bool // misses a target of its row
}

type chartPanel struct {
	N            int64
	Runs         int
	NativeMedian float64 // seconds; 0: Native not measured, no ratios
	Null         float64 // Null's median as a multiple of Native's; 0: not measured
	Noisy        bool    // Native's median below the Null floor
	Load         float64 // highest 1-minute load average seen at this size
	Busy         bool    // Load above the core count
	Wide         int     // points with a wide spread
	Points       []chartPoint
}

type chartModel struct {
	Rows   []chartRow
	Panels []chartPanel
	Lo, Hi float64 // the ratio axis
}

func newChartModel(r *report) chartModel {
	var m chartModel
	index := map[string]int{}
	for _, s := range r.Sizes {
		for _, c := range s.Contenders {
			if _, ok := index[c.Key]; ok {
				continue
			}
			index[c.Key] = len(m.Rows)
			row := chartRow{Key: c.Key, Name: c.Name, Group: c.Group}
			for _, t := range timeTargets() {
				if t.Key == c.Key {
					row.Targets = append(row.Targets, t)
				}
			}
			m.Rows = append(m.Rows, row)
		}
	}
	lo, hi := 1.0, 1.0
	for _, s := range r.Sizes {
		p := chartPanel{N: s.N, Runs: s.Runs, Points: make([]chartPoint, len(m.Rows))}
		p.Load = max(firstLoad(s.LoadBefore), firstLoad(s.LoadAfter))
		p.Busy = r.Machine.Cores > 0 && p.Load > float64(r.Machine.Cores)
		if nat := s.get(keyNative); nat != nil && len(nat.Seconds) > 0 {
			p.NativeMedian = median(nat.Seconds)
		}
		if p.NativeMedian > 0 {
			medians := map[string]float64{}
			for _, c := range s.Contenders {
				if len(c.Seconds) > 0 {
					medians[c.Key] = median(c.Seconds) / p.NativeMedian
				}
			}
			if null, ok := medians[keyNull]; ok {
				p.Null = null
				p.Noisy = null > 1
				lo, hi = min(lo, null), max(hi, null)
			}
			for _, c := range s.Contenders {
				if len(c.Seconds) == 0 {
					continue
				}
				pt := chartPoint{Present: true, Median: medians[c.Key], Seconds: median(c.Seconds), Runs: len(c.Seconds),
					Min: math.Inf(1), Max: math.Inf(-1)}
				for _, v := range c.Seconds {
					pt.Min, pt.Max = min(pt.Min, v/p.NativeMedian), max(pt.Max, v/p.NativeMedian)
				}
				if pt.Runs > 1 && pt.Min > 0 {
					pt.Spread = pt.Max / pt.Min
					pt.Wide = pt.Spread > wideSpread
				}
				if pt.Wide {
					p.Wide++
				}
				i := index[c.Key]
				for _, t := range m.Rows[i].Targets {
					base, ok := medians[t.Base]
					if !ok {
						continue
					}
					mk := chartMark{Target: t, At: t.Limit * base}
					// As the report judges it: concurrent exports that were never
					// seen running at once miss their target whatever the time.
					mk.Pass = pt.Median <= mk.At && (t.Exports == 0 || c.MaxRunning >= t.Exports)
					pt.Fail = pt.Fail || !mk.Pass
					pt.Marks = append(pt.Marks, mk)
					lo, hi = min(lo, mk.At), max(hi, mk.At)
				}
				lo, hi = min(lo, pt.Min), max(hi, pt.Max)
				p.Points[i] = pt
			}
		}
		m.Panels = append(m.Panels, p)
	}
	// A little room around the data, never less than 0.5×–2×, never more
	// than 1/16×–16× (whiskers beyond are clipped with an arrow).
	m.Lo = math.Max(math.Min(lo/1.12, 0.5), 1.0/16)
	m.Hi = math.Min(math.Max(hi*1.12, 2), 16)
	return m
}

// firstLoad is the 1-minute figure of a load average string ("8.94 7.99
// 6.21"); 0 when unknown.
func firstLoad(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return v
}

// Colours: a dot is green when it meets every target of its row, red when
// it misses one, and its group's colour when its row has no target.
const (
	colPass     = "#1a9641"
	colFail     = "#d7191c"
	colTarget   = "#111111"
	colFlag     = "#e66101"
	colGrid     = "#dddddd"
	colMuted    = "#555555"
	colExportd  = "#2b6cb0"
	colCH       = "#4d4d4d"
	colBaseline = "#8c564b"
)

func groupColour(g string) string {
	switch g {
	case "clickhouse":
		return colCH
	case "baseline":
		return colBaseline
	}
	return colExportd
}

// chart draws the report as a self-contained SVG (no scripts, no external
// fonts or images).
func chart(r *report) []byte {
	m := newChartModel(r)
	const (
		margin = 20
		labelW = 300 // contender names and their targets
		gap    = 22
		rowH   = 38
	)
	panelW := 280
	if len(m.Panels) < 3 {
		panelW = 360
	}
	np := max(len(m.Panels), 1)
	// At least as wide as the title: a single panel takes the room.
	const minWidth = 1040
	panelW = max(panelW, (minWidth-2*margin-labelW-(np-1)*gap)/np)
	width := margin + labelW + np*panelW + (np-1)*gap + margin
	chars := (width - 2*margin) * 10 / 57 // characters of 11 px text per line

	var b strings.Builder
	var notes []note
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="HEIGHT" viewBox="0 0 %d HEIGHT" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		width, width)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")

	// Title and subtitle: what is measured, where, when, how busy.
	fmt.Fprintf(&b, `<text x="%d" y="30" font-size="18" font-weight="bold">%s</text>`+"\n", margin,
		esc("Export time as a multiple of clickhouse-client FORMAT Native (lower is better; 1.0× = Native)"))
	runs := runsText(r)
	load := fmt.Sprintf("load average %s → %s", strings.Fields(r.LoadBefore + " ?")[0], strings.Fields(r.LoadAfter + " ?")[0])
	if l := max(firstLoad(r.LoadBefore), firstLoad(r.LoadAfter)); r.Machine.Cores > 0 && l > float64(r.Machine.Cores) {
		load += fmt.Sprintf(" (above the %d cores: a busy machine)", r.Machine.Cores)
	}
	storage := "local file"
	if r.S3 != "" {
		storage = "local file; S3: versitygw on loopback"
	}
	sub := fmt.Sprintf("Run of %s · %d cores, %s, %.1f GiB RAM · ClickHouse %s · %s · %s · one enterprise, 17 columns, %s",
		r.Started.Format("2006-01-02 15:04 MST"), r.Machine.Cores, r.Machine.CPU, float64(r.Machine.MemBytes)/(1<<30),
		r.ClickHouse, runs, load, storage)
	y := 52
	for _, line := range wrap(sub, chars*11/12) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="%s">%s</text>`+"\n", margin, y, colMuted, esc(line))
		y += 16
	}
	top := y + 66 // the first row's top edge, below the panel headers
	plotBottom := top + len(m.Rows)*rowH
	if len(m.Rows) == 0 || len(m.Panels) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text>`+"\n", margin, top)
		b.WriteString("</svg>\n")
		return []byte(strings.ReplaceAll(b.String(), "HEIGHT", strconv.Itoa(top+40)))
	}

	legend(&b, margin, top)

	// Row labels, group separators and the row lines across the panels.
	for i, row := range m.Rows {
		cy := top + i*rowH + rowH/2
		if i > 0 && m.Rows[i-1].Group != row.Group {
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999" stroke-width="1"/>`+"\n",
				margin, top+i*rowH, width-margin, top+i*rowH)
		}
		weight := ""
		if row.Key == keyNative || len(row.Targets) > 0 {
			weight = ` font-weight="bold"`
		}
		sub := rowNote(row)
		ny := cy + 4
		if sub != "" {
			ny = cy - 2
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10.5" fill="%s">%s</text>`+"\n", margin, cy+11, colMuted, esc(sub))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d"%s>%s</text>`+"\n", margin, ny, weight, esc(row.Name))
	}

	ticks := ratioTicks(m.Lo, m.Hi, float64(panelW))
	for pi, p := range m.Panels {
		x0 := float64(margin + labelW + pi*(panelW+gap))
		xr := func(v float64) float64 {
			v = math.Min(math.Max(v, m.Lo), m.Hi)
			return x0 + (math.Log(v)-math.Log(m.Lo))/(math.Log(m.Hi)-math.Log(m.Lo))*float64(panelW)
		}
		// Panel header: size and runs, Native's time and the load, and
		// what makes this size's figures doubtful.
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", x0, top-58,
			esc(fmt.Sprintf("%s rows · %s", fmtCount(p.N), plural(p.Runs, "run"))))
		info := "no Native: no ratios"
		if p.NativeMedian > 0 {
			info = fmt.Sprintf("Native median %s s", strconv.FormatFloat(p.NativeMedian, 'f', 3, 64))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="%s">%s</text>`+"\n", x0, top-42, colMuted, esc(info))
		loadFill, loadText := colMuted, fmt.Sprintf("load average up to %.2f", p.Load)
		if p.Busy {
			loadFill, loadText = colFlag, loadText+fmt.Sprintf(" > %d cores", r.Machine.Cores)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="%s">%s</text>`+"\n", x0, top-28, loadFill, esc(loadText))
		if p.Noisy {
			fmt.Fprintf(&b, `<text class="noisy" x="%.1f" y="%d" font-size="11" font-weight="bold" fill="%s">%s</text>`+"\n",
				x0, top-14, colFail, esc(fmt.Sprintf("noisy run: Native below Null floor (%.2f×)", p.Null)))
		}

		// The grid, FORMAT Null's floor, 1.0× and the frame.
		for _, t := range ticks {
			x := xr(t.v)
			if t.v != 1 {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, top, x, plotBottom, colGrid)
			}
			if t.label {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#333">%s</text>`+"\n", x, plotBottom+15, ratioLabel(t.v))
			}
		}
		for i := range m.Rows {
			cy := top + i*rowH + rowH/2
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#f2f2f2"/>`+"\n", x0, cy, x0+float64(panelW), cy)
		}
		if p.Null > 0 {
			fmt.Fprintf(&b, `<line class="floor" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#777" stroke-width="1.5" stroke-dasharray="1 3"/>`+"\n",
				xr(p.Null), top, xr(p.Null), plotBottom)
			lx, anchor := xr(p.Null)+3, "start"
			if p.Null < 1 {
				lx, anchor = xr(p.Null)-3, "end"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9.5" fill="#777" text-anchor="%s">Null floor</text>`+"\n",
				lx, plotBottom-4, anchor)
		}
		fmt.Fprintf(&b, `<line class="unity" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5"/>`+"\n",
			xr(1), top-4, xr(1), plotBottom, colTarget)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", x0, top, panelW, plotBottom-top)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#333">× Native (log scale)</text>`+"\n",
			x0+float64(panelW)/2, plotBottom+31)

		// Rows: targets first, then the whisker, the dot, its label, a flag.
		for i, row := range m.Rows {
			pt := p.Points[i]
			cy := float64(top + i*rowH + rowH/2)
			if !pt.Present {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="#999">%s</text>`+"\n", x0+6, cy+4,
					map[bool]string{true: "not measured", false: ""}[p.NativeMedian > 0])
				continue
			}
			for _, mk := range pt.Marks {
				dash := ""
				if mk.Target.Base != keyNative {
					dash = ` stroke-dasharray="3 2"`
				}
				fmt.Fprintf(&b, `<line class="target" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s><title>%s</title></line>`+"\n",
					xr(mk.At), cy-8, xr(mk.At), cy+8, colTarget, dash,
					esc(fmt.Sprintf("target %s = %.2f× Native at %s rows", mk.Target.Text, mk.At, fmtCount(p.N))))
			}
			col := groupColour(row.Group)
			if len(pt.Marks) > 0 {
				col = colPass
				if pt.Fail {
					col = colFail
				}
			}
			b.WriteString(`<g class="point">`)
			fmt.Fprintf(&b, "<title>%s</title>", esc(pointTitle(row, p, pt)))
			if pt.Runs > 1 {
				x1, x2 := xr(pt.Min), xr(pt.Max)
				fmt.Fprintf(&b, `<line class="whisker" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`,
					x1, cy, x2, cy, col)
				for _, e := range []struct {
					v, x float64
				}{{pt.Min, x1}, {pt.Max, x2}} {
					switch {
					case e.v > m.Hi:
						fmt.Fprintf(&b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, e.x, cy, e.x-6, cy-4, e.x-6, cy+4, col)
					case e.v < m.Lo:
						fmt.Fprintf(&b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, e.x, cy, e.x+6, cy-4, e.x+6, cy+4, col)
					default:
						fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`, e.x, cy-4, e.x, cy+4, col)
					}
				}
			}
			fmt.Fprintf(&b, `<circle class="dot" data-key="%s" data-rows="%d" cx="%.1f" cy="%.1f" r="5" fill="%s" stroke="white" stroke-width="1"/>`,
				esc(row.Key), p.N, xr(pt.Median), cy, col)
			// The label centred on the dot, kept inside the panel (about
			// 6.3 px a character at this size).
			label := pointLabel(pt)
			half := float64(len([]rune(label))) * 6.3 / 2
			lx := math.Min(math.Max(xr(pt.Median), x0+half+2), x0+float64(panelW)-half-2)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" font-weight="bold" text-anchor="middle" fill="%s">%s</text>`,
				lx, cy-9, col, esc(label))
			if pt.Wide {
				fx := xr(pt.Max) + 9
				fmt.Fprintf(&b, `<polygon class="flag-spread" points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`+
					`<text x="%.1f" y="%.1f" font-size="8" font-weight="bold" fill="white" text-anchor="middle">!</text>`,
					fx, cy-6, fx+6, cy+5, fx-6, cy+5, colFlag, fx, cy+4)
			}
			b.WriteString("</g>\n")
		}
	}

	// Notes: how to read it, then whatever makes this run's figures doubtful.
	notes = append(notes,
		note{"", colMuted, "Dot: the median of the runs' seconds ÷ the median of clickhouse-client FORMAT Native at the same size " +
			"(left of the 1.0× line is faster than Native), with its value above. Whisker: fastest to slowest run, each run's seconds ÷ " +
			"that same Native median (none with one run). Log axis."},
		note{"", colMuted, "Ticks: the targets — solid: a limit on the Native axis; dashed: a limit relative to another row of the same size " +
			"(API none ≤ 0.80 × clickhouse-client CSV's ratio, API → S3 ≤ 1.10 × the file export's ratio, CLI formats × the CLI's CSV). " +
			"Green dot: meets every target of its row; red: misses one. Dotted line: FORMAT Null, ClickHouse's own floor (reading, sorting and sending, nothing written)."},
	)
	var wide, noisy, busy []string
	for _, p := range m.Panels {
		if p.Wide > 0 {
			wide = append(wide, fmt.Sprintf("%s rows: %d of %d", fmtCount(p.N), p.Wide, countPresent(p)))
		}
		if p.Noisy {
			noisy = append(noisy, fmtCount(p.N))
		}
		if p.Busy {
			busy = append(busy, fmtCount(p.N))
		}
	}
	if len(wide) > 0 {
		notes = append(notes, note{"note-spread", colFlag, fmt.Sprintf("▲ Wide spread: the slowest run took more than %.1f× the fastest "+
			"for %s contenders; their medians are weak evidence.", wideSpread, strings.Join(wide, ", "))})
	}
	if len(busy) > 0 {
		notes = append(notes, note{"note-load", colFlag, fmt.Sprintf("Load average above the %d cores during the %s-row runs: "+
			"the contenders competed with other work; differences within ±30%% are noise.", r.Machine.Cores, strings.Join(busy, ", "))})
	}
	if len(noisy) > 0 {
		notes = append(notes, note{"note-noisy", colFail, fmt.Sprintf("Noisy run at %s rows: Native's median is below the Null floor "+
			"(ClickHouse reading, sorting and sending with nothing written was slower than Native writing a file).", strings.Join(noisy, ", "))})
	}
	y = plotBottom + 56
	for _, n := range notes {
		class := ""
		if n.class != "" {
			class = ` class="` + n.class + `"`
		}
		for _, line := range wrap(n.text, chars) {
			fmt.Fprintf(&b, `<text%s x="%d" y="%d" font-size="11" fill="%s">%s</text>`+"\n", class, margin, y, n.fill, esc(line))
			y += 15
		}
		y += 3
	}
	b.WriteString("</svg>\n")
	return []byte(strings.ReplaceAll(b.String(), "HEIGHT", strconv.Itoa(y+6)))
}

type note struct{ class, fill, text string }

// legend draws the key to the marks above the row labels (x, top: the
// left edge and the plot's top).
func legend(b *strings.Builder, x, top int) {
	b.WriteString(`<g class="legend" font-size="10.5" fill="#333">` + "\n")
	y := float64(top - 60)
	fx := float64(x)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`, fx, y, fx+34, y, colCH)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`, fx, y-4, fx, y+4, colCH)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`, fx+34, y-4, fx+34, y+4, colCH)
	fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s" stroke="white"/>`, fx+14, y, colCH)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">median; fastest–slowest run</text>`+"\n", fx+42, y+4)
	y += 14
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"/>`, fx+4, y-7, fx+4, y+7, colTarget)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">target (× Native)</text>`, fx+12, y+4)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5" stroke-dasharray="3 2"/>`, fx+124, y-7, fx+124, y+7, colTarget)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">target × another row</text>`+"\n", fx+132, y+4)
	y += 14
	fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>`, fx+4, y, colPass)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">meets its targets</text>`, fx+12, y+4)
	fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>`, fx+124, y, colFail)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">misses one</text>`+"\n", fx+132, y+4)
	y += 14
	fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, fx+4, y-6, fx+10, y+5, fx-2, y+5, colFlag)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">runs &gt; %.1f× apart</text>`, fx+14, y+4, wideSpread)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#777" stroke-width="1.5" stroke-dasharray="1 3"/>`, fx+124, y-7, fx+124, y+7)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">FORMAT Null floor</text>`+"\n", fx+132, y+4)
	b.WriteString("</g>\n")
}

// rowNote is the small line under a row's name: its targets, or its role.
func rowNote(row chartRow) string {
	switch row.Key {
	case keyNative:
		return "the bound: 1.0× by definition"
	case keyNull:
		return "ClickHouse's floor: read, sort, send; nothing written"
	}
	if len(row.Targets) == 0 {
		return ""
	}
	var t []string
	for _, x := range row.Targets {
		t = append(t, x.Text)
	}
	return "target " + strings.Join(t, ", ")
}

// pointLabel is the value above a dot: its multiple of Native and, when
// its row's targets are all relative to another row, its multiple of that.
func pointLabel(pt chartPoint) string {
	l := ratioValue(pt.Median)
	if len(pt.Marks) == 0 {
		return l
	}
	for _, mk := range pt.Marks {
		if mk.Target.Per == "" {
			return l
		}
	}
	mk := pt.Marks[0]
	return l + " = " + ratioValue(pt.Median/mk.At*mk.Target.Limit) + " " + mk.Target.Per
}

func pointTitle(row chartRow, p chartPanel, pt chartPoint) string {
	s := fmt.Sprintf("%s at %s rows: median %.3f s = %.2f× Native", row.Name, fmtCount(p.N), pt.Seconds, pt.Median)
	if pt.Runs > 1 {
		s += fmt.Sprintf("; %d runs %.2f–%.2f× (slowest/fastest %.2f)", pt.Runs, pt.Min, pt.Max, pt.Spread)
	}
	for _, mk := range pt.Marks {
		s += fmt.Sprintf("; target %s = %.2f×: %s", mk.Target.Text, mk.At, map[bool]string{true: "met", false: "MISSED"}[mk.Pass])
	}
	return s
}

func countPresent(p chartPanel) int {
	n := 0
	for _, pt := range p.Points {
		if pt.Present {
			n++
		}
	}
	return n
}

func runsText(r *report) string {
	lo, hi := math.MaxInt, 0
	for _, s := range r.Sizes {
		lo, hi = min(lo, s.Runs), max(hi, s.Runs)
	}
	switch {
	case hi == 0:
		return "no runs"
	case lo == hi:
		return plural(lo, "run") + " per size, order rotated"
	}
	return fmt.Sprintf("%d–%d runs per size, order rotated", lo, hi)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

type tick struct {
	v     float64
	label bool
}

// ratioTicks are the grid lines of a log ratio axis from lo to hi drawn w
// pixels wide. Labels go to the powers of two first (1× always), then to the
// steps between them, each at least 30 px from every other label.
func ratioTicks(lo, hi, w float64) []tick {
	cands := []float64{0.0625, 0.125, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 6, 8, 12, 16}
	priority := []float64{1, 2, 0.5, 4, 0.25, 8, 0.125, 16, 0.0625, 1.5, 3, 0.75, 6, 12, 1.25}
	px := func(v float64) float64 { return (math.Log(v) - math.Log(lo)) / (math.Log(hi) - math.Log(lo)) * w }
	var out []tick
	for _, v := range cands {
		if v >= lo && v <= hi {
			out = append(out, tick{v: v})
		}
	}
	var labelled []float64
	for _, v := range priority {
		x := px(v)
		if v < lo || v > hi || x < 8 || w-x < 8 {
			continue
		}
		ok := true
		for _, l := range labelled {
			ok = ok && math.Abs(px(l)-x) >= 30
		}
		if !ok {
			continue
		}
		labelled = append(labelled, v)
		for i := range out {
			if out[i].v == v {
				out[i].label = true
			}
		}
	}
	return out
}

func ratioLabel(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64) + "×"
}

func ratioValue(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

// wrap breaks text into lines of at most n characters at spaces.
func wrap(text string, n int) []string {
	var lines []string
	var cur []rune
	for _, w := range strings.Fields(text) {
		rw := []rune(w)
		if len(cur) > 0 && len(cur)+1+len(rw) > n {
			lines = append(lines, string(cur))
			cur = cur[:0]
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, rw...)
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

func esc(s string) string { return html.EscapeString(s) }
