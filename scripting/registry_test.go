package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

// logRecorder is a slog handler that keeps messages for tests.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, b.String())
	return nil
}

func (l *logRecorder) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

func identity(r *Registry, typ string) string {
	s, ok := r.Lookup(typ)
	if !ok {
		return ""
	}
	return s.Identity
}

func TestHotReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "account.js", "var revision = 1;\n"+accountSrc)
	rec := &logRecorder{}
	r, err := Load(dir, slog.New(rec))
	require_NoError(t, err)
	var mu sync.Mutex
	var changes []string
	r.OnChange(func(typ string, old, new *Script) {
		mu.Lock()
		defer mu.Unlock()
		o, n := "-", "-"
		if old != nil {
			o = old.Reducer()
		}
		if new != nil {
			n = new.Reducer()
		}
		changes = append(changes, typ+":"+o+">"+n)
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Watch(ctx) }()
	defer func() {
		cancel()
		require_NoError(t, <-done)
	}()

	// A pipeline folding the account actor all along, as capture workers do.
	var seen sync.Map
	stop := make(chan struct{})
	folded := make(chan struct{})
	go func() {
		defer close(folded)
		rt := NewRuntime(Limits{})
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, _ := r.Lookup("account")
			out, err := rt.Fold(context.Background(), s, "account.1", nil, evs("account.1", "Deposited", `{"amount":2}`))
			if err != nil {
				seen.Store("error: "+err.Error(), true)
				continue
			}
			seen.Store(s.Reducer()+" "+string(out), true)
		}
	}()
	defer func() { close(stop); <-folded }()
	has := func(k string) func() bool {
		return func() bool { _, ok := seen.Load(k); return ok }
	}

	waitFor(t, 10*time.Second, has(`account@r1 {"id":"account.1","balance":2}`))

	// Edit: the new version is picked up within a second or two (the
	// deadlines below are generous for -race).
	start := time.Now()
	writeFile(t, dir, "account.js", "var revision = 2;\n"+strings.Replace(accountSrc, "balance: 0", "balance: 100", 1))
	waitFor(t, 10*time.Second, func() bool { return identity(r, "account") == "r2" })
	t.Logf("reload took %s", time.Since(start))
	waitFor(t, 10*time.Second, has(`account@r2 {"id":"account.1","balance":102}`))

	// Break: logged with file:line:col, the previous version stays.
	writeFile(t, dir, "account.js", "var revision = 3;\nfunction reduce(s, e) {\n  return s +;\n}\n")
	waitFor(t, 10*time.Second, func() bool { return rec.has("account.js:3:13: SyntaxError") })
	require_Equal(t, identity(r, "account"), "r2")

	// Fix.
	writeFile(t, dir, "account.js", "var revision = 4;\n"+accountSrc)
	waitFor(t, 10*time.Second, func() bool { return identity(r, "account") == "r4" })
	waitFor(t, 10*time.Second, has(`account@r4 {"id":"account.1","balance":2}`))

	// Without a revision the identity follows the content.
	writeFile(t, dir, "account.js", accountSrc)
	waitFor(t, 10*time.Second, func() bool { return len(identity(r, "account")) == 16 })

	// Add and remove.
	writeFile(t, dir, "cart.js", cartSrc)
	waitFor(t, 10*time.Second, func() bool { _, ok := r.Lookup("cart"); return ok })
	require_NoError(t, os.Remove(filepath.Join(dir, "cart.js")))
	waitFor(t, 10*time.Second, func() bool { _, ok := r.Lookup("cart"); return !ok })

	seen.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), "error") {
			t.Errorf("fold failed: %s", k)
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	require_Equal(t, strings.Join(changes[:3], " "), "account:account@r1>account@r2 account:account@r2>account@r4 account:account@r4>account@"+identity(r, "account"))
	require_Equal(t, len(changes), 5)
}

func TestReloadBrokenNewFile(t *testing.T) {
	dir := t.TempDir()
	rec := &logRecorder{}
	r, err := Load(dir, slog.New(rec))
	require_NoError(t, err)
	writeFile(t, dir, "new.js", "function reduce(s, e) {")
	require_NoError(t, r.Reload())
	if _, ok := r.Lookup("new"); ok {
		t.Fatal("broken script loaded")
	}
	if !rec.has("new.js:1:") {
		t.Fatalf("compile error not logged: %v", rec.msgs)
	}
	// Reported once, not on every poll.
	require_NoError(t, r.Reload())
	n := 0
	for _, m := range rec.msgs {
		if strings.Contains(m, "does not compile") {
			n++
		}
	}
	require_Equal(t, n, 1)
}
