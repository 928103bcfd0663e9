package server

import (
	"github.com/exportd/exportd/engine/webhook"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// probeMethods are the methods every candidate path is asked with.
var probeMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"}

// routeLiterals reads the server package's source (not its tests) and
// returns the path-like string literals (starting with "/") and the words
// it compares strings with (== and != operands and case values, literal or
// a constant of the package: path segments such as "download"). Whatever route a handler adds, its path or segment
// is one of these, so the probe asks for it without being told.
func routeLiterals(t *testing.T) (paths, words []string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	pathRe := regexp.MustCompile(`^/[A-Za-z0-9._~/-]*$`)
	wordRe := regexp.MustCompile(`^[A-Za-z0-9._~-]{1,40}$`)
	seenP, seenW := map[string]bool{}, map[string]bool{}
	lit := func(e ast.Expr) (string, bool) {
		b, ok := e.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	// Pass 1: the package's string constants (segments may be named).
	consts := map[string]string{}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, file)
		for _, d := range file.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, sp := range g.Specs {
					vs := sp.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if v, ok := lit(vs.Values[i]); ok {
								consts[n.Name] = v
							}
						}
					}
				}
			}
		}
	}
	addWord := func(e ast.Expr) {
		s, ok := lit(e)
		if id, isIdent := e.(*ast.Ident); isIdent {
			s, ok = consts[id.Name]
		}
		if ok && wordRe.MatchString(s) && !seenW[s] {
			seenW[s] = true
			words = append(words, s)
		}
	}
	// Pass 2: path literals anywhere; words compared with.
	for _, file := range parsed {
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, ok := lit(n); ok && pathRe.MatchString(s) && !seenP[s] {
					seenP[s] = true
					paths = append(paths, s)
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					addWord(n.X)
					addWord(n.Y)
				}
			case *ast.CaseClause:
				for _, e := range n.List {
					addWord(e)
				}
			}
			return true
		})
	}
	slices.Sort(paths)
	slices.Sort(words)
	return paths, words
}

// TestOpenAPIRouteProbe fails on any route the server serves that the
// document lacks. It asks a real server, with a token that may do
// everything, every method of probeMethods on: every documented path (ids
// filled with a real ready export's, or fresh UUIDs), every path literal
// of the server's source, each extended by "/", an id, and an id or
// nothing followed by every word the source compares with, and a list of
// plausible extras (/metrics, /console, /debug/pprof/, ...). Each answer is
// judged as in the walkthrough: a documented operation's answer must pass
// the validator; any other must be exactly the route-level 404 or 405 (Allow
// naming the documented methods). Operations in notServedYet must answer
// route-level, so the list cannot hide a route that landed.
func TestOpenAPIRouteProbe(t *testing.T) {
	w := newProbe(t)
	e := w.envs["main"]
	tok := e.e.token(newUser(), capsAll, w.vars["ent"]+":subtree")
	w.toks["all"] = tok
	ready := e.e.create(tok, strings.ReplaceAll(walkBody, "{ent}", w.vars["ent"]), nil)["id"].(string)
	e.rec.take()

	srcPaths, words := routeLiterals(t)
	if !slices.Contains(srcPaths, exportsPath) || !slices.Contains(words, "download") || !slices.Contains(words, "cancel") {
		t.Fatalf("the source scan found paths %v, words %v: it does not see the routes", srcPaths, words)
	}
	// Every method on the documented paths, the source's paths and the
	// extras; GET and POST on the word-extended ones (a route there answers
	// those with something other than the route-level 404, a 405 at least).
	candidates := map[string][]string{}
	all, some := probeMethods, []string{"GET", "POST"}
	fromDoc := map[string]bool{}
	for _, o := range w.spec.operations() {
		p := strings.NewReplacer("{export_id}", ready, "{webhook_id}", uuid.NewString(), "{schedule_id}", uuid.NewString(),
			"{asset}", "console.js").Replace(o.path)
		candidates[p], fromDoc[p] = all, true
	}
	for _, p := range srcPaths {
		base := strings.TrimSuffix(p, "/")
		candidates[p], candidates[base+"/"], candidates[base+"/"+ready] = all, all, all
		for _, wd := range words {
			for _, q := range []string{base + "/" + wd, base + "/" + ready + "/" + wd} {
				if candidates[q] == nil {
					candidates[q] = some
				}
			}
		}
	}
	for _, p := range []string{"/", "/metrics", "/console", "/console/", "/console/index.html", "/openapi.yaml",
		"/docs", "/swagger.json", "/debug/pprof/", "/debug/vars", "/api", "/v1" + exportsPath,
		exportsPath + "/" + ready + "/", exportsPath + "/" + ready + "/download/", "/healthz/", "/readyz/x"} {
		candidates[p] = all
	}
	paths := make([]string, 0, len(candidates))
	for p := range candidates {
		paths = append(paths, p)
	}
	slices.Sort(paths)

	start, asked, served := time.Now(), 0, map[string]bool{}
	for _, p := range paths {
		for _, m := range candidates[p] {
			r := e.e.do(m, p, tok, "", nil)
			x := e.rec.take()
			asked++
			template, op := w.spec.match(m, routedPath(x.req.URL.Path))
			notServed := func(o operation) bool { return o.path == template && slices.Contains(notServedYet, o.id) }
			switch {
			case op != nil && slices.Contains(notServedYet, op.id):
				if !routeLevel(m, r) {
					t.Errorf("%s %s (%s, in notServedYet) answered %d %s: it is served now; remove it from notServedYet and add its walkthrough steps",
						m, p, op.id, r.status, clipBody(r.body))
				}
				continue
			case op == nil && template != "" && !slices.ContainsFunc(w.spec.operations(), func(o operation) bool { return o.path == template && !notServed(o) }):
				if !routeLevel(m, r) {
					t.Errorf("%s %s (documented path %s, none of its operations served yet) answered %d %s", m, p, template, r.status, clipBody(r.body))
				}
				continue
			case op != nil && !w.spec.adminOnly(template):
				served[op.id] = true
				if routeLevel(m, r) && fromDoc[p] { // elsewhere a path parameter may be invalid
					t.Errorf("%s %s (%s, documented) answered route-level %d: not served", m, p, op.id, r.status)
				}
			}
			_, problems := w.judge(x, false)
			for _, pr := range problems {
				if op != nil && strings.HasPrefix(pr, "request ") {
					continue // the probe's requests are not meant to be valid
				}
				t.Errorf("probe %s %s: %s", m, p, pr)
			}
		}
	}
	var never []string
	for _, o := range w.spec.operations() {
		if !served[o.id] && !slices.Contains(notServedYet, o.id) && o.id != "metrics" {
			never = append(never, o.id)
		}
	}
	if len(never) > 0 {
		t.Errorf("documented operations the probe never reached: %v", never)
	}
	t.Logf("probed %d paths (source paths %q, words %q) with %d requests in %s; documented operations answering: %d",
		len(paths), srcPaths, words, asked, time.Since(start).Round(time.Millisecond), len(served))
}

// routeLevel reports whether a response is the route-level 404 or 405 (a
// HEAD answer has no body to tell).
func routeLevel(method string, r *response) bool {
	c := detailsReason(r.body)
	if method == http.MethodHead {
		return r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed
	}
	return r.status == http.StatusNotFound && c == reasonRouteNotFound ||
		r.status == http.StatusMethodNotAllowed && c == reasonMethodNotAllowed
}

// newProbe is a walk with one real server whose limits do not get in the
// probe's way (rate limits off).
func newProbe(t *testing.T) *walk {
	spec := loadOpenAPI(t)
	w := &walk{t: t, spec: spec, envs: map[string]*walkEnv{}, ids: map[string]string{}, toks: map[string]string{},
		vars: map[string]string{}, seen: map[string]int{}, rows: map[string]int{}, kept: map[string]*exchange{}}
	e := newEnv(t, envOptions{rateLimit: -1, tuneSrv: func(c *Config) {
		c.Schedules = pg.Store
		c.Webhooks = &Webhooks{Store: pg.Store, URLs: webhook.NewClient(webhook.ClientConfig{AllowLoopback: true})}
	}})
	rec := &recorder{base: e.client.Transport}
	e.client.Transport = rec
	e.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	w.envs["main"] = &walkEnv{e: e, rec: rec}
	w.vars["ent"] = newTenant().ent
	return w
}
