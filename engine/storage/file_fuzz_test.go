package storage

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzFileObjectName checks that no object name, however hostile, reaches
// outside the store's directory or names a temp file: whatever the file
// store accepts is a plain entry of its directory, and its Location is a
// file URL of exactly that path.
func FuzzFileObjectName(f *testing.F) {
	for _, s := range []string{"6f1d1f4e-8d5e-4b8a-9a51-0f2a3b4c5d6e.csv.zst", "../../etc/passwd", "..", ".", "",
		"a/../../b", `..\..\windows`, "%2e%2e%2fetc", ".tmp-x.csv-1", "x\x00y", "x\r\nContent-Type: evil", "/abs", "a\u202eb"} {
		f.Add(s)
	}
	store, err := NewFile(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := store.path(name)
		if err != nil {
			return
		}
		if filepath.Dir(p) != store.Dir() || filepath.Base(p) != name {
			t.Fatalf("name %q maps to %q, outside %q", name, p, store.Dir())
		}
		if strings.HasPrefix(name, tempPrefix) {
			t.Fatalf("name %q collides with temp files", name)
		}
		u, err := url.Parse(store.Location(name))
		if err != nil || u.Scheme != "file" || u.Path != p {
			t.Fatalf("Location(%q) = %q (%v), want file://%s", name, store.Location(name), err, p)
		}
	})
}
