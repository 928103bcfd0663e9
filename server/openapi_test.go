package server

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// openapiSpec is the embedded document, loaded and validated.
type openapiSpec struct {
	model *v3.Document
	v     validator.Validator
}

// loadOpenAPI parses the embedded document with libopenapi, builds its
// model (every $ref must resolve) and validates it against the OpenAPI 3.1
// schema; any error fails the test.
func loadOpenAPI(t *testing.T) *openapiSpec {
	t.Helper()
	s, err := parseOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parseOpenAPI() (*openapiSpec, error) {
	doc, err := libopenapi.NewDocument(OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("parse openapi.json: %w", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		return nil, fmt.Errorf("openapi version %q, want 3.1.0", v)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("build the OpenAPI model: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok || len(verrs) > 0 {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI 3.1 document:\n%s", describe(verrs))
	}
	return &openapiSpec{model: &m.Model, v: v}, nil
}

// describe renders validation errors with their schema failures.
func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  - %s: %s", e.Message, e.Reason)
		if e.SpecLine > 0 {
			fmt.Fprintf(&b, " (openapi.json:%d)", e.SpecLine)
		}
		b.WriteByte('\n')
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "      %s %s: %s\n", f.FieldPath, f.KeywordLocation, f.Reason)
		}
	}
	return b.String()
}

// operation is one documented method and path template.
type operation struct {
	id, method, path string
	op               *v3.Operation
}

// operations lists the documented operations of paths (not webhooks),
// sorted by path and method.
func (s *openapiSpec) operations() []operation {
	var ops []operation
	for path, item := range s.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			ops = append(ops, operation{id: op.OperationId, method: strings.ToUpper(method), path: path, op: op})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int {
		return strings.Compare(a.path+" "+a.method, b.path+" "+b.method)
	})
	return ops
}

// match finds the documented path template of a request path ({x} matches
// one non-empty segment) and the operation of method on it (nil when the
// path is documented but not the method). An exact template wins over one
// with parameters.
func (s *openapiSpec) match(method, path string) (template string, op *operation) {
	segs := strings.Split(path, "/")
	best := -1
	for tmpl := range s.model.Paths.PathItems.KeysFromOldest() {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		exact, ok := 0, true
		for i := range ts {
			switch {
			case ts[i] == segs[i]:
				exact++
			case strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") && segs[i] != "":
			default:
				ok = false
			}
		}
		if ok && exact > best {
			template, best = tmpl, exact
		}
	}
	if best < 0 {
		return "", nil
	}
	for _, o := range s.operations() {
		if o.path == template && o.method == method {
			return template, &o
		}
	}
	return template, nil
}

// adminOnly reports whether a path template is served by the admin
// listener only (its operations carry x-exportd-listener: admin).
func (s *openapiSpec) adminOnly(template string) bool {
	for _, o := range s.operations() {
		if o.path == template && o.op.Extensions != nil {
			if n := o.op.Extensions.GetOrZero("x-exportd-listener"); n != nil && n.Value == "admin" {
				return true
			}
		}
	}
	return false
}

// methods returns the documented methods of a path template.
func (s *openapiSpec) methods(template string) []string {
	var ms []string
	for _, o := range s.operations() {
		if o.path == template {
			ms = append(ms, o.method)
		}
	}
	slices.Sort(ms)
	return ms
}

// TestOpenAPIDocument: the embedded document is a valid OpenAPI 3.1 document
// (libopenapi model without errors, the validator's schema check), every
// operation has a unique operationId, and every error code, reason and
// message the server's source declares (errors.go) appears in it.
func TestOpenAPIDocument(t *testing.T) {
	s := loadOpenAPI(t)
	ids := map[string]bool{}
	for _, o := range s.operations() {
		if o.id == "" || ids[o.id] {
			t.Errorf("%s %s: operationId %q missing or repeated", o.method, o.path, o.id)
		}
		ids[o.id] = true
	}
	for _, want := range []string{"createExport", "listExports", "getExport", "downloadExport", "cancelExport",
		"healthz", "readyz", "metrics", "openapi", "console",
		"createWebhookEndpoint", "listWebhookEndpoints", "getWebhookEndpoint", "deleteWebhookEndpoint", "listWebhookDeliveries",
		"createSchedule", "listSchedules", "getSchedule", "deleteSchedule", "listScheduleExports"} {
		if !ids[want] {
			t.Errorf("operation %s is not documented", want)
		}
	}
	events := map[string]bool{}
	for name := range s.model.Webhooks.KeysFromOldest() {
		events[name] = true
	}
	for _, ev := range []string{"ready", "failed", "cancelled", "expired"} {
		if !events["operations_activity_export."+ev] {
			t.Errorf("webhook event operations_activity_export.%s is not documented", ev)
		}
	}
	if ss := s.model.Components.SecuritySchemes.GetOrZero("bearerAuth"); ss == nil || ss.Scheme != "bearer" || ss.BearerFormat != "JWT" {
		t.Errorf("bearerAuth security scheme: %+v", ss)
	}

	// Every code, reason and message constant of errors.go is a string of
	// the document (an enum or const value): a reason added to the server
	// must be added to the document.
	doc := string(OpenAPI())
	for name, val := range stringConsts(t, "errors.go") {
		if !(strings.HasPrefix(name, "code") || strings.HasPrefix(name, "reason") || strings.HasPrefix(name, "msg")) {
			continue
		}
		if !strings.Contains(doc, strconv.Quote(val)) {
			t.Errorf("%s = %q (errors.go) is not in openapi.json", name, val)
		}
	}
}

// stringConsts returns the string constants declared in a file of this
// package, by name.
func stringConsts(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						out[n.Name] = v
					}
				}
			}
		}
	}
	return out
}

// TestOpenAPIServed: GET /openapi.json without a token serves the embedded
// bytes as JSON with a strong ETag (the quoted SHA-256), 304 on a matching
// If-None-Match, 405 for other methods.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do("GET", openapiPath, "", "", nil)
	if r.status != http.StatusOK || string(r.body) != string(OpenAPI()) {
		t.Fatalf("GET %s: %d, %d bytes (want %d)", openapiPath, r.status, len(r.body), len(OpenAPI()))
	}
	if ct := r.header.Get("Content-Type"); ct != contentTypeJSON {
		t.Errorf("Content-Type %q", ct)
	}
	etag := r.header.Get("ETag")
	if etag != openapiETag() || len(etag) != 66 {
		t.Errorf("ETag %q", etag)
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
		if nm := e.do("GET", openapiPath, "", "", map[string]string{"If-None-Match": inm}); nm.status != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q", inm, nm.status, nm.body)
		}
	}
	if nm := e.do("GET", openapiPath, "", "", map[string]string{"If-None-Match": `"other"`}); nm.status != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", nm.status)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "HEAD"} {
		r := e.do(m, openapiPath, "", "", nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
			t.Errorf("%s %s: %d Allow %q", m, openapiPath, r.status, r.header.Get("Allow"))
		}
	}
}
