package server

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"

	"github.com/valyala/fasthttp"
)

// openapiPath serves the API's own description (SPEC §10).
const openapiPath = "/openapi.json"

// routeOpenAPI is the metric and log label of GET /openapi.json.
const routeOpenAPI = "openapi"

// openapiDoc is the OpenAPI 3.1 document of the API, written by hand and
// proven against the running server by openapi_test.go: every request and
// response of its walkthrough passes libopenapi-validator, and every route
// the server answers is in it.
//
//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the embedded OpenAPI document. The slice is shared: do not
// modify it.
func OpenAPI() []byte { return openapiDoc }

// openapiETag is the quoted hex SHA-256 of the document, computed per call
// (a few microseconds for ~80 KB; the route is neither hot nor worth a
// cache that would be a mutable global).
func openapiETag() string {
	sum := sha256.Sum256(openapiDoc)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// openapi handles GET /openapi.json: no token, cacheable (ETag, 304 on a
// matching If-None-Match), revalidated on every use.
func (s *Server) openapi(ctx *fasthttp.RequestCtx) {
	etag := openapiETag()
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderETag, etag)
	h.Set(fasthttp.HeaderCacheControl, "public, no-cache")
	if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 && etagMatches(string(inm), etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(openapiDoc)
}
