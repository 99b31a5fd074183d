package scripting

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/dop251/goja"
)

// Runtime folds events with scripts.
//
// A Runtime is confined to one goroutine: it must not be used by two
// goroutines at the same time (keep one per worker). It stays usable after
// any error, timeouts included.
//
// Every Fold call runs the script in a fresh JS realm (a new goja.Runtime
// that runs the script's top level: about 15 µs for a small script, see
// BenchmarkRealm), so nothing a script leaves in its globals, closures or
// built-in prototypes survives into another fold: the same events and
// script give byte-identical JSON in any Runtime, whatever it folded before.
// The price is that top-level variables start afresh in every fold, which
// the reducer contract says anyway (state lives in the state).
type Runtime struct {
	lim     Limits
	console func(level, msg string)
}

// NewRuntime returns a Runtime with lim (zero fields take the defaults).
func NewRuntime(lim Limits) *Runtime {
	return &Runtime{lim: lim.withDefaults()}
}

// Limits returns the limits in effect, defaults applied.
func (rt *Runtime) Limits() Limits { return rt.lim }

// SetConsole sets where console.log, .info, .warn, .error and .debug of
// reducers go: fn gets the level ("log", "info", ...) and the arguments
// joined by spaces (objects as JSON). nil, the default, drops them.
func (rt *Runtime) SetConsole(fn func(level, msg string)) { rt.console = fn }

// Fold folds events over state with script s for actor. state nil (or
// empty) means start from the script's init(actor) ($init in the handlers
// form; {} when absent). It returns the new state as compact JSON, keys in
// the order JSON.stringify gives.
//
// Errors are *ScriptError naming file, line and column (when known), actor,
// and the seq and type of the event being folded. A fold that runs longer
// than Limits.Timeout is interrupted and its error wraps ErrTimeout; when ctx
// ends first the error wraps ctx.Err(). Fold never panics.
func (rt *Runtime) Fold(ctx context.Context, s *Script, actor string, state []byte, events []Event) (out []byte, err error) {
	if s == nil || s.prog == nil {
		return nil, errors.New("scripting: Fold with a nil or uncompiled script")
	}
	if err := ctx.Err(); err != nil {
		return nil, &ScriptError{File: s.File, Actor: actor, Err: err}
	}
	r, err := newRealm(ctx, s, actor, rt.lim, rt.console)
	if err != nil {
		return nil, err
	}
	defer r.close()
	defer func() {
		if x := recover(); x != nil {
			out, err = nil, r.scriptError(fmt.Errorf("scripting: internal error: %v", x), nil)
		}
	}()
	return r.fold(state, events)
}

// realm is one fresh JS realm running one script for one fold.
type realm struct {
	vm      *goja.Runtime
	s       *Script
	actor   string
	lim     Limits
	parent  context.Context // the caller's ctx
	cancel  context.CancelFunc
	stop    func() bool
	console func(level, msg string)

	form     form
	reduce   goja.Callable
	init     goja.Callable
	handlers map[string]goja.Callable
	any      goja.Callable

	stringify goja.Callable
	replacer  goja.Value

	now time.Time // what Date.now() and new Date() give
	rng uint64    // Math.random state

	strs map[string]goja.Value // see str
}

// epoch is the time scripts see outside events (top level; init with no event).
var epoch = time.Unix(0, 0).UTC()

// newRealm creates the realm, arms the timeout and runs the script's top
// level. Close it when done.
func newRealm(parent context.Context, s *Script, actor string, lim Limits, console func(level, msg string)) (_ *realm, err error) {
	r := &realm{vm: goja.New(), s: s, actor: actor, lim: lim, parent: parent, console: console, now: epoch}
	ctx, cancel := context.WithTimeout(parent, lim.Timeout)
	r.cancel = cancel
	vm := r.vm
	r.stop = context.AfterFunc(ctx, func() { vm.Interrupt(ctx.Err()) })
	defer func() {
		if x := recover(); x != nil {
			err = r.scriptError(fmt.Errorf("scripting: internal error: %v", x), nil)
		}
		if err != nil {
			r.close()
		}
	}()

	vm.SetMaxCallStackSize(lim.MaxCallStack)
	vm.SetTimeSource(func() time.Time { return r.now })
	vm.SetRandSource(r.random)
	r.seed(0)
	// Take what we call before the script can replace it.
	r.stringify, _ = goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("stringify"))
	r.replacer = vm.ToValue(r.replace)
	if err := r.sandbox(); err != nil {
		return nil, r.scriptError(err, nil)
	}
	if err := r.guard(); err != nil {
		return nil, r.scriptError(err, nil)
	}
	if _, err := vm.RunProgram(s.prog); err != nil {
		return nil, r.scriptError(err, nil)
	}
	if err := r.try(r.resolve); err != nil {
		return nil, r.scriptError(err, nil)
	}
	return r, nil
}

func (r *realm) close() {
	r.stop()
	r.cancel()
	r.vm.ClearInterrupt()
}

// try runs f, turning JS exceptions and goja panics into errors.
func (r *realm) try(f func() error) (err error) {
	defer func() {
		if x := recover(); x != nil {
			if e, ok := x.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("scripting: internal error: %v", x)
			}
		}
	}()
	var ferr error
	if ex := r.vm.Try(func() { ferr = f() }); ex != nil {
		return ex
	}
	return ferr
}

// resolve finds the script's form and functions after its top level ran.
func (r *realm) resolve() error {
	vm := r.vm
	fn := func(name string, v goja.Value) (goja.Callable, error) {
		if v == nil || goja.IsUndefined(v) {
			return nil, nil
		}
		f, ok := goja.AssertFunction(v)
		if !ok {
			return nil, fmt.Errorf("TypeError: %s is not a function", name)
		}
		return f, nil
	}
	if v := vm.Get("reduce"); v != nil && !goja.IsUndefined(v) {
		var err error
		if r.reduce, err = fn("reduce", v); err != nil {
			return err
		}
		if r.init, err = fn("init", vm.Get("init")); err != nil {
			return err
		}
		r.form = formReduce
		return nil
	}
	h := vm.Get("handlers")
	if h == nil || goja.IsUndefined(h) {
		return errors.New("script defines neither reduce(state, event) nor a handlers object")
	}
	ho, ok := h.(*goja.Object)
	if !ok || goja.IsNull(h) {
		return errors.New("TypeError: handlers is not an object")
	}
	r.form = formHandlers
	r.handlers = make(map[string]goja.Callable)
	for _, k := range ho.GetOwnPropertyNames() {
		f, err := fn("handlers."+k, ho.Get(k))
		if err != nil {
			return err
		}
		switch k {
		case "$init":
			r.init = f
		case "$any":
			r.any = f
		default:
			if f != nil {
				r.handlers[k] = f
			}
		}
	}
	return nil
}

// revision returns the script's global `revision` as a string, "" if none.
func (r *realm) revision() (string, error) {
	var rev string
	err := r.try(func() error {
		v := r.vm.Get("revision")
		if v == nil || goja.IsUndefined(v) {
			return nil
		}
		switch v.ExportType().Kind().String() {
		case "string", "int64", "float64":
		default:
			return fmt.Errorf("revision must be a string or a number, not %s", v.ExportType())
		}
		rev = v.String()
		if rev == "" || len(rev) > 64 {
			return fmt.Errorf("revision %q must have 1 to 64 characters", rev)
		}
		for _, c := range rev {
			if c <= ' ' || c > '~' {
				return fmt.Errorf("revision %q: only printable ASCII without spaces is allowed", rev)
			}
		}
		return nil
	})
	return rev, err
}

// fold runs init (when state is empty) and every event, then stores the state.
func (r *realm) fold(state []byte, events []Event) ([]byte, error) {
	var st goja.Value
	if len(state) == 0 {
		if len(events) > 0 {
			r.now = eventTime(events[0].Time)
			r.seed(0)
		}
		var err error
		if st, err = r.initState(); err != nil {
			return nil, err
		}
	} else {
		var ok bool
		if st, ok = decodeJSON(r.vm, state); !ok {
			return nil, r.scriptError(errors.New("base state is not valid JSON"), nil)
		}
	}
	var args [2]goja.Value // reused: no allocation per call
	for i := range events {
		ev := &events[i]
		r.now = eventTime(ev.Time)
		r.seed(ev.Version)
		var fn goja.Callable
		if r.form == formReduce {
			fn = r.reduce
		} else {
			fn = r.handlers[ev.Type]
			if fn == nil {
				fn = r.any
			}
			if fn == nil {
				continue
			}
		}
		// A goja.Callable catches JS exceptions and interrupts itself;
		// Fold recovers anything else.
		args[0], args[1] = st, r.event(ev)
		next, err := fn(goja.Undefined(), args[:]...)
		if err != nil {
			return nil, r.scriptError(err, ev)
		}
		if err := checkReturned(next, r.form); err != nil {
			return nil, r.scriptError(err, ev)
		}
		st = next
	}
	var last *Event
	if len(events) > 0 {
		last = &events[len(events)-1]
	}
	return r.store(st, last)
}

func (r *realm) initState() (goja.Value, error) {
	if r.init == nil {
		return r.vm.NewObject(), nil
	}
	var st goja.Value
	err := r.try(func() error {
		v, err := r.init(goja.Undefined(), r.vm.ToValue(r.actor))
		st = v
		return err
	})
	if err != nil {
		se := r.scriptError(err, nil)
		se.Err = fmt.Errorf("init: %w", se.Err)
		return nil, se
	}
	if err := checkReturned(st, 0); err != nil {
		return nil, r.scriptError(err, nil)
	}
	return st, nil
}

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// checkReturned rejects what a reducer must not return: undefined (usually
// a forgotten return) and a Promise (reducers are synchronous).
func checkReturned(v goja.Value, f form) error {
	name := "init"
	switch f {
	case formReduce:
		name = "reduce"
	case formHandlers:
		name = "handler"
	}
	if v == nil || goja.IsUndefined(v) {
		return fmt.Errorf("%s returned undefined (return the state)", name)
	}
	if o, ok := v.(*goja.Object); ok && o.ExportType() == promiseType {
		return fmt.Errorf("%s returned a Promise: reducers must be synchronous (no async functions)", name)
	}
	return nil
}

// store serialises the state with JSON.stringify and checks its size.
func (r *realm) store(st goja.Value, last *Event) ([]byte, error) {
	var js goja.Value
	err := r.try(func() error {
		v, err := r.stringify(goja.Undefined(), st, r.replacer)
		js = v
		return err
	})
	if err != nil {
		var ex *goja.Exception
		if errors.As(err, &ex) && !isUncatchable(err) {
			err = fmt.Errorf("%w: %s", ErrNotSerialisable, exceptionMessage(ex))
		}
		return nil, r.scriptError(err, last)
	}
	if js == nil || goja.IsUndefined(js) {
		return nil, r.scriptError(fmt.Errorf("%w: the state is %s", ErrNotSerialisable, typeOf(st)), last)
	}
	out := []byte(js.String())
	if len(out) > r.lim.MaxStateBytes {
		return nil, r.scriptError(fmt.Errorf("%w: %d bytes, limit %d", ErrStateTooLarge, len(out), r.lim.MaxStateBytes), last)
	}
	if d := jsonDepth(out); d > MaxStateDepth {
		return nil, r.scriptError(fmt.Errorf("%w: nested %d deep, limit %d", ErrNotSerialisable, d, MaxStateDepth), last)
	}
	return out, nil
}

// replace is the JSON.stringify replacer: it refuses what JSON would drop
// silently but a later fold would miss (functions, symbols).
func (r *realm) replace(call goja.FunctionCall) goja.Value {
	v := call.Argument(1)
	if _, ok := goja.AssertFunction(v); ok {
		panic(r.vm.NewTypeError(fmt.Sprintf("a function at key %q", call.Argument(0).String())))
	}
	if _, ok := v.(*goja.Symbol); ok {
		panic(r.vm.NewTypeError(fmt.Sprintf("a symbol at key %q", call.Argument(0).String())))
	}
	return v
}

func typeOf(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	}
	if _, ok := goja.AssertFunction(v); ok {
		return "a function"
	}
	if _, ok := v.(*goja.Symbol); ok {
		return "a symbol"
	}
	return v.ExportType().String()
}

// MaxStateDepth bounds how deeply objects and arrays nest in a stored
// state, so that every stored state can be decoded again as a base.
const MaxStateDepth = 1000

// jsonDepth returns the deepest nesting of objects and arrays in valid JSON.
func jsonDepth(b []byte) int {
	depth, max, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

func eventTime(t time.Time) time.Time {
	if t.IsZero() {
		return epoch
	}
	return t
}

// seed resets Math.random to a sequence that depends only on the actor and
// version: FNV-1a of both seeds a splitmix64 generator.
func (r *realm) seed(version uint64) {
	h := uint64(14695981039346656037)
	for i := 0; i < len(r.actor); i++ {
		h ^= uint64(r.actor[i])
		h *= 1099511628211
	}
	for i := 0; i < 8; i++ {
		h ^= (version >> (8 * i)) & 0xff
		h *= 1099511628211
	}
	r.rng = h
}

func (r *realm) random() float64 {
	r.rng += 0x9e3779b97f4a7c15
	z := r.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

func isUncatchable(err error) bool {
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	return errors.As(err, &ie) || errors.As(err, &so)
}

// exceptionMessage gives the thrown value as text, e.g. "TypeError: x is
// not a function", without running more script code than toString.
func exceptionMessage(ex *goja.Exception) (msg string) {
	defer func() {
		if recover() != nil {
			msg = "exception"
		}
	}()
	if v := ex.Value(); v != nil {
		return v.String()
	}
	return "exception"
}

// scriptError maps err (a goja error or ours) to a *ScriptError with the
// script position when known.
func (r *realm) scriptError(err error, ev *Event) *ScriptError {
	se := &ScriptError{File: r.s.File, Actor: r.actor}
	if ev != nil {
		se.Seq, se.EventType = ev.Seq, ev.Type
	}
	var stack []goja.StackFrame
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	var ex *goja.Exception
	switch {
	case errors.As(err, &ie):
		stack = ie.Stack()
		if perr := r.parent.Err(); perr != nil {
			se.Err = perr
		} else {
			se.Err = fmt.Errorf("%w after %s", ErrTimeout, r.lim.Timeout)
		}
	case errors.As(err, &so):
		stack = so.Stack()
		se.Err = fmt.Errorf("%w (limit %d)", ErrStackOverflow, r.lim.MaxCallStack)
	case errors.As(err, &ex):
		stack = ex.Stack()
		msg := exceptionMessage(ex)
		se.Err = errors.New(msg)
	default:
		se.Err = err
	}
	for i := range stack {
		if stack[i].SrcName() == r.s.File {
			if p := stack[i].Position(); p.Line > 0 {
				se.Line, se.Column = p.Line, p.Column
				break
			}
		}
	}
	return se
}
