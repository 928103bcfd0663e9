package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"93.184.216.34", true}, {"8.8.8.8", true}, {"1.1.1.1", true}, {"2606:4700:4700::1111", true},
		{"2a00:1450:4001:80b::200e", true}, {"::ffff:93.184.216.34", true},
		{"0.0.0.0", false}, {"0.1.2.3", false}, {"10.1.2.3", false}, {"100.64.0.1", false}, {"100.127.255.254", false},
		{"127.0.0.1", false}, {"127.255.0.9", false}, {"169.254.169.254", false}, {"169.254.1.1", false},
		{"172.16.0.1", false}, {"172.31.255.255", false}, {"192.0.0.8", false}, {"192.0.2.1", false},
		{"192.88.99.1", false}, {"192.168.0.1", false}, {"198.18.0.1", false}, {"198.19.255.1", false},
		{"198.51.100.7", false}, {"203.0.113.9", false}, {"224.0.0.1", false}, {"239.255.255.250", false},
		{"240.0.0.1", false}, {"255.255.255.255", false},
		{"::", false}, {"::1", false}, {"::ffff:127.0.0.1", false}, {"::ffff:169.254.169.254", false},
		{"::ffff:10.0.0.1", false}, {"::127.0.0.1", false}, {"64:ff9b::a9fe:a9fe", false}, {"64:ff9b:1::1", false},
		{"100::1", false}, {"fc00::1", false}, {"fd00:ec2::254", false}, {"fe80::1", false}, {"fec0::1", false},
		{"ff02::1", false}, {"2001::1", false}, {"2001:db8::1", false}, {"2002:a9fe:a9fe::1", false},
		{"3fff::1", false},
	} {
		if got := Public(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Public(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// fakeResolver answers from a table (and counts lookups); recordDialer
// records what it is asked to dial and never connects.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr // successive answers per host
	calls   map[string]int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	as, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(r.calls[host], len(as)-1)
	r.calls[host]++
	return as[i], nil
}

type recordDialer struct {
	mu    sync.Mutex
	asked []string
}

var errNotDialled = errors.New("recorded, not dialled")

func (d *recordDialer) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, network+" "+address)
	return nil, errNotDialled
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// Every forbidden URL is refused at registration and at delivery without
// any dial; an admitted one dials exactly the address that was checked.
func TestRefusalsNeverDial(t *testing.T) {
	res := &fakeResolver{calls: map[string]int{}, answers: map[string][][]netip.Addr{
		"public.test":    {addrs("93.184.216.34")},
		"private.test":   {addrs("10.0.0.7")},
		"metadata.test":  {addrs("169.254.169.254")},
		"metadata6.test": {addrs("fd00:ec2::254")},
		"cgnat.test":     {addrs("100.64.1.1")},
		"mixed.test":     {addrs("93.184.216.34", "192.168.1.1")},
		"mapped.test":    {addrs("::ffff:127.0.0.1")},
		"nat64.test":     {addrs("64:ff9b::a9fe:a9fe")},
		"loop.test":      {addrs("127.0.0.1")},
		"linklocal.test": {addrs("fe80::1")},
		"zero.test":      {addrs("0.0.0.0")},
		// DNS rebinding: public when registered, private when delivered.
		"rebind.test": {addrs("93.184.216.34"), addrs("169.254.169.254")},
	}}
	ctx := context.Background()
	for _, loopback := range []bool{false, true} {
		d := &recordDialer{}
		c := NewClient(ClientConfig{Resolver: res, Dialer: d, AllowLoopback: loopback})
		forbidden := []string{
			"https://10.0.0.1/h", "https://172.16.5.5/h", "https://192.168.1.1/h", "https://169.254.169.254/latest/meta-data/",
			"https://[fd00:ec2::254]/", "https://100.64.0.1/", "https://0.0.0.0/", "https://0.1.2.3/", "https://[::]/",
			"https://[::ffff:169.254.169.254]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/",
			"https://[ff02::1]/", "https://224.0.0.1/", "https://198.18.0.1/", "https://240.0.0.1/", "https://255.255.255.255/",
			"https://[2002:a9fe:a9fe::1]/", "https://[2001:db8::1]/",
			"https://private.test/", "https://metadata.test/", "https://metadata6.test/", "https://cgnat.test/",
			"https://mixed.test/", "https://nat64.test/", "https://linklocal.test/", "https://zero.test/",
			"http://public.test/", "http://93.184.216.34/", "ftp://public.test/", "public.test/h", "//public.test/h",
			"https://user:pw@public.test/", "https:///nohost", "https://public.test:0/", "https://public.test:99999/",
			"http://127.0.0.2:8080/", "http://localhost:8080/", "https://" + strings.Repeat("a", 2100) + ".test/",
		}
		if !loopback {
			forbidden = append(forbidden, "https://127.0.0.1/", "https://[::1]/", "https://loop.test/", "http://127.0.0.1:8080/",
				"http://[::1]:8080/", "https://[::ffff:127.0.0.1]/", "https://mapped.test/")
		}
		for _, u := range forbidden {
			if err := c.CheckURL(ctx, u); !errors.Is(err, ErrForbiddenURL) {
				t.Errorf("loopback=%v: CheckURL(%q) = %v, want ErrForbiddenURL", loopback, u, err)
			}
			if _, err := c.Post(ctx, u, nil, []byte("{}")); !errors.Is(err, ErrForbiddenURL) {
				t.Errorf("loopback=%v: Post(%q) = %v, want ErrForbiddenURL", loopback, u, err)
			}
		}
		if len(d.asked) != 0 {
			t.Fatalf("loopback=%v: refused URLs were dialled: %q", loopback, d.asked)
		}
		// Admitted: the dial goes to the checked address, nowhere else.
		if err := c.CheckURL(ctx, "https://public.test/hooks?x=1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Post(ctx, "https://public.test:8443/hooks?token=s3cret", nil, []byte("{}")); !errors.Is(err, errNotDialled) || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("post: %v", err)
		}
		if want := []string{"tcp 93.184.216.34:8443"}; len(d.asked) != 1 || d.asked[0] != want[0] {
			t.Fatalf("dialled %q, want %q", d.asked, want)
		}
	}
	// Rebinding: registered while public; refused once it resolves private.
	d := &recordDialer{}
	c := NewClient(ClientConfig{Resolver: res, Dialer: d})
	if err := c.CheckURL(ctx, "https://rebind.test/"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Post(ctx, "https://rebind.test/", nil, nil); !errors.Is(err, ErrForbiddenURL) || len(d.asked) != 0 {
		t.Fatalf("rebound host: %v, dialled %q", err, d.asked)
	}
}

// countingServer counts the requests it receives.
func countingServer(t *testing.T, tlsOn bool, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &n
}

func trust(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

// With real loopback servers: without the loopback switch, https to
// 127.0.0.1 and to localhost is refused before any connection; with it,
// http and https to loopback deliver.
func TestLoopbackServers(t *testing.T) {
	ctx := context.Background()
	tsrv, tn := countingServer(t, true, nil)
	hsrv, hn := countingServer(t, false, nil)
	port := tsrv.URL[strings.LastIndex(tsrv.URL, ":")+1:]
	// localhost resolves as the system would (/etc/hosts), without a DNS
	// packet leaving the machine.
	hosts := &fakeResolver{calls: map[string]int{}, answers: map[string][][]netip.Addr{"localhost": {addrs("127.0.0.1", "::1")}}}
	strict := NewClient(ClientConfig{TLS: trust(tsrv), Resolver: hosts})
	for _, u := range []string{tsrv.URL + "/h", "https://localhost:" + port + "/h", hsrv.URL + "/h"} {
		if err := strict.CheckURL(ctx, u); !errors.Is(err, ErrForbiddenURL) {
			t.Errorf("CheckURL(%s) = %v", u, err)
		}
		if _, err := strict.Post(ctx, u, nil, []byte("{}")); !errors.Is(err, ErrForbiddenURL) {
			t.Errorf("Post(%s) = %v", u, err)
		}
	}
	if tn.Load()+hn.Load() != 0 {
		t.Fatalf("the servers got %d requests", tn.Load()+hn.Load())
	}
	loose := NewClient(ClientConfig{TLS: trust(tsrv), AllowLoopback: true})
	for _, u := range []string{tsrv.URL + "/h", hsrv.URL + "/h"} {
		if code, err := loose.Post(ctx, u, http.Header{"Webhook-Id": {"x"}}, []byte("{}")); err != nil || code != 200 {
			t.Errorf("Post(%s) with loopback allowed: %d %v", u, code, err)
		}
	}
	if tn.Load() != 1 || hn.Load() != 1 {
		t.Fatalf("requests: https %d, http %d", tn.Load(), hn.Load())
	}
}

// A redirect to loopback (by address or by name) is never followed: the
// redirecting server (on 127.0.0.2, which this test alone pretends is
// public) gets the request, its target nothing.
func TestRedirectsAreNotFollowed(t *testing.T) {
	ctx := context.Background()
	target, tn := countingServer(t, true, nil)
	port := target.URL[strings.LastIndex(target.URL, ":")+1:]
	for _, loc := range []string{target.URL + "/x", "https://localhost:" + port + "/x"} {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		var rn atomic.Int64
		redir := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rn.Add(1)
			http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
		}))
		redir.Listener.Close()
		redir.Listener = ln
		redir.StartTLS()
		t.Cleanup(redir.Close)
		rport := redir.URL[strings.LastIndex(redir.URL, ":")+1:]
		c := NewClient(ClientConfig{TLS: trust(redir),
			Resolver: &fakeResolver{calls: map[string]int{}, answers: map[string][][]netip.Addr{
				"example.com": {addrs("127.0.0.2")}, "localhost": {addrs("127.0.0.1", "::1")}}}})
		c.permit = func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.2") }
		code, err := c.Post(ctx, "https://example.com:"+rport+"/h", nil, []byte("{}"))
		if err != nil || code != http.StatusTemporaryRedirect || rn.Load() != 1 {
			t.Fatalf("redirect to %s: %d %v (redirector got %d)", loc, code, err, rn.Load())
		}
	}
	if tn.Load() != 0 {
		t.Fatalf("redirect target got %d requests", tn.Load())
	}
}

// A receiver that never answers costs one Timeout; one that answers an
// endless body is read only up to MaxResponse and left.
func TestTimeoutAndBoundedAnswer(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	hang, _ := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	c := NewClient(ClientConfig{AllowLoopback: true, Timeout: 300 * time.Millisecond})
	start := time.Now()
	if _, err := c.Post(ctx, hang.URL, nil, nil); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("hanging receiver: %v after %v", err, time.Since(start))
	}
	var sent atomic.Int64
	endless, _ := countingServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		buf := make([]byte, 32<<10)
		for {
			n, err := w.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	c = NewClient(ClientConfig{AllowLoopback: true, Timeout: 5 * time.Second})
	start = time.Now()
	code, err := c.Post(ctx, endless.URL, nil, nil)
	if err != nil || code != 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("endless answer: %d %v after %v", code, err, time.Since(start))
	}
}
