package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd/engine/pgstore/pglocal"
)

// runPG starts or stops the project-local PostgreSQL (pglocal, detached,
// fsync on: records of `make run` are worth keeping).
func runPG(args []string) error {
	fs := flag.NewFlagSet("devch", flag.ContinueOnError)
	dir := fs.String("dir", ".local/postgres", "server directory")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dsnFile := filepath.Join(*dir, "dsn")
	switch args[0] {
	case "start-pg":
		if b, err := os.ReadFile(dsnFile); err == nil {
			dsn := strings.TrimSpace(string(b))
			if pingPG(dsn) == nil {
				fmt.Println(dsn)
				return nil
			}
		}
		fmt.Fprintf(os.Stderr, "starting private PostgreSQL in %s ...\n", *dir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := pglocal.Start(ctx, pglocal.Options{Dir: *dir, Detach: true, Durable: true})
		if err != nil {
			return err
		}
		if err := os.WriteFile(dsnFile, []byte(srv.DSN()), 0o644); err != nil {
			return err
		}
		fmt.Println(srv.DSN())
		return nil
	case "stop-pg":
		b, err := os.ReadFile(filepath.Join(*dir, "data", "postmaster.pid"))
		if err != nil {
			return nil // not running
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, _ := strconv.Atoi(strings.TrimSpace(first)); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGINT) // fast shutdown
		}
		os.Remove(dsnFile)
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func pingPG(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}
