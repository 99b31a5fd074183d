package scripting

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t testing.TB, dir, name, src string) {
	t.Helper()
	require_NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "account.js", accountSrc)
	writeFile(t, dir, "cart.js", cartSrc)
	writeFile(t, dir, "notes.txt", "not a script")
	writeFile(t, dir, ".#account.js", "editor lock file {")
	r, err := Load(dir, nil)
	require_NoError(t, err)
	require_Equal(t, len(r.Types()), 2)
	s, ok := r.Lookup("account")
	if !ok {
		t.Fatal("account not found")
	}
	require_Equal(t, s.File, filepath.Join(dir, "account.js"))
	if _, ok := r.Lookup("notes"); ok {
		t.Fatal("notes.txt loaded")
	}

	writeFile(t, dir, "broken.js", "function reduce(s, e) {\n  return s +;\n}")
	_, err = Load(dir, nil)
	if err == nil {
		t.Fatal("Load accepted a broken script")
	}
	require_Contains(t, err.Error(), filepath.Join(dir, "broken.js")+":2:13: SyntaxError")

	if _, err := Load(filepath.Join(dir, "missing"), nil); err == nil {
		t.Fatal("Load accepted a missing dir")
	}
}
