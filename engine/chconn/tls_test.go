package chconn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/ingest/chlocal"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// secure=true in the DSN: every client exportd opens (native reads, ch-go
// inserts, the clickhouse-go pool) speaks TLS to a ClickHouse that serves a
// self-signed certificate, verified against ca_file; without the CA the
// connection is refused, skip_verify accepts any certificate, and a plain
// client cannot talk to the TLS port (nor a TLS client to the plain one).
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := chlocal.Start(ctx, chlocal.Options{Dir: filepath.Join(dir, "ch"), TLSCertFile: cert, TLSKeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	if srv.SecureAddr == "" {
		t.Fatal("no secure port")
	}
	parse := func(dsn string) chconn.Config {
		t.Helper()
		c, err := chconn.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	selectOne := func(c chconn.Config) error {
		n, err := c.DialNative(ctx)
		if err != nil {
			return err
		}
		defer n.Close()
		var col proto.ColUInt8
		return n.Select(ctx, "SELECT 1 AS x", proto.Results{{Name: "x", Data: &col}}, func(int) error { return nil }, nil)
	}
	good := parse("clickhouse://" + srv.SecureAddr + "/default?secure=true&ca_file=" + cert)
	if err := selectOne(good); err != nil {
		t.Fatalf("native over TLS: %v", err)
	}
	pool, err := good.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("clickhouse-go over TLS: %v", err)
	}
	client, err := good.Dial(ctx)
	if err != nil {
		t.Fatalf("ch-go over TLS: %v", err)
	}
	defer client.Close()
	if err := client.Do(ctx, ch.Query{Body: "CREATE TABLE IF NOT EXISTS tls_probe (x UInt8) ENGINE = Memory"}); err != nil {
		t.Fatalf("ch-go statement over TLS: %v", err)
	}
	if s := good.String(); !strings.Contains(s, "secure=true") || strings.Contains(s, cert) {
		t.Errorf("String() = %q", s)
	}

	if err := selectOne(parse("clickhouse://" + srv.SecureAddr + "/default?secure=true")); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a self-signed certificate without ca_file: %v", err)
	}
	if err := selectOne(parse("clickhouse://" + srv.SecureAddr + "/default?secure=true&skip_verify=true")); err != nil {
		t.Fatalf("skip_verify: %v", err)
	}
	if err := selectOne(parse("clickhouse://" + srv.SecureAddr + "/default")); err == nil {
		t.Fatal("a plain client talked to the TLS port")
	}
	if err := selectOne(parse("clickhouse://" + srv.TCPAddr + "/default?secure=true&skip_verify=true")); err == nil {
		t.Fatal("a TLS client talked to the plain port")
	}
	if _, err := chconn.ParseDSN("clickhouse://" + srv.TCPAddr + "/default?ca_file=" + cert); err == nil {
		t.Fatal("ca_file without secure=true accepted")
	}
}
