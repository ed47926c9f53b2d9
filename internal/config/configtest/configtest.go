// Package configtest gives tests the repository's own configuration as an
// in-memory tree they can change a line of, so that each test of a bad or
// changed configuration starts from the real data.
package configtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// PortedFS reads the configuration folder dir into memory.
func PortedFS(t testing.TB, dir string) fstest.MapFS {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	fsys := fstest.MapFS{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("read %s: %v", e.Name(), err)
		}
		fsys[e.Name()] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// Edit replaces the first occurrence of old in file. It fails the test when
// old is absent, so that a test never silently checks an unchanged
// configuration.
func Edit(t testing.TB, fsys fstest.MapFS, file, old, new string) {
	t.Helper()
	f, ok := fsys[file]
	if !ok {
		t.Fatalf("no file %s", file)
	}
	s := string(f.Data)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	fsys[file] = &fstest.MapFile{Data: []byte(strings.Replace(s, old, new, 1))}
}
