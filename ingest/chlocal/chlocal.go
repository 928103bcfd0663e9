// Package chlocal starts and stops a private ClickHouse server: its own
// config, data directory and free loopback ports. Tests, `make run` and the
// benchmarks use it so that nothing depends on a system-wide service.
package chlocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configure a private server.
type Options struct {
	// Dir holds config, data and logs. Required.
	Dir string
	// Binary is the clickhouse-server executable; default: found in PATH or /usr/bin.
	Binary string
	// TCPPort and HTTPPort default to free loopback ports.
	TCPPort, HTTPPort int
	// Detach starts the server in its own session so it outlives this process
	// (used by `make run`); its pid is written to Dir/server.pid.
	Detach bool
	// StartTimeout bounds the wait for the server to accept connections (default 60s).
	StartTimeout time.Duration
	// TLSCertFile and TLSKeyFile, when set, also serve the native protocol
	// over TLS on a free port (Server.SecureAddr): tcp_port_secure and the
	// openSSL server section (both on 18.16 and current releases).
	TLSCertFile, TLSKeyFile string
}

// Server is a running private ClickHouse.
type Server struct {
	Dir      string
	TCPAddr  string
	HTTPAddr string
	// SecureAddr is the TLS native port ("" without Options.TLSCertFile).
	SecureAddr string
	cmd        *exec.Cmd
	done       chan struct{}
	waitErr    error
}

// ErrNoBinary reports that no clickhouse-server executable was found.
var ErrNoBinary = errors.New("clickhouse-server not found (install Debian's clickhouse-server package)")

// FindBinary locates clickhouse-server.
func FindBinary() (string, error) {
	for _, name := range []string{"clickhouse-server", "clickhouse"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBinary
}

// FreePort returns a currently free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start writes the config under opts.Dir and starts the server, returning
// once it accepts TCP connections.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("chlocal: Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	for _, p := range []*int{&opts.TCPPort, &opts.HTTPPort} {
		if *p == 0 {
			if *p, err = FreePort(); err != nil {
				return nil, err
			}
		}
	}
	for _, sub := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", sub, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, fmt.Errorf("write users.xml: %w", err)
	}
	cfg := strings.NewReplacer("{DIR}", dir, "{TCP}", strconv.Itoa(opts.TCPPort), "{HTTP}", strconv.Itoa(opts.HTTPPort)).Replace(configXML)
	securePort := 0
	if opts.TLSCertFile != "" {
		if securePort, err = FreePort(); err != nil {
			return nil, err
		}
		cfg = strings.Replace(cfg, "</yandex>", "  <tcp_port_secure>"+strconv.Itoa(securePort)+"</tcp_port_secure>\n"+
			"  <openSSL><server><certificateFile>"+opts.TLSCertFile+"</certificateFile><privateKeyFile>"+opts.TLSKeyFile+
			"</privateKeyFile><verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>"+
			"<cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols>"+
			"<preferServerCiphers>true</preferServerCiphers></server></openSSL>\n</yandex>", 1)
	}
	cfgPath := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("write config.xml: %w", err)
	}
	args := []string{"--config-file=" + cfgPath}
	if filepath.Base(bin) == "clickhouse" {
		args = append([]string{"server"}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := os.OpenFile(filepath.Join(dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// Die with us if we are killed without a chance to stop it.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	out.Close()
	s := &Server{
		Dir:      dir,
		TCPAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.TCPPort)),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.HTTPPort)),
		cmd:      cmd,
		done:     make(chan struct{}),
	}
	if securePort != 0 {
		s.SecureAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(securePort))
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if opts.Detach {
		_ = os.WriteFile(filepath.Join(dir, "server.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	}
	if err := s.waitReady(ctx, opts.StartTimeout); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("clickhouse-server exited during start (%v); see %s", s.waitErr, filepath.Join(s.Dir, "log"))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if Ping(s.TCPAddr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("clickhouse-server did not accept connections on %s within %v; see %s", s.TCPAddr, timeout, filepath.Join(s.Dir, "log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ping checks that a ClickHouse native endpoint answers a hello.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	// ClientHello: code 0, name, major, minor, revision, database, user, password.
	var b []byte
	b = append(b, 0)
	b = appendStr(b, "exportd-ping")
	b = append(b, 1, 1)
	b = appendUvarint(b, 54213)
	b = appendStr(b, "default")
	b = appendStr(b, "default")
	b = appendStr(b, "")
	if _, err := c.Write(b); err != nil {
		return err
	}
	var resp [1]byte
	if _, err := c.Read(resp[:]); err != nil {
		return err
	}
	if resp[0] != 0 { // ServerHello
		return fmt.Errorf("unexpected server packet %d", resp[0])
	}
	return nil
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendStr(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DSN returns the exportd DSN of the server.
func (s *Server) DSN() string { return "clickhouse://" + s.TCPAddr + "/default" }

// Stop terminates the server and waits for it (SIGKILL after 15s).
func (s *Server) Stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	return nil
}

// Kill stops the server abruptly (SIGKILL), for fault tests.
func (s *Server) Kill() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// The config works on ClickHouse 18.16 (Debian) and on current releases
// (<yandex> is still accepted as the root element).
const configXML = `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{DIR}/log/server.log</log>
    <errorlog>{DIR}/log/server.err.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <tcp_port>{TCP}</tcp_port>
  <http_port>{HTTP}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{DIR}/data/</path>
  <tmp_path>{DIR}/tmp/</tmp_path>
  <user_files_path>{DIR}/user_files/</user_files_path>
  <format_schema_path>{DIR}/format_schemas/</format_schema_path>
  <users_config>{DIR}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>536870912</mark_cache_size>
  <uncompressed_cache_size>536870912</uncompressed_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <max_connections>4096</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
</yandex>
`

const usersXML = `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>10000000000</max_memory_usage>
      <use_uncompressed_cache>0</use_uncompressed_cache>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`
