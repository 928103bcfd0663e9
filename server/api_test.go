package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// row builds an activity row of t at ms with a text reference.
func row(t *testing.T, tn tenant, client, acct string, at int64, amount, reference string) activity.Row {
	t.Helper()
	amt, err := activity.ParseDecimal(amount)
	if err != nil {
		t.Fatal(err)
	}
	return activity.Row{OccurredAt: at, ActivityID: uuid.NewString(), OperationID: uuid.NewString(),
		Family: "deposit", Status: "settled", EnterpriseRef: tn.ent, ClientRef: client, AccountRef: acct,
		Currency: "USDC", Amount: amt, InitiatedBy: "users/" + uuid.NewString(), Reference: reference}
}

// expectRecord renders r as SPEC §3 says, for rows whose amount is given
// canonically and whose only guarded text is the reference.
func expectRecord(r activity.Row, amount string) []string {
	ref := r.Reference
	if ref != "" && strings.ContainsAny(ref[:1], "=+-@\t\r") {
		ref = "'" + ref
	}
	// encoding/csv reads a quoted CRLF as LF; the raw bytes are checked apart.
	ref = strings.ReplaceAll(ref, "\r\n", "\n")
	return []string{time.UnixMilli(r.OccurredAt).UTC().Format("2006-01-02T15:04:05.000Z"), r.ActivityID, r.OperationID,
		r.Family, r.Status, r.EnterpriseRef, r.ClientRef, r.AccountRef, r.CounterpartyRef, r.Currency, amount,
		r.FeeCurrency, "", "", r.InitiatedBy, r.FailureReason, ref}
}

var (
	secondsRE      = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	resourceFields = []string{"byte_size", "checksum_sha256", "columns", "compression", "csv_bom", "download_path", "expires_at_utc",
		"failure_reason", "filter_criteria", "finished_at_utc", "format", "generated_at_utc", "generated_by", "id",
		"requested_scope", "row_count", "status", "storage_location", "time_zone"}
)

// checkResource verifies the exact field set of an export resource and the
// invariants of its status.
func checkResource(t *testing.T, m map[string]any) {
	t.Helper()
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, resourceFields) {
		t.Fatalf("resource fields %v, want %v", keys, resourceFields)
	}
	fc := m["filter_criteria"].(map[string]any)
	rs := m["requested_scope"].(map[string]any)
	for k, v := range fc { // the dates, and the §7 filter sets only when given (non-empty)
		switch k {
		case "date_from_utc", "date_to_utc":
		case "families", "statuses", "currencies":
			if l, ok := v.([]any); !ok || len(l) == 0 {
				t.Fatalf("filter_criteria.%s = %v", k, v)
			}
		default:
			t.Fatalf("filter_criteria has %s", k)
		}
	}
	if cols, ok := m["columns"].([]any); !ok || len(cols) == 0 || len(cols) > 17 {
		t.Fatalf("columns %v", m["columns"])
	}
	if _, ok := m["time_zone"].(string); !ok {
		t.Fatalf("time_zone %v", m["time_zone"])
	}
	if _, ok := m["csv_bom"].(bool); !ok {
		t.Fatalf("csv_bom %v", m["csv_bom"])
	}
	if fc["date_from_utc"] == nil || fc["date_to_utc"] == nil || len(rs) != 2 || rs["kind"] == nil || rs["ref"] == nil {
		t.Fatalf("nested objects: %v %v", fc, rs)
	}
	id := m["id"].(string)
	if !activity.ValidUUID(id) || m["download_path"] != exportsPath+"/"+id+"/download" {
		t.Fatalf("id %q download_path %v", id, m["download_path"])
	}
	if !secondsRE.MatchString(m["generated_at_utc"].(string)) {
		t.Fatalf("generated_at_utc %v", m["generated_at_utc"])
	}
	status := m["status"].(string)
	final := status == "ready" || status == "failed" || status == "cancelled" || status == "expired"
	for _, k := range []string{"finished_at_utc", "expires_at_utc"} {
		v, isStr := m[k].(string)
		switch {
		case !final && m[k] != nil:
			t.Fatalf("%s of a %s export: %v", k, status, m[k])
		case isStr && !secondsRE.MatchString(v):
			t.Fatalf("%s %q", k, v)
		}
	}
	if status == "ready" {
		sum, _ := m["checksum_sha256"].(string)
		if len(sum) != 64 || m["finished_at_utc"] == nil || m["expires_at_utc"] == nil {
			t.Fatalf("ready export incomplete: %v", m)
		}
		fin, _ := time.Parse(time.RFC3339, m["finished_at_utc"].(string))
		exp, _ := time.Parse(time.RFC3339, m["expires_at_utc"].(string))
		if d := exp.Sub(fin); d < 24*time.Hour-time.Second || d > 24*time.Hour+time.Second {
			t.Fatalf("expires %v after finish", d)
		}
	} else if status != "expired" && m["checksum_sha256"] != nil {
		t.Fatalf("checksum on a %s export", status)
	}
	if (status == "failed") != (m["failure_reason"] != nil) {
		t.Fatalf("failure_reason %v on a %s export", m["failure_reason"], status)
	}
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, err := v.(interface{ Int64() (int64, error) }).Int64()
	if err != nil {
		t.Fatalf("not an integer: %v", v)
	}
	return n
}

func TestCreateReadyDownloadRoundTrip(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := newTenant(), newTenant()
	from := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	to := time.Date(2026, 4, 30, 23, 59, 59, 0, time.UTC).UnixMilli()
	in := []activity.Row{
		row(t, a, a.client, a.acct, from, "12.5", "plain"),
		row(t, a, a.client, a.acct, from+1000, "-250.5", "=SUM(A1)"),
		row(t, a, "", "master-accounts/"+uuid.NewString(), to, "0.000000000000000001", "comma, \"quote\"\r\nnewline ünï 🚀"),
	}
	out := []activity.Row{
		row(t, a, a.client, a.acct, from-1, "1", "before"),
		row(t, a, a.client, a.acct, to+1, "1", "after"),
		row(t, b, b.client, b.acct, from+5, "99", "other tenant"),
	}
	insert(t, append(slices.Clone(in), out...))
	want := [][]string{activity.Columns[:]}
	for i, amt := range []string{"12.5", "-250.5", "0.000000000000000001"} {
		want = append(want, expectRecord(in[i], amt))
	}

	user := newUser()
	tok := e.token(user, capsAll, a.ent+":subtree")
	m := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)
	checkResource(t, m)
	if m["status"] != "ready" || m["format"] != "csv" || m["compression"] != "none" || m["generated_by"] != user ||
		num(t, m["row_count"]) != 3 || m["failure_reason"] != nil {
		t.Fatalf("resource %v", m)
	}
	if fc := m["filter_criteria"].(map[string]any); fc["date_from_utc"] != aprFrom || fc["date_to_utc"] != aprTo {
		t.Fatalf("filter_criteria %v", fc)
	}
	if rs := m["requested_scope"].(map[string]any); rs["kind"] != "enterprise" || rs["ref"] != a.ent {
		t.Fatalf("requested_scope %v", rs)
	}
	id := m["id"].(string)
	if loc, _ := m["storage_location"].(string); !strings.HasPrefix(loc, "file:///") || !strings.HasSuffix(loc, id+".csv") {
		t.Fatalf("storage_location %q", loc)
	}

	g := e.do("GET", exportsPath+"/"+id, tok, "", nil)
	if g.status != 200 || g.header.Get("Content-Type") != contentTypeJSON {
		t.Fatalf("get: %d %s", g.status, g.body)
	}
	gm := g.json(t)
	checkResource(t, gm)
	for k, v := range m {
		if fmt.Sprint(gm[k]) != fmt.Sprint(v) {
			t.Errorf("get %s = %v, create said %v", k, gm[k], v)
		}
	}

	d := e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil)
	if d.status != 200 {
		t.Fatalf("download: %d %s", d.status, d.body)
	}
	sum := sha256.Sum256(d.body)
	for h, v := range map[string]string{
		"Content-Type":        "text/csv; charset=utf-8",
		"Content-Disposition": `attachment; filename="operations-activity-` + id + `.csv"`,
		"Content-Length":      strconv.Itoa(len(d.body)),
		"Etag":                `"` + hex.EncodeToString(sum[:]) + `"`,
		"Accept-Ranges":       "bytes",
	} {
		if got := d.header.Get(h); got != v {
			t.Errorf("%s: %q, want %q", h, got, v)
		}
	}
	if m["checksum_sha256"] != hex.EncodeToString(sum[:]) || num(t, m["byte_size"]) != int64(len(d.body)) {
		t.Fatalf("checksum/byte_size disagree with the file: %v %v vs %x %d", m["checksum_sha256"], m["byte_size"], sum, len(d.body))
	}
	if !bytes.Contains(d.body, []byte("\"comma, \"\"quote\"\"\r\nnewline ünï 🚀\"\r\n")) {
		t.Errorf("reference not quoted as RFC 4180 says:\n%s", d.body)
	}
	got, err := csv.NewReader(bytes.NewReader(d.body)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, d.body)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(got), len(want), d.body)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("record %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}

	// Compressed variants hold the same bytes.
	for _, c := range []struct{ compression, ctype, ext string }{
		{"gzip", "application/gzip", ".csv.gz"}, {"zstd", "application/zstd", ".csv.zst"},
	} {
		m := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, c.compression), nil)
		checkResource(t, m)
		if m["status"] != "ready" || m["compression"] != c.compression {
			t.Fatalf("%s: %v", c.compression, m)
		}
		cid := m["id"].(string)
		r := e.do("GET", exportsPath+"/"+cid+"/download", tok, "", nil)
		if r.status != 200 || r.header.Get("Content-Type") != c.ctype || r.header.Get("Content-Encoding") != "" ||
			r.header.Get("Content-Disposition") != `attachment; filename="operations-activity-`+cid+c.ext+`"` {
			t.Fatalf("%s download: %d %v", c.compression, r.status, r.header)
		}
		var plain []byte
		if c.compression == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err = io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			zr, err := zstd.NewReader(bytes.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err = io.ReadAll(zr)
			zr.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(plain, d.body) {
			t.Fatalf("%s: decompressed file differs from the plain one", c.compression)
		}
	}

	// One request log line per request, with the export id and no token.
	for _, entry := range e.logs.FilterMessage("request").All() {
		for _, f := range entry.Context {
			if strings.Contains(f.String, tok) {
				t.Fatal("token in the request log")
			}
		}
	}
	if n := len(e.logs.FilterMessage("request").FilterField(zap.String("export_id", id)).All()); n < 3 {
		t.Fatalf("%d log lines with the export id, want ≥ 3", n)
	}
}

func TestDownloadRangesAndConditional(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	from := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var rows []activity.Row
	for i := 0; i < 20; i++ {
		rows = append(rows, row(t, a, a.client, a.acct, from+int64(i), strconv.Itoa(i), "r"))
	}
	insert(t, rows)
	tok := e.token(newUser(), capsAll, a.ent)
	m := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)
	path := exportsPath + "/" + m["id"].(string) + "/download"
	full := e.do("GET", path, tok, "", nil)
	if full.status != 200 {
		t.Fatalf("download: %d", full.status)
	}
	size := len(full.body)
	etag := full.header.Get("ETag")

	for _, c := range []struct {
		rng        string
		start, end int
	}{
		{"bytes=0-9", 0, 9}, {"bytes=-5", size - 5, size - 1}, {"bytes=10-", 10, size - 1},
		{"bytes=5-100000", 5, size - 1}, {"bytes=-100000", 0, size - 1},
	} {
		r := e.do("GET", path, tok, "", map[string]string{"Range": c.rng})
		if r.status != http.StatusPartialContent {
			t.Fatalf("%s: %d %s", c.rng, r.status, r.body)
		}
		if cr := r.header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size) {
			t.Errorf("%s: Content-Range %q", c.rng, cr)
		}
		if !bytes.Equal(r.body, full.body[c.start:c.end+1]) || r.header.Get("Content-Length") != strconv.Itoa(c.end-c.start+1) {
			t.Errorf("%s: wrong bytes", c.rng)
		}
	}
	for _, rng := range []string{fmt.Sprintf("bytes=%d-", size), fmt.Sprintf("bytes=%d-%d", size+5, size+10), "bytes=-0"} {
		r := e.do("GET", path, tok, "", map[string]string{"Range": rng})
		wantError(t, r, http.StatusRequestedRangeNotSatisfiable, codeRangeNotSatisfiable, msgRange, reasonRange)
		if cr := r.header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%s: Content-Range %q", rng, cr)
		}
	}
	for _, h := range []map[string]string{
		{"Range": "bytes=0-1,5-6"},                                          // multi-range: ignored
		{"Range": "bytes=5-1"},                                              // invalid: ignored
		{"Range": "lines=1-2"},                                              // other unit: ignored
		{"Range": "bytes=0-9", "If-Range": `"another"`},                     // stale validator: whole file
		{"If-None-Match": `"another"`},                                      // no match
		{"Range": "bytes=0-9", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}, // date validator: whole file
	} {
		r := e.do("GET", path, tok, "", h)
		if r.status != 200 || !bytes.Equal(r.body, full.body) {
			t.Errorf("%v: %d, %d bytes", h, r.status, len(r.body))
		}
	}
	r := e.do("GET", path, tok, "", map[string]string{"Range": "bytes=0-9", "If-Range": etag})
	if r.status != http.StatusPartialContent {
		t.Errorf("If-Range with the ETag: %d", r.status)
	}
	for _, inm := range []string{etag, `"x", ` + etag, "W/" + etag, "*"} {
		r := e.do("GET", path, tok, "", map[string]string{"If-None-Match": inm})
		if r.status != http.StatusNotModified || len(r.body) != 0 || r.header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q", inm, r.status, r.body)
		}
	}
}

func TestDownloadStates(t *testing.T) {
	br := &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e := newEnv(t, envOptions{reader: br})
	a, slow := newTenant(), newTenant()
	br.blockEnterprise(slow.ent)
	insert(t, []activity.Row{row(t, a, a.client, a.acct, time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC).UnixMilli(), "1", "x")})
	tok := e.token(newUser(), capsAll, a.ent, slow.ent)

	// Running: not ready; the resource shows nulls until final.
	m := e.create(tok, createBody("enterprise", slow.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=0"})
	checkResource(t, m)
	if m["status"] != "pending" && m["status"] != "running" {
		t.Fatalf("status %v", m["status"])
	}
	for _, k := range []string{"finished_at_utc", "expires_at_utc", "checksum_sha256", "failure_reason"} {
		if m[k] != nil {
			t.Errorf("%s = %v before the end", k, m[k])
		}
	}
	id := m["id"].(string)
	wantError(t, e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil), 409, codeStateConflict, msgStateConflict, reasonExportNotReady)

	// Cancel: 200 cancelled, then not cancellable again, download refused.
	c := e.do("POST", exportsPath+"/"+id+"/cancel", tok, "", nil)
	if c.status != 200 {
		t.Fatalf("cancel: %d %s", c.status, c.body)
	}
	cm := c.json(t)
	checkResource(t, cm)
	if cm["status"] != "cancelled" || cm["failure_reason"] != nil || cm["finished_at_utc"] == nil {
		t.Fatalf("cancelled resource %v", cm)
	}
	wantError(t, e.do("POST", exportsPath+"/"+id+"/cancel", tok, "", nil), 409, codeStateConflict, msgStateConflict, reasonNotCancellable)
	wantError(t, e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil), 409, codeStateConflict, msgStateConflict, reasonExportFailed)

	// A ready export cannot be cancelled.
	ready := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)
	if ready["status"] != "ready" {
		t.Fatalf("status %v", ready["status"])
	}
	rid := ready["id"].(string)
	wantError(t, e.do("POST", exportsPath+"/"+rid+"/cancel", tok, "", nil), 409, codeStateConflict, msgStateConflict, reasonNotCancellable)
	if g := e.do("GET", exportsPath+"/"+rid, tok, "", nil).json(t); g["status"] != "ready" {
		t.Fatalf("after a refused cancel: %v", g["status"])
	}

	// Past retention: expired.
	ageExport(t, rid, time.Second)
	g := e.do("GET", exportsPath+"/"+rid, tok, "", nil)
	if gm := g.json(t); gm["status"] != "expired" {
		t.Fatalf("after retention: %v", gm["status"])
	}
	wantError(t, e.do("GET", exportsPath+"/"+rid+"/download", tok, "", nil), 404, codeNotFound, msgExpired, reasonExportExpired)
}
