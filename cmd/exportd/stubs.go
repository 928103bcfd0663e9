package main

import (
	"context"
	"errors"
	"io"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("serve: not wired yet")
}

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("ingest: not wired yet")
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("token: not wired yet")
}
