// Command devch starts (or finds) the project-local servers used by
// `make run`: a private ClickHouse under .local/clickhouse and a private
// PostgreSQL under .local/postgres that outlive the command, so demo data
// and export records survive restarts. It prints the DSN on stdout.
//
//	devch start    --dir .local/clickhouse   start ClickHouse if not running; print DSN
//	devch stop     --dir .local/clickhouse   stop it
//	devch start-pg --dir .local/postgres     start PostgreSQL if not running; print DSN
//	devch stop-pg  --dir .local/postgres     stop it
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/exportd/exportd/ingest/chlocal"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devch:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: devch start|stop|start-pg|stop-pg [--dir D]")
	}
	if args[0] == "start-pg" || args[0] == "stop-pg" {
		return runPG(args)
	}
	fs := flag.NewFlagSet("devch", flag.ContinueOnError)
	dir := fs.String("dir", ".local/clickhouse", "server directory")
	port := fs.Int("port", 19000, "native TCP port (HTTP is port+1)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	addrFile := filepath.Join(*dir, "tcp-addr")
	switch args[0] {
	case "start":
		if b, err := os.ReadFile(addrFile); err == nil {
			addr := strings.TrimSpace(string(b))
			if chlocal.Ping(addr) == nil {
				fmt.Println("clickhouse://" + addr + "/default")
				return nil
			}
		}
		p := *port
		if chlocal.Ping("127.0.0.1:"+strconv.Itoa(p)) == nil || chlocal.Ping("127.0.0.1:"+strconv.Itoa(p+1)) == nil {
			p = 0 // taken by someone else: pick free ports
		}
		hp := 0
		if p != 0 {
			hp = p + 1
		}
		fmt.Fprintf(os.Stderr, "starting private ClickHouse in %s ...\n", *dir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := chlocal.Start(ctx, chlocal.Options{Dir: *dir, TCPPort: p, HTTPPort: hp, Detach: true})
		if err != nil {
			return err
		}
		if err := os.WriteFile(addrFile, []byte(srv.TCPAddr), 0o644); err != nil {
			return err
		}
		fmt.Println(srv.DSN())
		return nil
	case "stop":
		b, err := os.ReadFile(filepath.Join(*dir, "server.pid"))
		if err != nil {
			return nil
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		os.Remove(addrFile)
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
