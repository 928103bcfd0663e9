// Package storage holds export artefacts: the local file store (temp file,
// fsync, rename) and, later, S3. A store never exposes a partial object:
// objects become visible only on Commit, and Abort leaves nothing behind.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotFound reports a missing object.
var ErrNotFound = errors.New("object not found")

// Writer receives an object's bytes. Write is not safe for concurrent use.
// Exactly one of Commit or Abort must be called; after Commit the object is
// visible whole, after Abort nothing of it remains.
type Writer interface {
	io.Writer
	Commit(ctx context.Context) error
	Abort() error
}

// Object is an opened, committed object. ReadAt may be called concurrently.
type Object interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Store creates, opens and deletes objects named by the engine
// (e.g. "<export-id>.csv.zst").
type Store interface {
	Create(ctx context.Context, name string) (Writer, error)
	Open(ctx context.Context, name string) (Object, error)
	Delete(ctx context.Context, name string) error
	// Location is the user-facing URL of an object (file:///abs or s3://b/k).
	Location(name string) string
	// Check verifies the store is writable (readiness).
	Check(ctx context.Context) error
	// Sweep removes leftovers (temp files) of writers that died, older than age.
	Sweep(ctx context.Context, age time.Duration) (int, error)
}

// Open returns the store for a URL: file://path (relative paths are resolved
// against the working directory).
func Open(rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse storage URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		p := u.Host + u.Path // file://./data/exports → "." + "/data/exports"
		if u.Opaque != "" {
			p = u.Opaque
		}
		if p == "" {
			return nil, errors.New("parse storage URL: file:// needs a path")
		}
		return NewFile(p)
	case "s3":
		cfg, err := ParseS3URL(rawURL)
		if err != nil {
			return nil, err
		}
		return NewS3(context.Background(), cfg)
	default:
		return nil, fmt.Errorf("parse storage URL: unsupported scheme %q (want file:// or s3://)", u.Scheme)
	}
}

// File stores objects as files in one directory.
type File struct {
	dir string
}

var _ Store = (*File)(nil)

const tempPrefix = ".tmp-"

// NewFile returns a file store rooted at dir, creating it if needed.
func NewFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory %s: %w", abs, err)
	}
	return &File{dir: abs}, nil
}

// Dir returns the absolute directory of the store.
func (f *File) Dir() string { return f.dir }

func (f *File) path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("invalid object name %q", name)
	}
	return filepath.Join(f.dir, name), nil
}

// Create starts a temp file in the store's directory (same filesystem, so
// the final rename is atomic).
func (f *File) Create(_ context.Context, name string) (Writer, error) {
	final, err := f.path(name)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(f.dir, tempPrefix+name+"-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %s: %w", name, err)
	}
	return &fileWriter{f: tmp, final: final, dir: f.dir}, nil
}

type fileWriter struct {
	f     *os.File
	final string
	dir   string
	done  bool
}

func (w *fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *fileWriter) Commit(_ context.Context) error {
	if w.done {
		return errors.New("commit of a finished writer")
	}
	w.done = true
	if err := w.f.Sync(); err != nil {
		w.cleanup()
		return fmt.Errorf("fsync %s: %w", w.f.Name(), err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("close %s: %w", w.f.Name(), err)
	}
	if err := os.Chmod(w.f.Name(), 0o640); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("chmod %s: %w", w.f.Name(), err)
	}
	if err := os.Rename(w.f.Name(), w.final); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("rename to %s: %w", w.final, err)
	}
	return syncDir(w.dir)
}

func (w *fileWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.cleanup()
}

func (w *fileWriter) cleanup() error {
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove temp %s: %w", w.f.Name(), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

type fileObject struct {
	*os.File
	size int64
}

func (o fileObject) Size() int64 { return o.size }

// Open opens a committed object.
func (f *File) Open(_ context.Context, name string) (Object, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	return fileObject{File: fh, size: st.Size()}, nil
}

// Delete removes an object; a missing object is not an error.
func (f *File) Delete(_ context.Context, name string) error {
	p, err := f.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}

// Location returns file:///abs/path of the object.
func (f *File) Location(name string) string {
	return (&url.URL{Scheme: "file", Path: filepath.Join(f.dir, name)}).String()
}

// Check creates and removes a probe file.
func (f *File) Check(_ context.Context) error {
	tmp, err := os.CreateTemp(f.dir, tempPrefix+"probe-*")
	if err != nil {
		return fmt.Errorf("storage not writable: %w", err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// Discard removes the temp files of writers of name (a committed object is
// left alone). The engine calls it for an export whose writer is known to
// be gone: a replica restarting after a crash, or one declaring another
// replica's export lost. A writer that was in fact still alive then fails
// at Commit (its temp file is gone) rather than exposing anything.
func (f *File) Discard(_ context.Context, name string) error {
	if _, err := f.path(name); err != nil {
		return err
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return fmt.Errorf("read storage directory: %w", err)
	}
	prefix := tempPrefix + name + "-"
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := os.Remove(filepath.Join(f.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove temp %s: %w", e.Name(), err)
		}
	}
	return nil
}

// Sweep removes temp files not modified for age: a live writer keeps
// touching its file, so an old temp file belongs to a writer that died.
func (f *File) Sweep(_ context.Context, age time.Duration) (int, error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return 0, fmt.Errorf("read storage directory: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		if os.Remove(filepath.Join(f.dir, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

// listPage is how many names List hands over at a time.
const listPage = 1000

// List calls fn with the names of committed objects last modified more
// than grace ago, listPage at a time (the reconciler's input; temp files
// are Sweep's). It stops at fn's first error.
func (f *File) List(_ context.Context, grace time.Duration, fn func(names []string) error) error {
	d, err := os.Open(f.dir)
	if err != nil {
		return fmt.Errorf("open storage directory: %w", err)
	}
	defer d.Close()
	cutoff := time.Now().Add(-grace)
	for {
		entries, err := d.ReadDir(listPage)
		var names []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
				continue
			}
			if info, ierr := e.Info(); ierr != nil || info.ModTime().After(cutoff) {
				continue
			}
			names = append(names, e.Name())
		}
		if len(names) > 0 {
			if ferr := fn(names); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read storage directory: %w", err)
		}
	}
}
