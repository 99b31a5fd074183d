package scripting

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// Runtime folds events with scripts.
//
// A Runtime is confined to one goroutine: it must not be used by two
// goroutines at the same time (keep one per worker). It stays usable after
// any error, timeouts included.
//
// A fold runs in a JS realm (a goja.Runtime) of its script, taken from the
// script's pool of idle realms and put back after a fold that succeeded,
// or made when none is idle (about 15 ms: guards and lockdown, see
// guards.go and lockdown.go). A realm's built-ins are frozen and the
// script's top level runs anew in every fold, so nothing a fold does can
// be seen by another: the same events and script give byte-identical JSON
// in any Runtime, whatever it folded before. Top-level variables start
// afresh in every fold, as the reducer contract says (state lives in the
// state).
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
//
// Fold reads the events' Data in place, without copying it: it must not
// change until Fold returns. The returned state and error share no memory
// with it.
func (rt *Runtime) Fold(ctx context.Context, s *Script, actor string, state []byte, events []Event) (out []byte, err error) {
	if s == nil || s.prog == nil {
		return nil, errors.New("scripting: Fold with a nil or uncompiled script")
	}
	if err := ctx.Err(); err != nil {
		return nil, &ScriptError{File: s.File, Actor: actor, Err: err}
	}
	r, err := s.realm()
	if err != nil {
		return nil, err
	}
	// Set before begin, which runs the script's top level: goja re-panics
	// what is not a JS error, there as in the fold.
	defer func() {
		if x := recover(); x != nil {
			out, err = nil, r.scriptError(fmt.Errorf("scripting: internal error: %v", x), nil)
		}
		r.end(err == nil)
	}()
	if err := r.begin(ctx, actor, rt.lim, rt.console); err != nil {
		return nil, err
	}
	return r.fold(state, events)
}

// realm is a JS realm of one script: made once, used by one fold at a time.
type realm struct {
	vm      *goja.Runtime
	s       *Script
	run     goja.Callable // the script's top level (Script.prog)
	console func(level, msg string)

	stringify goja.Callable // the original JSON.stringify
	replacer  goja.Value

	// What lockdown left (see clean).
	globals     []string
	globalSyms  int
	globalProto *goja.Object

	// Per fold (begin, end).
	actor  string
	lim    Limits
	parent context.Context // the caller's ctx
	ctx    context.Context // parent with the timeout
	cancel context.CancelFunc
	stop   func() bool
	// interrupted gets a value once the fold's interrupt (stop's function)
	// has run, so that end waits for an interrupt already under way
	// instead of leaving it to land on the next fold.
	interrupted chan struct{}

	form      form
	reduceV   goja.Value // reduce
	init      goja.Callable
	handlersV map[string]goja.Value // handlers by event type
	anyV      goja.Value            // $any
	revision  goja.Value

	now       time.Time             // what Date.now() and new Date() give
	rng       uint64                // Math.random state
	strs      map[string]goja.Value // see str
	regexps   []regexpTimer         // exec and test calls in progress
	dynamic   bool                  // code was made at run time (see clean)
	globalSet bool                  // a global was created (see lockdown)

	drive    goja.Callable // see driveProgram
	events   []Event       // being folded by drive
	mem      foldMem       // their JS objects
	chunk    *chunk        // memory for the first of them, fold after fold (see foldMem)
	cur      int           // index in events of the event being folded
	curEvent goja.Value    // its JS event
	foldErr  error         // what next found wrong
}

// epoch is the time scripts see outside events (top level; init with no event).
var epoch = time.Unix(0, 0).UTC()

// newRealm makes a realm for s: sandbox, guards, lockdown.
func newRealm(s *Script) (_ *realm, err error) {
	configureRegexp()
	r := &realm{vm: goja.New(), s: s, now: epoch, interrupted: make(chan struct{}, 1)}
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("scripting: internal error: %v", x)
		}
		if err != nil {
			err = &ScriptError{File: s.File, Err: fmt.Errorf("setting up a realm: %w", err)}
		}
	}()
	vm := r.vm
	vm.SetTimeSource(func() time.Time { return r.now })
	vm.SetRandSource(r.random)
	// Take what we call before the script can replace it.
	r.stringify, _ = goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("stringify"))
	r.replacer = vm.ToValue(r.replace)
	if err := r.sandbox(); err != nil {
		return nil, err
	}
	if err := r.guard(); err != nil {
		return nil, err
	}
	if err := r.lockdown(); err != nil {
		return nil, err
	}
	f, err := vm.RunProgram(s.prog)
	if err != nil {
		return nil, err
	}
	r.run, _ = goja.AssertFunction(f)
	top := f
	if f, err = vm.RunProgram(driveProgram); err != nil {
		return nil, err
	}
	mk, _ := goja.AssertFunction(f)
	d, err := mk(goja.Undefined(), vm.ToValue(r.next), vm.ToValue(func(goja.FunctionCall) goja.Value { return r.curEvent }))
	if err != nil {
		return nil, err
	}
	r.drive, _ = goja.AssertFunction(d)
	// The top level's wrapper is the same function in every fold, and a
	// script reaches it (arguments.callee): frozen, like the built-ins, so
	// that nothing a fold puts on it is seen by the next (found in review).
	if f, err = vm.RunProgram(freezeProgram); err != nil {
		return nil, err
	}
	freeze, _ := goja.AssertFunction(f)
	for _, fn := range []goja.Value{top, d} {
		if _, err := freeze(goja.Undefined(), fn); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// freezeProgram freezes a function and its prototype object.
var freezeProgram = goja.MustCompile("jetsnap:freeze", `(function (f) {
  "use strict";
  Object.freeze(f);
  if (f.prototype) Object.freeze(f.prototype);
})`, true)

// driveProgram folds events in one call into JS: a call from Go into
// goja costs more than the reducer (a try frame, and goja drops its stack
// after every outermost call). next(st) checks what the reducer returned,
// moves to the next event and returns its reducer, or null at the end;
// current() returns that event.
var driveProgram = goja.MustCompile("jetsnap:fold", `(function (next, current) {
  "use strict";
  return function fold(st) {
    for (var fn = next(st); fn !== null; fn = next(st)) st = fn(st, current());
    return st;
  };
})`, true)

// next is driveProgram's next.
func (r *realm) next(c goja.FunctionCall) goja.Value {
	if r.cur >= 0 {
		if err := checkReturned(c.Argument(0), r.form); err != nil {
			r.foldErr = r.scriptError(err, &r.events[r.cur])
			return goja.Null()
		}
	}
	for r.cur+1 < len(r.events) {
		r.cur++
		ev := &r.events[r.cur]
		o := r.mem.event(r, r.events, r.cur)
		fn := r.reduceV
		if r.form == formHandlers {
			if fn = r.handlersV[o.typ()]; fn == nil {
				fn = r.anyV
			}
			if fn == nil {
				continue
			}
		}
		r.now = eventTime(ev.Time)
		r.seed(ev.Version)
		r.curEvent = r.vm.NewDynamicObject(o)
		return fn
	}
	return goja.Null()
}

// begin prepares r for a fold: limits, timeout, and the script's top level
// run anew.
func (r *realm) begin(ctx context.Context, actor string, lim Limits, console func(level, msg string)) error {
	r.actor, r.lim, r.console, r.parent = actor, lim, console, ctx
	r.now = epoch
	r.seed(0)
	clear(r.strs)
	r.regexps = r.regexps[:0]
	r.dynamic, r.globalSet = false, false
	r.vm.SetMaxCallStackSize(lim.MaxCallStack)
	r.ctx, r.cancel = context.WithTimeout(ctx, lim.Timeout)
	vm, tctx, interrupted := r.vm, r.ctx, r.interrupted
	r.stop = context.AfterFunc(tctx, func() {
		vm.Interrupt(tctx.Err())
		interrupted <- struct{}{}
	})
	heapWatch.add(r)
	out, err := r.run(goja.Undefined())
	if err != nil {
		return r.scriptError(err, nil)
	}
	if err := r.try(func() error { return r.resolve(out) }); err != nil {
		return r.scriptError(err, nil)
	}
	return nil
}

// end finishes a fold and puts r back in its script's pool if the fold
// succeeded and the realm is clean.
func (r *realm) end(ok bool) {
	heapWatch.remove(r)
	if !r.stop() {
		<-r.interrupted // the interrupt ran or is running: clear it after
	}
	r.cancel()
	r.vm.ClearInterrupt()
	r.reduceV, r.init, r.handlersV, r.anyV, r.revision = nil, nil, nil, nil, nil
	r.console, r.parent, r.ctx = nil, nil, nil
	clear(r.strs) // nothing of the fold stays alive in an idle realm
	if ok && r.clean() {
		r.s.pool.put(r)
	}
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

// resolve finds the script's form and functions in what its top level
// returned: [reduce, init, handlers, revision] (Script.prog).
func (r *realm) resolve(top goja.Value) error {
	vm := r.vm
	list := top.ToObject(vm)
	at := func(i int) goja.Value { return list.Get(strconv.Itoa(i)) }
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
	r.revision = at(3)
	if v := at(0); v != nil && !goja.IsUndefined(v) {
		if _, err := fn("reduce", v); err != nil {
			return err
		}
		r.reduceV = v
		var err error
		if r.init, err = fn("init", at(1)); err != nil {
			return err
		}
		r.form = formReduce
		return nil
	}
	h := at(2)
	if h == nil || goja.IsUndefined(h) {
		return errors.New("script defines neither reduce(state, event) nor a handlers object")
	}
	ho, ok := h.(*goja.Object)
	if !ok || goja.IsNull(h) {
		return errors.New("TypeError: handlers is not an object")
	}
	r.form = formHandlers
	r.handlersV = make(map[string]goja.Value)
	for _, k := range ho.GetOwnPropertyNames() {
		v := ho.Get(k)
		f, err := fn("handlers."+k, v)
		if err != nil {
			return err
		}
		switch k {
		case "$init":
			r.init = f
		case "$any":
			if f != nil {
				r.anyV = v
			}
		default:
			if f != nil {
				r.handlersV[k] = v
			}
		}
	}
	return nil
}

// revisionOf returns the script's `revision` as a string, "" if none.
func (r *realm) revisionOf() (string, error) {
	var rev string
	err := r.try(func() error {
		v := r.revision
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
	// One call into JS for all events (see driveProgram).
	if r.chunk == nil && len(events) > 0 {
		r.chunk = new(chunk)
	}
	r.events, r.cur, r.foldErr, r.mem = events, -1, nil, foldMem{}
	defer func() {
		r.release(events)
		r.events, r.curEvent, r.mem = nil, nil, foldMem{}
	}()
	out, err := r.drive(goja.Undefined(), st)
	if r.foldErr != nil {
		return nil, r.foldErr
	}
	if err != nil {
		var ev *Event
		if r.cur >= 0 && r.cur < len(events) {
			ev = &events[r.cur]
		}
		return nil, r.scriptError(err, ev)
	}
	st = out
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
	// JSON.stringify walks an array up to its length in Go (see guards.go).
	if o, ok := v.(*goja.Object); ok && o.ClassName() == "Array" {
		if n := o.Get("length").ToInteger(); n > maxGuardedArray {
			panic(r.vm.NewTypeError(fmt.Sprintf("an array of length %d at key %q", n, call.Argument(0).String())))
		}
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
		se.Seq, se.EventType = ev.Seq, eventType(ev)
	}
	var stack []goja.StackFrame
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	var ex *goja.Exception
	switch {
	case errors.As(err, &ie):
		stack = ie.Stack()
		if cause, ok := ie.Value().(error); ok && r.ctx.Err() == nil {
			se.Err = cause // a guard's (guards.go, heapwatch.go)
		} else if perr := r.parent.Err(); perr != nil {
			se.Err = perr
		} else {
			se.Err = fmt.Errorf("%w after %s", ErrTimeout, r.lim.Timeout)
		}
	case errors.As(err, &so):
		stack = so.Stack()
		se.Err = fmt.Errorf("%w (limit %d)", ErrStackOverflow, r.lim.MaxCallStack)
	case errors.As(err, &ex):
		stack = ex.Stack()
		// A copy: a thrown string may be a part of a payload, whose
		// memory the caller may reuse once Fold returns.
		se.Err = errors.New(strings.Clone(exceptionMessage(ex)))
	default:
		se.Err = err
	}
	for i := range stack {
		if stack[i].SrcName() == r.s.File {
			if p := stack[i].Position(); p.Line > 0 {
				se.Line, se.Column = sourcePosition(p.Line, p.Column)
				break
			}
		}
	}
	return se
}
