package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// The console's browser tests drive a headless Debian chromium (chromedp)
// against a real exportd serve; these are their helpers.

// artifactsDir is where the browser tests leave their screenshots:
// $EXPORTD_ARTIFACTS, else testdata/artifacts (gitignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EXPORTD_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// consoleBrowser is a headless Debian chromium on a fresh profile, and what
// its page wrote to the console (calls of the console API, uncaught
// exceptions, browser log entries such as CSP violations).
type consoleBrowser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

func startBrowser(t *testing.T) *consoleBrowser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (deploy/scripts/ensure-chromium.sh installs it): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("no-proxy-server", true),
		// Nothing but loopback: every host name fails to resolve.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &consoleBrowser{t: t, ctx: ctx}
	// Start the browser and the tab (no timeout on this first run: it would
	// bound the browser's life), then collect the console until the end.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		wg.Wait()
	})
	return b
}

// do runs steps with a deadline of d.
func (b *consoleBrowser) do(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\nconsole: %v", what, err, b.console())
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *consoleBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits for a truthy JavaScript expression and returns its value.
func poll[T any](b *consoleBrowser, what, expr string, d time.Duration) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v\nstatus: %q\nerror box: %q\nconsole: %v", what, err,
			eval[string](b, `document.getElementById('status').textContent`),
			eval[string](b, `document.getElementById('error').hidden ? '' : document.getElementById('error').textContent`), b.console())
	}
	return v
}

func (b *consoleBrowser) console() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.messages...)
}

// screenshot saves a full-page PNG at width × height CSS pixels.
func (b *consoleBrowser) screenshot(name string, width, height int64) string {
	b.t.Helper()
	b.do("viewport", 10*time.Second, chromedp.EmulateViewport(width, height), chromedp.Sleep(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactsDir(b.t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

// downloads allows downloads into a fresh directory, each file named by its
// download's GUID, and reports completed ones with their suggested names.
type downloads struct {
	dir  string
	done chan downloaded
}

type downloaded struct{ path, name string }

func (b *consoleBrowser) allowDownloads() *downloads {
	b.t.Helper()
	d := &downloads{dir: b.t.TempDir(), done: make(chan downloaded, 8)}
	ctx, cancel := context.WithCancel(b.ctx) // ends the event loops below
	begin := chromedp.Events(ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	b.do("download behaviour", 10*time.Second, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: d.dir, EventsEnabled: ptrTo(true)})
		return err
	}))
	var mu sync.Mutex
	names := map[string]string{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range begin {
			if err != nil {
				return
			}
			mu.Lock()
			names[ev.GUID] = ev.SuggestedFilename
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range progress {
			if err != nil {
				return
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				mu.Lock()
				name := names[ev.GUID]
				mu.Unlock()
				select {
				case d.done <- downloaded{path: filepath.Join(d.dir, ev.GUID), name: name}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	b.t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return d
}

func (d *downloads) next(t *testing.T) downloaded {
	t.Helper()
	select {
	case f := <-d.done:
		return f
	case <-time.After(30 * time.Second):
		t.Fatal("no download completed within 30s")
		return downloaded{}
	}
}

func ptrTo[T any](v T) *T { return &v }

// consoleToken mints a token for the console's caller over several scopes.
func consoleToken(t *testing.T, s *service, caps []string, scopes ...string) string {
	t.Helper()
	args := []string{"token", "--sub", "users/00000000-0000-4000-8000-0000000000c1", "--ttl", "1h"}
	for _, c := range caps {
		args = append(args, "--capability", c)
	}
	for _, sc := range scopes {
		args = append(args, "--scope", sc)
	}
	return strings.TrimSpace(mustExportd(t, []string{"EXPORTD_SIGNING_KEY=" + s.key}, args...).stdout)
}

// chCount counts an enterprise's rows in [fromMs, toMs] straight in ClickHouse.
func chCount(t *testing.T, enterprise string, fromMs, toMs int64) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := testCfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM operations_activity WHERE enterprise_ref = '%s' AND occurred_at_utc BETWEEN %d AND %d",
		enterprise, fromMs, toMs)
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// readRequests sums exportd_http_requests_total of the get and list routes.
func (s *service) readRequests(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, m := range regexp.MustCompile(`(?m)^exportd_http_requests_total\{[^}]*route="(?:get|list)"[^}]*\} (\S+)$`).FindAllSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		sum += v
	}
	return sum
}

func sha256File(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), int64(len(b))
}

// rowState is what the console shows of one export.
type rowState struct {
	Status string `json:"status"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
}

func (b *consoleBrowser) row(id string) *rowState {
	b.t.Helper()
	js := fmt.Sprintf(`(() => {
		const tr = document.querySelector('#exports-body tr[data-id=%q]');
		if (!tr) return '';
		return JSON.stringify({status: tr.dataset.status, rows: Number(tr.querySelector('td.rows data').value),
			bytes: Number(tr.querySelector('td.size data').value)});
	})()`, id)
	s := eval[string](b, js)
	if s == "" {
		return nil
	}
	var r rowState
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		b.t.Fatal(err)
	}
	return &r
}

// fill replaces an input's value by typing text into it. (chromedp.Clear
// resets the value attribute, not what a person typed before.)
func fill(sel, text string) chromedp.Action[chromedp.Void] {
	clear := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%q).value = '') === ''`, sel))(ctx, t)
		return err
	})
	return chromedp.Steps(clear, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// errorBox is the console's refusal box, as a person reads it.
func (b *consoleBrowser) errorBox() string {
	b.t.Helper()
	return poll[string](b, "the error box", `!document.getElementById('error').hidden && document.getElementById('error').innerText`, 10*time.Second)
}
