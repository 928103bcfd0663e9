package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Resolver looks up the addresses of a host name. *net.Resolver satisfies
// it. It must be safe for concurrent use.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens a TCP connection to a literal "ip:port". *net.Dialer
// satisfies it. It must be safe for concurrent use and honour ctx.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// ClientConfig configures the SSRF-safe client.
type ClientConfig struct {
	// AllowLoopback admits loopback addresses (https to any loopback
	// address, and http://127.0.0.1:PORT and http://[::1]:PORT), for tests
	// and local use only (EXPORTD_WEBHOOK_ALLOW_LOOPBACK).
	AllowLoopback bool
	// Resolver default net.DefaultResolver; Dialer default a net.Dialer.
	Resolver Resolver
	Dialer   Dialer
	// Timeout bounds one attempt, from resolution to the end of the
	// answer (default 10s, SPEC §8).
	Timeout time.Duration
	// MaxResponse bounds the bytes of an answer that are read (default
	// 64 KiB); the rest is left unread and the connection closed.
	MaxResponse int64
	// TLS is the TLS configuration (nil: system roots). Tests set RootCAs.
	TLS *tls.Config
}

func (c *ClientConfig) setDefaults() {
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxResponse <= 0 {
		c.MaxResponse = 64 << 10
	}
}

// ErrForbiddenURL means a webhook URL is not admissible: not https (nor an
// admitted loopback http URL), malformed, or resolving to an address that
// is not public. Errors of CheckURL and Post wrap it for those causes.
var ErrForbiddenURL = errors.New("webhook URL not allowed")

// Client posts webhook deliveries without being a vector for server-side
// request forgery: every attempt resolves the host, checks every address it
// resolves to, and dials exactly the address it checked (a DNS answer that
// changes between the check and the dial cannot redirect it); redirects
// are never followed; environment proxies are ignored. Safe for concurrent
// use.
type Client struct {
	cfg ClientConfig
	// permit decides an address; tests in this package replace it.
	permit func(netip.Addr) bool
}

// NewClient returns a client.
func NewClient(cfg ClientConfig) *Client {
	cfg.setDefaults()
	c := &Client{cfg: cfg}
	c.permit = func(a netip.Addr) bool {
		return Public(a) || (cfg.AllowLoopback && a.Unmap().IsLoopback())
	}
	return c
}

// maxURL bounds a webhook URL's length.
const maxURL = 2048

// parse checks the form of raw: absolute https (or admitted loopback http),
// a host, no credentials, a numeric port if any.
func (c *Client) parse(raw string) (*url.URL, error) {
	if len(raw) > maxURL {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrForbiddenURL, maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: does not parse", ErrForbiddenURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL", ErrForbiddenURL)
	}
	if u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: no host", ErrForbiddenURL)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: bad port", ErrForbiddenURL)
		}
	}
	switch u.Scheme {
	case "https":
	case "http":
		// SPEC §8: only http://127.0.0.1:PORT and http://[::1]:PORT, and
		// only with the loopback switch.
		if h := u.Hostname(); !c.cfg.AllowLoopback || (h != "127.0.0.1" && h != "::1") {
			return nil, fmt.Errorf("%w: not https", ErrForbiddenURL)
		}
	default:
		return nil, fmt.Errorf("%w: not https", ErrForbiddenURL)
	}
	return u, nil
}

// resolve returns the address to dial for u: every address the host
// resolves to must be permitted (one forbidden answer refuses the URL).
func (c *Client) resolve(ctx context.Context, u *url.URL) (netip.AddrPort, error) {
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if strings.ContainsAny(host, "%") {
			return netip.AddrPort{}, fmt.Errorf("%w: bad host", ErrForbiddenURL)
		}
		addrs, err = c.cfg.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("resolve webhook host: %w", err)
		}
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, errors.New("resolve webhook host: no address")
	}
	for _, a := range addrs {
		if a.Zone() != "" || !c.permit(a) {
			return netip.AddrPort{}, fmt.Errorf("%w: resolves to a non-public address", ErrForbiddenURL)
		}
	}
	port := uint16(443)
	if u.Scheme == "http" {
		port = 80
	}
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p) // checked by parse
		port = uint16(n)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), port), nil
}

// CheckURL checks raw as a registration would: its form and every address
// it resolves to now.
func (c *Client) CheckURL(ctx context.Context, raw string) error {
	u, err := c.parse(raw)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err = c.resolve(ctx, u)
	return err
}

// Post sends body to raw with headers h and returns the answer's status
// code. The URL is checked again (form and resolution) and the checked
// address is dialled; the answer is read up to MaxResponse and discarded;
// redirects are answers like any other (not followed). The whole attempt
// takes at most Timeout.
func (c *Client) Post(ctx context.Context, raw string, h http.Header, body []byte) (int, error) {
	u, err := c.parse(raw)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	target, err := c.resolve(ctx, u)
	if err != nil {
		return 0, err
	}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return c.cfg.Dialer.DialContext(ctx, "tcp", target.String())
	}
	var tlsConf *tls.Config
	if c.cfg.TLS != nil {
		tlsConf = c.cfg.TLS.Clone()
	}
	tr := &http.Transport{
		DialContext:            dial,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    c.cfg.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      false,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport:     tr,
		Timeout:       c.cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrForbiddenURL, err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text repeats the URL, query included
			err = ue.Err
		}
		return 0, fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.cfg.MaxResponse))
	return resp.StatusCode, nil
}

// Blocked ranges: not public, whatever a routing table says (RFC 6890 and
// its updates; the metadata addresses 169.254.169.254 and fd00:ec2::254
// fall in link-local and unique-local space).
var (
	blocked4 = prefixes("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
		"192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"224.0.0.0/4", "240.0.0.0/4")
	// IPv6: only global unicast (2000::/3) can be public; within it,
	// IETF protocol assignments (Teredo included), documentation and 6to4
	// (which embeds an IPv4 address) are refused. Outside it fall ::,
	// ::1, IPv4-mapped and -compatible, NAT64 (64:ff9b::/96), discard,
	// unique-local (fc00::/7), link-local, site-local and multicast.
	global6  = netip.MustParsePrefix("2000::/3")
	blocked6 = prefixes("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Public reports whether a is a public unicast address a webhook may be
// delivered to. IPv4-mapped IPv6 addresses are judged as the IPv4 address
// they carry.
func Public(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	a = a.Unmap()
	blocked := blocked6
	if a.Is4() {
		blocked = blocked4
	} else if !global6.Contains(a) {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
