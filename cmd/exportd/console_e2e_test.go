package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
)

// consoleSeed is the small data set of the console test (one enterprise).
const consoleSeed = "81"

// TestE2EConsole drives GET /console/ in headless Debian chromium against a
// real `exportd serve` (ClickHouse + PostgreSQL): paste a token, create an
// export with the mouse and one with the keyboard only, see them ready with
// ClickHouse's row count, download both (the bytes' SHA-256 is the export's
// checksum), read the message and reason of a 403 scope_not_covered, a 400
// (with its field) and a 403 missing_capability (a read-only token), watch a
// long export go live → ready by the page's own polling (which then stops),
// cancel a queued one, follow Load more over two pages, forget the token; no
// console error and no CSP violation on the way (and a probe proves a
// violation would be seen). Screenshots at 1440 and 360 px go to the
// artefacts directory.
func TestE2EConsole(t *testing.T) {
	mustExportd(t, nil, "migrate")
	mustExportd(t, nil, "ingest", "--generate", "20000", "--enterprises", "1", "--seed", consoleSeed, "--once")
	ent := strings.TrimSpace(mustExportd(t, nil, "ingest", "--print-enterprises", "--enterprises", "1", "--seed", consoleSeed).stdout)
	big := replicaData(t) // 1M rows: an export that runs long enough to be seen live
	s := startServe(t, "EXPORTD_MAX_EXPORTS_PER_ENTERPRISE=1")
	caps := []string{"operations_reports.create", "operations_reports.read"}
	full := consoleToken(t, s, caps, ent+":subtree", big+":subtree")
	readOnly := consoleToken(t, s, []string{"operations_reports.read"}, ent+":subtree")

	// The binary serves the page and its assets with the CSP, no token needed.
	for _, p := range []string{"/console/", "/console/console.js", "/console/console.css", "/console/favicon.svg"} {
		code, hdr, _ := s.do(t, "GET", p, "", "")
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("GET %s: %d, CSP %q", p, code, hdr.Get("Content-Security-Policy"))
		}
	}

	start := time.Now()
	b := startBrowser(t)
	t.Logf("chromium started in %s", time.Since(start).Round(time.Millisecond))
	dl := b.allowDownloads()
	b.do("load the console", 30*time.Second, chromedp.EmulateViewport(1440, 900),
		chromedp.Navigate(s.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if got := eval[string](b, `getComputedStyle(document.getElementById('token-use')).minHeight`); got != "44px" {
		t.Fatalf("the style sheet did not apply (button min-height %q)", got)
	}

	// Paste the token: kept in sessionStorage only.
	b.do("paste the token", 30*time.Second, chromedp.SendKeys(chromedp.CSS("#token"), full), chromedp.Click(chromedp.CSS("#token-use")))
	poll[bool](b, "the token's claims", `document.getElementById('token-info').textContent.startsWith('Token set for users/00000000-0000-4000-8000-0000000000c1')`, 10*time.Second)
	if got := eval[string](b, `sessionStorage.getItem('exportd.console.token')`); got != full {
		t.Fatalf("sessionStorage holds %q", got)
	}
	if n := eval[int](b, `localStorage.length + document.cookie.length + document.getElementById('token').value.length`); n != 0 {
		t.Fatalf("the token is kept outside sessionStorage (localStorage, cookies or the input): %d", n)
	}
	if got := eval[string](b, `document.getElementById('scope-ref').value`); got != ent {
		t.Fatalf("scope ref prefilled with %q, want the token's first scope %s", got, ent)
	}

	// Create with the form (mouse): February, CSV.
	b.do("fill the form", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS("#date-from"), "2026-02-01"), chromedp.SendKeys(chromedp.CSS("#date-to"), "2026-02-28"),
		chromedp.Click(chromedp.CSS("#create")))
	id := poll[string](b, "the new export to be ready",
		`(() => { const r = document.querySelector('#exports-body tr'); return r && r.dataset.status === 'ready' && r.dataset.id; })()`, 60*time.Second)
	x := s.get(t, full, id)
	febRows := chCount(t, ent, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2026, 2, 28, 23, 59, 59, 999e6, time.UTC).UnixMilli())
	shown := b.row(id)
	if febRows == 0 || x.RowCount != febRows || shown.Rows != febRows || shown.Bytes != x.ByteSize {
		t.Fatalf("rows: ClickHouse %d, API %d, console %d; bytes API %d, console %d", febRows, x.RowCount, shown.Rows, x.ByteSize, shown.Bytes)
	}
	t.Logf("created in the console: %s, %d rows, %d bytes", id, x.RowCount, x.ByteSize)

	// Download it: the browser saves exactly the export's bytes.
	b.do("download", 10*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-id=%q] button.download`, id))))
	f := dl.next(t)
	if sum, n := sha256File(t, f.path); sum != x.Checksum || n != x.ByteSize || f.name != "operations-activity-"+id+".csv" {
		t.Fatalf("downloaded %s: %d bytes, sha256 %s; want %q, %d bytes, %s", f.name, n, sum, "operations-activity-"+id+".csv", x.ByteSize, x.Checksum)
	}
	poll[bool](b, "the download's status line", `document.getElementById('status').textContent.includes('SHA-256 verified')`, 10*time.Second)

	// Refusals: the API's message and details.reason (and details.field).
	other := "enterprises/" + uuid.NewString()
	b.do("create out of scope", 10*time.Second, fill("#scope-ref", other),
		chromedp.Click(chromedp.CSS("#create")))
	box := b.errorBox()
	for _, want := range []string{"Create refused (HTTP 403)", "The caller's scopes do not cover the requested scope.", "scope_not_covered", "forbidden_capability_scope"} {
		if !strings.Contains(box, want) {
			t.Fatalf("403 box lacks %q:\n%s", want, box)
		}
	}
	b.do("create with a bad zone", 10*time.Second, fill("#scope-ref", ent),
		fill("#time-zone", "Mars/Olympus_Mons"),
		chromedp.Click(chromedp.CSS("#create")))
	poll[bool](b, "the 400 box", `document.getElementById('error').innerText.includes('HTTP 400')`, 10*time.Second)
	box = b.errorBox()
	for _, want := range []string{"The export request is invalid.", "invalid_field_value", "time_zone"} {
		if !strings.Contains(box, want) {
			t.Fatalf("400 box lacks %q:\n%s", want, box)
		}
	}
	if eval[string](b, `document.getElementById('time-zone').getAttribute('aria-invalid')`) != "true" {
		t.Fatal("the refused field is not marked aria-invalid")
	}
	b.do("go to the field", 5*time.Second, chromedp.Click(chromedp.CSS("#error-field")))
	if got := eval[string](b, `document.activeElement.id`); got != "time-zone" {
		t.Fatalf("'Go to time_zone' focused %q", got)
	}
	b.screenshot("console-1440-refused.png", 1440, 900)
	b.do("restore the zone", 10*time.Second, chromedp.EmulateViewport(1440, 900), fill("#time-zone", "UTC"))

	// Live status: two long exports made through the API (one slot per
	// enterprise: the second waits pending). Refresh once; the page's own
	// polling brings the first to ready, and the second is cancelled with
	// its button.
	createLive := func(compression string) string {
		code, _, body := s.do(t, "POST", "/operations-activity-exports", full,
			createBody(big, "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z", compression), "Prefer", "wait=0")
		if code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
		return decodeResource(t, body).ID
	}
	long, queued := createLive("gzip"), createLive("none")
	b.do("refresh", 10*time.Second, chromedp.Click(chromedp.CSS("#refresh")))
	poll[bool](b, "the queued export to be listed live", fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-id=%q]'); return r && (r.dataset.status === 'pending' || r.dataset.status === 'running'); })()`, queued), 10*time.Second)
	b.do("cancel", 10*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-id=%q] button.cancel`, queued))))
	poll[bool](b, "the cancelled export", fmt.Sprintf(`document.querySelector('tr[data-id=%q]').dataset.status === 'cancelled'`, queued), 10*time.Second)
	if got := s.get(t, full, queued); got.Status != "cancelled" {
		t.Fatalf("cancelled in the console, API says %s", got.Status)
	}
	var seen []rowState
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := b.row(long)
		if r == nil {
			t.Fatal("the long export is not listed")
		}
		if len(seen) == 0 || *r != seen[len(seen)-1] {
			seen = append(seen, *r)
		}
		if r.Status == "ready" {
			break
		}
		if r.Status != "pending" && r.Status != "running" || time.Now().After(deadline) {
			t.Fatalf("the long export went %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	final := s.get(t, full, long)
	if seen[0].Status == "ready" || seen[len(seen)-1].Rows != final.RowCount || final.RowCount != 1_000_000 {
		t.Fatalf("the console showed %v; the API says %d rows", seen, final.RowCount)
	}
	t.Logf("the long export as the console showed it: %v", seen)
	// Nothing is live any more: the page stops polling.
	before := s.readRequests(t)
	time.Sleep(5 * time.Second) // 2.5 poll intervals
	if after := s.readRequests(t); after != before {
		t.Fatalf("the console kept polling with nothing live: %v get/list requests in 5s", after-before)
	}

	// Keyboard only: the token survives a reload (same tab session); Tab
	// walks the form, arrows pick jsonl + gzip, Enter creates; Tab reaches
	// the new row's Download and Enter saves it.
	b.do("reload", 30*time.Second, chromedp.Navigate(s.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	poll[bool](b, "the list after reload", fmt.Sprintf(`!!document.querySelector('tr[data-id=%q]')`, id), 10*time.Second)
	active := func() string { return eval[string](b, `document.activeElement ? document.activeElement.id : ''`) }
	b.do("focus the first field", 5*time.Second, chromedp.Focus(chromedp.CSS("#scope-kind")))
	steps := []struct{ keys, wantFocus string }{
		{kb.Tab, "scope-ref"}, {kb.Tab, "date-from"}, {"2026-03-01", "date-from"}, {kb.Tab, "date-to"}, {"2026-03-31", "date-to"},
		{kb.Tab, "format"}, {kb.ArrowDown, "format"}, {kb.Tab, "compression"}, {kb.ArrowDown, "compression"},
	}
	for _, st := range steps {
		b.do("key", 5*time.Second, chromedp.KeyEvent(st.keys))
		if got := active(); got != st.wantFocus {
			t.Fatalf("after %q focus is on %q, want %q", st.keys, got, st.wantFocus)
		}
	}
	if got := eval[string](b, `document.getElementById('format').value + '+' + document.getElementById('compression').value`); got != "jsonl+gzip" {
		t.Fatalf("arrow keys chose %s", got)
	}
	tabTo := func(what, js string) {
		for i := 0; ; i++ {
			if eval[bool](b, js) {
				return
			}
			if i == 40 {
				t.Fatalf("40 Tabs never reached %s (at %q)", what, active())
			}
			b.do("tab", 5*time.Second, chromedp.KeyEvent(kb.Tab))
		}
	}
	tabTo("Create", `document.activeElement.id === 'create'`)
	if eval[bool](b, `document.activeElement.matches(':focus-visible')`) != true || eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`) != "solid" {
		t.Fatal("keyboard focus on Create is not visible")
	}
	b.do("enter", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	kid := poll[string](b, "the keyboard export to be ready",
		fmt.Sprintf(`(() => { const r = document.querySelector('#exports-body tr'); return r && r.dataset.id !== %q && r.dataset.status === 'ready' && r.dataset.id; })()`, long), 60*time.Second)
	kx := s.get(t, full, kid)
	marRows := chCount(t, ent, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2026, 3, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli())
	if kx.RowCount != marRows || b.row(kid).Rows != marRows {
		t.Fatalf("keyboard export: API %d rows, console %d, ClickHouse %d", kx.RowCount, b.row(kid).Rows, marRows)
	}
	tabTo("the new row's Download", fmt.Sprintf(`document.activeElement.matches('tr[data-id=%q] button.download')`, kid))
	b.do("enter", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	f = dl.next(t)
	if sum, n := sha256File(t, f.path); sum != kx.Checksum || n != kx.ByteSize || f.name != "operations-activity-"+kid+".jsonl.gz" {
		t.Fatalf("downloaded %s: %d bytes, sha256 %s; want %d bytes, %s", f.name, n, sum, kx.ByteSize, kx.Checksum)
	}

	b.screenshot("console-1440.png", 1440, 900)
	b.screenshot("console-360.png", 360, 800)
	if w := eval[int](b, `document.documentElement.scrollWidth`); w > 360 {
		t.Fatalf("at 360 px the page scrolls sideways (%d px wide)", w)
	}
	b.do("back to 1440", 5*time.Second, chromedp.EmulateViewport(1440, 900))

	// A token without the create capability: the 403 names the reason.
	b.do("forget", 10*time.Second, chromedp.Click(chromedp.CSS("#token-forget")))
	if eval[string](b, `String(sessionStorage.getItem('exportd.console.token'))`) != "null" || eval[int](b, `document.querySelectorAll('#exports-body tr').length`) != 0 {
		t.Fatal("forget left the token or the list behind")
	}
	b.do("read-only token", 10*time.Second, chromedp.SendKeys(chromedp.CSS("#token"), readOnly), chromedp.Click(chromedp.CSS("#token-use")))
	poll[bool](b, "the read-only list", fmt.Sprintf(`!!document.querySelector('tr[data-id=%q]')`, id), 10*time.Second)
	if eval[bool](b, fmt.Sprintf(`!!document.querySelector('tr[data-id=%q]')`, long)) {
		t.Fatal("a token without the big enterprise lists its export")
	}
	b.do("create without the capability", 10*time.Second, chromedp.Click(chromedp.CSS("#create")))
	poll[bool](b, "the 403 box", `document.getElementById('error').innerText.includes('missing_capability')`, 10*time.Second)
	box = b.errorBox()
	for _, want := range []string{"HTTP 403", "Insufficient capability for this operation.", "missing_capability"} {
		if !strings.Contains(box, want) {
			t.Fatalf("403 box lacks %q:\n%s", want, box)
		}
	}

	// Pages: 21 more exports (made through the API, queued one at a time
	// behind the enterprise's slot) overflow the console's first page of 20;
	// Load more follows the page token, and the console lists exactly what
	// the API lists for this token, newest first, each once, until all are
	// ready by the page's polling.
	for i := 0; i < 21; i++ {
		day := time.Date(2026, 4, 1+i, 0, 0, 0, 0, time.UTC)
		code, _, body := s.do(t, "POST", "/operations-activity-exports", full,
			createBody(ent, day.Format(time.RFC3339), day.Add(24*time.Hour-time.Millisecond).Format("2006-01-02T15:04:05.000Z"), "none"), "Prefer", "wait=0")
		if code != 201 {
			t.Fatalf("create %d: %d %s", i, code, body)
		}
		time.Sleep(100 * time.Millisecond) // within the create rate (5/s, burst 20)
	}
	var apiIDs []string
	for tok := ""; ; {
		code, _, body := s.do(t, "GET", "/operations-activity-exports?page_size=7&page_token="+tok, readOnly, "")
		var page struct {
			Items []resource `json:"items"`
			Next  *string    `json:"next_page_token"`
		}
		if err := json.Unmarshal(body, &page); code != 200 || err != nil {
			t.Fatalf("list: %d %s", code, body)
		}
		for _, it := range page.Items {
			apiIDs = append(apiIDs, it.ID)
		}
		if page.Next == nil {
			break
		}
		tok = *page.Next
	}
	listed := func() string {
		return eval[string](b, `Array.from(document.querySelectorAll('#exports-body tr'), r => r.dataset.id).join(' ')`)
	}
	b.do("refresh", 10*time.Second, chromedp.Click(chromedp.CSS("#refresh")))
	poll[bool](b, "a full first page", `document.querySelectorAll('#exports-body tr').length === 20 && !document.getElementById('more').hidden`, 10*time.Second)
	b.do("load more", 10*time.Second, chromedp.Click(chromedp.CSS("#more")))
	poll[bool](b, "the second page", fmt.Sprintf(`document.querySelectorAll('#exports-body tr').length === %d && document.getElementById('more').hidden`, len(apiIDs)), 10*time.Second)
	if got, want := listed(), strings.Join(apiIDs, " "); got != want || len(apiIDs) != 23 {
		t.Fatalf("the console lists\n%s\nthe API (%d)\n%s", got, len(apiIDs), want)
	}
	poll[bool](b, "every listed export ready", `Array.from(document.querySelectorAll('#exports-body tr')).every(r => r.dataset.status === 'ready')`, 2*time.Minute)

	// The CSP is enforced, and a violation would have been seen: an inline
	// script is refused and reported on the console.
	if ran := eval[bool](b, `(() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.append(s); s.remove(); return window.inlineRan === true; })()`); ran {
		t.Fatal("an inline script ran: no CSP")
	}
	isProbe := func(m chromedp.ConsoleMessage) bool {
		return strings.Contains(m.Text, "Content Security Policy") && strings.Contains(m.Text, "inline script")
	}
	eventually(t, 10*time.Second, "the CSP probe to be reported on the console", func() bool {
		for _, m := range b.console() {
			if isProbe(m) {
				return true
			}
		}
		return false
	})
	var problems []string
	for _, m := range b.console() {
		switch {
		case isProbe(m):
		case m.Type == chromedp.ConsoleError && m.Source == "network" && regexp.MustCompile(`status of (403|400) `).MatchString(m.Text):
			// the refusals this test asked for, logged by the browser
		case m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException():
			problems = append(problems, fmt.Sprintf("%s [%s] %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line))
		}
	}
	if len(problems) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(problems, "\n"))
	}
}
