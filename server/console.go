package server

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"strings"

	"github.com/valyala/fasthttp"
)

// The console (SPEC §10): one page, its script, its style sheet and icon, built
// into the binary. Loading it needs no token: the page asks for one and
// sends it as a bearer header on the API calls it makes itself.
//
//go:embed console/index.html console/console.js console/console.css console/favicon.svg
var consoleFiles embed.FS

const (
	consolePath  = "/console/"
	routeConsole = "console"
)

// consoleCSP is the Content-Security-Policy of every console response.
// default-src 'self' is the contract: the page loads nothing from elsewhere,
// runs no inline script or style and calls only this origin's API. The rest
// tightens what default-src does not cover: no <base> rewriting, forms post
// nowhere (the script submits them), never framed (clickjacking).
const consoleCSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consoleAsset is one embedded file with what its responses carry.
type consoleAsset struct {
	body        []byte
	contentType string
	etag        string // quoted SHA-256 of body
}

// consoleAssets maps the path under /console/ ("" is the page) to its file.
// Built once in New from the embedded files: a missing file is a broken
// build, hence the panic.
func consoleAssets() map[string]consoleAsset {
	files := []struct{ name, path, contentType string }{
		{"console/index.html", "", "text/html; charset=utf-8"},
		{"console/index.html", "index.html", "text/html; charset=utf-8"},
		{"console/console.js", "console.js", "text/javascript; charset=utf-8"},
		{"console/console.css", "console.css", "text/css; charset=utf-8"},
		{"console/favicon.svg", "favicon.svg", "image/svg+xml"},
	}
	assets := make(map[string]consoleAsset, len(files))
	for _, f := range files {
		b, err := consoleFiles.ReadFile(f.name)
		if err != nil {
			panic("BUG: embedded console file " + f.name + ": " + err.Error())
		}
		sum := sha256.Sum256(b)
		assets[f.path] = consoleAsset{body: b, contentType: f.contentType, etag: `"` + hex.EncodeToString(sum[:]) + `"`}
	}
	return assets
}

// console serves GET and HEAD of /console/ and its assets. Every answer,
// errors included, carries the console's security headers. Assets are
// revalidated on each load (Cache-Control: no-cache + ETag) so that a new
// binary's page never runs with an old script.
func (s *Server) console(ctx *fasthttp.RequestCtx, rq *request, path string) {
	rq.route = routeConsole
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// /console and /console/<one segment> serve GET and HEAD only (405
	// otherwise, the redirect included); deeper paths are no route
	// (openapi.json: /console, /console/, /console/{asset}).
	name, redirect := strings.TrimPrefix(path, consolePath), path == strings.TrimSuffix(consolePath, "/")
	if !redirect && strings.Contains(name, "/") {
		s.fail(ctx, rq, routeNotFound())
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		s.methodNotAllowed(ctx, rq, "GET, HEAD")
		return
	}
	if redirect {
		h.Set("Location", consolePath)
		ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
		return
	}
	asset, ok := s.consoleAssets[name]
	if !ok {
		s.fail(ctx, rq, routeNotFound())
		return
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", asset.etag)
	if match := ctx.Request.Header.Peek("If-None-Match"); len(match) > 0 && etagMatches(string(match), asset.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetContentType(asset.contentType)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(asset.body)
}
