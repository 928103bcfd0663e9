package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
)

// suiteTraffic records every exchange of every test server's client in
// this package (newEnv wraps the transport); TestMain judges them all by
// the document after the run (checkSuiteTraffic), so the whole API test
// suite, not only the walkthrough, replays through the validator.
var suiteTraffic = &trafficLog{}

// maxRecordedBody bounds what is kept of one response body; a longer one
// (a download) is judged by its status and headers only.
const maxRecordedBody = 1 << 20

type trafficLog struct {
	mu sync.Mutex
	xs []*exchange
}

func (l *trafficLog) add(x *exchange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.xs = append(l.xs, x)
}

// wrap returns a transport that records through l. Response bodies are
// teed as the test reads them (never read ahead: slow-reader tests keep
// their pace), and recorded when closed.
func (l *trafficLog) wrap(base http.RoundTripper) http.RoundTripper {
	return &teeTransport{base: base, log: l}
}

type teeTransport struct {
	base http.RoundTripper
	log  *trafficLog
}

func (tt *teeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	out := req.Clone(req.Context())
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		out.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := tt.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	x := &exchange{req: out, reqBody: body}
	tb := &teeBody{rc: resp.Body}
	tb.done = func(complete bool) {
		r := *resp
		r.Header = resp.Header.Clone()
		x.resp = &r
		if complete && tb.buf.Len() <= maxRecordedBody {
			x.respBody = tb.buf.Bytes()
		} else {
			x.truncated = true
		}
		tt.log.add(x)
	}
	resp.Body = tb
	return resp, nil
}

type teeBody struct {
	rc   io.ReadCloser
	buf  bytes.Buffer
	eof  bool
	once sync.Once
	done func(complete bool)
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if b.buf.Len() <= maxRecordedBody {
		b.buf.Write(p[:n])
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *teeBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() { b.done(b.eof) })
	return err
}

// checkSuiteTraffic judges every recorded response (requests are the
// tests' own business: many are invalid on purpose) and reports the
// problems on stderr; false if there are any.
func checkSuiteTraffic() bool {
	spec, err := parseOpenAPI()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: suite traffic:", err)
		return false
	}
	w := &walk{spec: spec, seen: map[string]int{}}
	suiteTraffic.mu.Lock()
	xs := suiteTraffic.xs
	suiteTraffic.mu.Unlock()
	var problems []string
	judged := 0
	for _, x := range xs {
		if x.truncated && strings.Contains(x.resp.Header.Get("Content-Type"), "json") {
			continue // a JSON body the test did not read to the end
		}
		if spec.notServedYet(x.req.Method, routedPath(x.req.URL.Path)) {
			continue // route-level today: TestOpenAPIRouteProbe holds them to it
		}
		judged++
		_, ps := w.judge(x, false)
		for _, p := range ps {
			if strings.HasPrefix(p, "request ") {
				continue
			}
			problems = append(problems, fmt.Sprintf("%s %s → %d: %s", x.req.Method, x.req.URL.RequestURI(), x.resp.StatusCode, p))
		}
	}
	fmt.Printf("openapi: judged %d of %d responses of this package's tests by openapi.json; %d operations seen\n", judged, len(xs), len(w.seen))
	for i, p := range problems {
		if i == 50 {
			fmt.Fprintf(os.Stderr, "... and %d more\n", len(problems)-50)
			break
		}
		fmt.Fprintln(os.Stderr, "FAIL: openapi.json does not describe this response of the test suite:", p)
	}
	return len(problems) == 0
}

// notServedYet reports whether a request is for a documented path or
// operation that notServedYet lists (every operation of its path is
// listed, or the request's own operation is).
func (s *openapiSpec) notServedYet(method, path string) bool {
	template, op := s.match(method, path)
	if op != nil {
		return slices.Contains(notServedYet, op.id)
	}
	if template == "" {
		return false
	}
	for _, o := range s.operations() {
		if o.path == template && !slices.Contains(notServedYet, o.id) {
			return false
		}
	}
	return true
}
