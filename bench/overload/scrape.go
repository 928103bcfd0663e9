package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

var scrapeClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads the exportd_* series, go_goroutines and go_memstats_heap_inuse_bytes of the
// Prometheus exposition at admin/metrics, keyed by the series as written ("name" or
// "name{labels}").
func scrape(ctx context.Context, admin string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s/metrics: %w", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s/metrics: status %d", admin, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "exportd_") && !strings.HasPrefix(line, "go_goroutines ") &&
			!strings.HasPrefix(line, "go_memstats_heap_inuse_bytes ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s/metrics: %w", admin, err)
	}
	return out, nil
}

// cutLabel returns the value of label in series key of metric name.
func cutLabel(key, name, label string) (string, bool) {
	rest, ok := strings.CutPrefix(key, name+"{")
	if !ok {
		return "", false
	}
	_, v, ok := strings.Cut(rest, label+`="`)
	if !ok {
		return "", false
	}
	v, _, ok = strings.Cut(v, `"`)
	return v, ok
}

// delta returns after[k] - before[k].
func delta(before, after map[string]float64, k string) float64 { return after[k] - before[k] }

// histQuantile estimates the q-quantile, in milliseconds, of the observations a histogram got
// between two scrapes, restricted to the series whose label has value (all if label is ""): the
// upper bound of the first bucket that holds the quantile, so an upper estimate. It returns 0
// when nothing was observed and -1 beyond the last finite bucket.
func histQuantile(before, after map[string]float64, name, label, value string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k := range after {
		if !strings.HasPrefix(k, name+"_bucket{") {
			continue
		}
		if label != "" {
			if v, ok := cutLabel(k, name+"_bucket", label); !ok || v != value {
				continue
			}
		}
		leS, ok := cutLabel(k, name+"_bucket", "le")
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(leS, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, delta(before, after, k)})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0
	}
	want := q * bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= want {
			return b.le * 1000
		}
	}
	return -1
}
