package scripting

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
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
// between goroutines; every fold runs it in a fresh JS realm.
type Script struct {
	Type     string // actor type: file name without .js
	File     string // path of the file, as given to Compile
	Identity string // "r<revision>" if the script defines a global `revision`, else the first 16 hex digits of sha256(file bytes)

	form    form
	prog    *goja.Program
	hash    [sha256.Size]byte
	console bool // the source mentions console: define it in realms
	guards  bool // the source names a guarded built-in (see guardNames)
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
		// A realm defines console only for scripts that name it (it costs
		// a few µs per fold); code that builds the name at run time
		// finds no console.
		console: bytes.Contains(src, []byte("console")),
	}
	for _, name := range guardNames {
		s.guards = s.guards || bytes.Contains(src, []byte(name))
	}
	if !utf8.Valid(src) {
		return nil, &ScriptError{File: file, Err: errors.New("SyntaxError: file is not valid UTF-8")}
	}
	ast, err := parser.ParseFile(nil, file, string(src), 0)
	if err != nil {
		return nil, compileError(file, err)
	}
	prog, err := goja.CompileAST(ast, false)
	if err != nil {
		return nil, compileError(file, err)
	}
	s.prog = prog

	// Run the top level once to learn the form and the revision.
	lim := Limits{}.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), lim.Timeout)
	defer cancel()
	r, err := newRealm(ctx, s, "", lim, nil)
	if err != nil {
		return nil, err
	}
	defer r.close()
	s.form = r.form
	rev, err := r.revision()
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
		se.Line, se.Column = list[0].Position.Line, list[0].Position.Column
		msg := "SyntaxError: " + list[0].Message
		if len(list) > 1 {
			msg += fmt.Sprintf(" (and %d more errors)", len(list)-1)
		}
		se.Err = errors.New(msg)
	case errors.As(err, &one):
		se.Line, se.Column = one.Position.Line, one.Position.Column
		se.Err = errors.New("SyntaxError: " + one.Message)
	case errors.As(err, &syn):
		if syn.File != nil {
			p := syn.File.Position(syn.Offset)
			se.Line, se.Column = p.Line, p.Column
		}
		se.Err = errors.New("SyntaxError: " + syn.Message)
	}
	return se
}
