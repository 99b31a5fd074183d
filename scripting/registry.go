package scripting

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PollInterval is how often Watch looks at the scripts directory.
const PollInterval = 500 * time.Millisecond

// Registry holds the current Script of each actor type in a directory
// (scripts/<type>.js) and reloads them when files change. Safe for
// concurrent use: Lookup is lock-free.
type Registry struct {
	dir string
	log *slog.Logger

	scripts atomic.Pointer[map[string]*Script]

	mu       sync.Mutex                   // serialises Reload; guards below
	failed   map[string][sha256.Size]byte // file → hash of the broken version already reported
	onChange func(actorType string, old, new *Script)
}

// Load compiles every *.js file in dir (hidden files skipped). Any compile
// error is returned (jetsnap refuses to start); it is a *ScriptError naming
// file:line:col, joined with the others when several files are broken.
func Load(dir string, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{dir: dir, log: log, failed: map[string][sha256.Size]byte{}}
	files, err := r.list()
	if err != nil {
		return nil, err
	}
	m := make(map[string]*Script, len(files))
	var errs []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("scripting: %w", err))
			continue
		}
		s, err := Compile(f, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[s.Type] = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.scripts.Store(&m)
	for _, t := range r.Types() {
		log.Info("reducer loaded", "reducer", m[t].Reducer(), "file", m[t].File)
	}
	if len(m) == 0 {
		log.Warn("no reducers found", "dir", dir)
	}
	return r, nil
}

// Dir returns the directory the registry watches.
func (r *Registry) Dir() string { return r.dir }

// Lookup returns the current script of actorType.
func (r *Registry) Lookup(actorType string) (*Script, bool) {
	s, ok := (*r.scripts.Load())[actorType]
	return s, ok
}

// Types returns the actor types that have a script, sorted.
func (r *Registry) Types() []string {
	m := *r.scripts.Load()
	ts := make([]string, 0, len(m))
	for t := range m {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// OnChange sets fn to be called, from Reload (and so from Watch's
// goroutine), after a script is added (old nil), changed or removed (new
// nil). Set it before Watch starts.
func (r *Registry) OnChange(fn func(actorType string, old, new *Script)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onChange = fn
}

// Watch polls the directory every PollInterval and applies changes (see
// Reload). It blocks until ctx ends and returns nil then.
func (r *Registry) Watch(ctx context.Context) error {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Reload(); err != nil {
				r.log.Error("reading reducers", "dir", r.dir, "err", err)
			}
		}
	}
}

// Reload looks at the directory once: a changed or added file is
// recompiled (on a compile error, logged with file:line:col, the previous
// version stays), a removed file's script is removed. It returns only
// errors listing the directory.
func (r *Registry) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	files, err := r.list()
	if err != nil {
		return err
	}
	old := *r.scripts.Load()
	next := make(map[string]*Script, len(old))
	type change struct {
		t    string
		o, n *Script
	}
	var changes []change
	seen := map[string]bool{}
	for _, f := range files {
		typ := strings.TrimSuffix(filepath.Base(f), ".js")
		seen[f] = true
		prev := old[typ]
		src, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed between list and read
			}
			r.log.Error("reading reducer", "file", f, "err", err)
			if prev != nil {
				next[typ] = prev
			}
			continue
		}
		h := sha256.Sum256(src)
		if prev != nil && bytes.Equal(prev.hash[:], h[:]) {
			next[typ] = prev
			delete(r.failed, f)
			continue
		}
		s, err := Compile(f, src)
		if err != nil {
			if fh, ok := r.failed[f]; !ok || fh != h {
				r.failed[f] = h
				if prev != nil {
					r.log.Error("reducer does not compile, keeping the previous version", "reducer", prev.Reducer(), "err", err)
				} else {
					r.log.Error("reducer does not compile", "file", f, "err", err)
				}
			}
			if prev != nil {
				next[typ] = prev
			}
			continue
		}
		delete(r.failed, f)
		next[typ] = s
		if prev == nil {
			r.log.Info("reducer added", "reducer", s.Reducer(), "file", f)
		} else {
			r.log.Info("reducer reloaded", "reducer", s.Reducer(), "previous", prev.Reducer(), "file", f)
		}
		changes = append(changes, change{typ, prev, s})
	}
	for typ, s := range old {
		if _, ok := next[typ]; !ok {
			r.log.Info("reducer removed", "reducer", s.Reducer(), "file", s.File)
			changes = append(changes, change{typ, s, nil})
		}
	}
	for f := range r.failed {
		if !seen[f] {
			delete(r.failed, f)
		}
	}
	r.scripts.Store(&next)
	if r.onChange != nil {
		for _, c := range changes {
			r.onChange(c.t, c.o, c.n)
		}
	}
	return nil
}

// list returns the reducer files in the directory, sorted.
func (r *Registry) list() ([]string, error) { return ListScripts(r.dir) }

// ListScripts returns the reducer files of dir, sorted: every *.js file
// except hidden ones (editor lock and swap files).
func ListScripts(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("scripting: reading scripts dir: %w", err)
	}
	var files []string
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".js") || strings.HasPrefix(name, ".") {
			continue
		}
		files = append(files, filepath.Join(dir, name))
	}
	sort.Strings(files)
	return files, nil
}
