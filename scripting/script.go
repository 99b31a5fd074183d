package scripting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// form is the shape of a reducer script.
type form int

const (
	formReduce   form = iota + 1 // init(actor) + reduce(state, event)
	formHandlers                 // var handlers = { $init, <Type>: fn, $any }
)

// Script is one compiled reducer file. It is immutable and safe to share
// between goroutines. It keeps a pool of idle JS realms for its folds (see
// Runtime).
type Script struct {
	Type     string // actor type: file name without .js
	File     string // path of the file, as given to Compile
	Identity string // "r<revision>" if the script defines a global `revision`, else the first 16 hex digits of sha256(file bytes)

	form form
	prog *goja.Program // the top level as a function, see wrapPrefix
	hash [sha256.Size]byte
	pool realmPool
	// global: the script names globalThis, eval or Function or uses
	// this, so it can reach the global object (see realm.clean).
	global bool
}

// maxIdleRealms bounds the idle realms a script keeps (a realm is a few
// MiB; there is one per fold running at the same time).
const maxIdleRealms = 8

// realmPool holds a script's idle realms.
type realmPool struct {
	mu   sync.Mutex
	idle []*realm
}

func (p *realmPool) get() *realm {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		r := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return r
	}
	return nil
}

func (p *realmPool) put(r *realm) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < maxIdleRealms {
		p.idle = append(p.idle, r)
	}
}

// realm returns an idle realm of s, or a new one.
func (s *Script) realm() (*realm, error) {
	if r := s.pool.get(); r != nil {
		return r, nil
	}
	return newRealm(s)
}

// wrapPrefix and wrapSuffix make a script's top level a function that runs
// it afresh in every fold and returns what the fold needs (realm.resolve).
// A valid script stays the same code in a function body (Compile parses
// it alone first), so only columns on its first line move.
const (
	wrapPrefix = "(function () {"
	wrapSuffix = "\n;return [typeof reduce === \"undefined\" ? void 0 : reduce, typeof init === \"undefined\" ? void 0 : init, " +
		"typeof handlers === \"undefined\" ? void 0 : handlers, typeof revision === \"undefined\" ? void 0 : revision];\n})"
)

// sourcePosition maps a position in the wrapped script to the file's.
func sourcePosition(line, col int) (int, int) {
	if line == 1 && col > len(wrapPrefix) {
		col -= len(wrapPrefix)
	}
	return line, col
}

// Reducer returns "<type>@<identity>", the value of the Jetsnap-Reducer header.
func (s *Script) Reducer() string { return s.Type + "@" + s.Identity }

// Compile compiles one reducer file. file names it in errors and gives the
// actor type (its base name without .js). Compile also runs the script's
// top level once, in a sandbox bounded by the default Limits, to check that
// it defines reduce(state, event) or a handlers object and to read its
// revision. Errors are *ScriptError naming file:line:col where known.
func Compile(file string, src []byte) (*Script, error) {
	s := &Script{
		Type: strings.TrimSuffix(filepath.Base(file), ".js"),
		File: file,
		hash: sha256.Sum256(src),
	}
	if !utf8.Valid(src) {
		return nil, &ScriptError{File: file, Err: errors.New("SyntaxError: file is not valid UTF-8")}
	}
	configureRegexp() // before goja compiles the script's regular expressions
	ast, err := parser.ParseFile(nil, file, string(src), 0)
	if err != nil {
		return nil, compileError(file, err)
	}
	var sc scan
	sc.walk(reflect.ValueOf(ast))
	if sc.bigint != 0 {
		se := &ScriptError{File: file, Err: errNoBigInt}
		if p := ast.File.Position(int(sc.bigint) - ast.File.Base()); p.Line > 0 {
			se.Line, se.Column = p.Line, p.Column
		}
		return nil, se
	}
	s.global = sc.global
	wrapped, err := parser.ParseFile(nil, file, wrapPrefix+string(src)+wrapSuffix, 0)
	if err != nil {
		return nil, compileError(file, err)
	}
	prog, err := goja.CompileAST(wrapped, false)
	if err != nil {
		return nil, compileError(file, err)
	}
	s.prog = prog

	// Run the top level once to learn the form and the revision; the
	// realm is then the first of the pool.
	r, err := newRealm(s)
	if err != nil {
		return nil, err
	}
	if err := r.begin(context.Background(), "", Limits{}.withDefaults(), nil); err != nil {
		r.end(false)
		return nil, err
	}
	s.form = r.form
	rev, err := r.revisionOf()
	r.end(err == nil)
	if err != nil {
		return nil, &ScriptError{File: file, Err: err}
	}
	if rev != "" {
		s.Identity = "r" + rev
	} else {
		s.Identity = hex.EncodeToString(s.hash[:8])
	}
	return s, nil
}

// compileError turns a goja parse or compile error into a *ScriptError.
func compileError(file string, err error) error {
	se := &ScriptError{File: file, Err: err}
	var list parser.ErrorList
	var one *parser.Error
	var syn *goja.CompilerSyntaxError
	switch {
	case errors.As(err, &list) && len(list) > 0:
		se.Line, se.Column = sourcePosition(list[0].Position.Line, list[0].Position.Column)
		msg := "SyntaxError: " + list[0].Message
		if len(list) > 1 {
			msg += fmt.Sprintf(" (and %d more errors)", len(list)-1)
		}
		se.Err = errors.New(msg)
	case errors.As(err, &one):
		se.Line, se.Column = sourcePosition(one.Position.Line, one.Position.Column)
		se.Err = errors.New("SyntaxError: " + one.Message)
	case errors.As(err, &syn):
		if syn.File != nil {
			p := syn.File.Position(syn.Offset)
			se.Line, se.Column = sourcePosition(p.Line, p.Column)
		}
		se.Err = errors.New("SyntaxError: " + syn.Message)
	}
	return se
}
