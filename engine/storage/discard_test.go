package storage

import (
	"context"
	"os"
	"slices"
	"testing"
)

// Discard removes the temp files of one object's dead writers at once, and
// nothing else: not the committed object, not other objects' temp files.
func TestFileDiscard(t *testing.T) {
	ctx := context.Background()
	f, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const name = "6f1d1f4e-8d5e-4b8a-9a51-0f2a3b4c5d6e.csv"
	committed, _ := f.Create(ctx, name)
	committed.Write([]byte("done"))
	if err := committed.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	dead1, _ := f.Create(ctx, name) // writers of a crashed process
	dead2, _ := f.Create(ctx, name)
	other, _ := f.Create(ctx, name+".gz")
	_, _ = dead1.Write([]byte("partial"))
	_ = dead2
	if err := f.Discard(ctx, name); err != nil {
		t.Fatal(err)
	}
	var names []string
	entries, _ := os.ReadDir(f.Dir())
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !slices.Contains(names, name) {
		t.Fatalf("after Discard: %v, want the committed object and the other object's temp file", names)
	}
	// A writer whose temp file was discarded cannot commit.
	if err := dead1.Commit(ctx); err == nil {
		t.Fatal("commit of a discarded writer succeeded")
	}
	_ = other.Abort()
	for _, bad := range []string{"", "../x", ".tmp-x", "a/b"} {
		if err := f.Discard(ctx, bad); err == nil {
			t.Errorf("Discard(%q) accepted", bad)
		}
	}
}
