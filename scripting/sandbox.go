package scripting

import (
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// sandbox prepares a fresh realm's globals. goja gives only ECMAScript
// built-ins (no require, timers, I/O or process access); jetsnap adds a
// console whose output goes to the Runtime's console hook, or nowhere.
func (r *realm) sandbox() error {
	vm := r.vm
	if !r.s.console {
		return nil
	}
	// console is made on first use: most folds never touch it and native
	// functions cost a few µs per realm.
	global := vm.GlobalObject()
	getter := vm.ToValue(func(goja.FunctionCall) goja.Value {
		console := vm.NewObject()
		for _, level := range []string{"log", "info", "warn", "error", "debug"} {
			_ = console.Set(level, r.consoleFunc(level))
		}
		_ = global.DefineDataProperty("console", console, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
		return console
	})
	setter := vm.ToValue(func(call goja.FunctionCall) goja.Value {
		_ = global.DefineDataProperty("console", call.Argument(0), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
		return goja.Undefined()
	})
	return global.DefineAccessorProperty("console", getter, setter, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func (r *realm) consoleFunc(level string) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		if r.console == nil {
			return goja.Undefined()
		}
		parts := make([]string, len(call.Arguments))
		for i, a := range call.Arguments {
			parts[i] = r.format(a)
		}
		r.console(level, strings.Join(parts, " "))
		return goja.Undefined()
	}
}

// format renders one console argument: strings as they are, objects as JSON
// when they can be, anything else as String(v).
func (r *realm) format(v goja.Value) string {
	if _, ok := v.(*goja.Object); ok {
		if _, fn := goja.AssertFunction(v); !fn {
			if s, err := r.stringify(goja.Undefined(), v); err == nil && s != nil && !goja.IsUndefined(s) {
				return s.String()
			}
		}
	}
	return v.String()
}

// Guards for goja built-ins that Runtime.Interrupt cannot stop while they
// run, because they loop or allocate in Go: a script could otherwise hold a
// worker far past its timeout ('x'.repeat(2**28), new Array(1e8).fill(0),
// Array.from({length: 1e8})). Each guarded built-in throws a RangeError
// beyond these sizes, which no storable state (JETSNAP_MAX_STATE_BYTES)
// needs. This is a cheap first line, not a memory limit.
const (
	maxGuardedString = 1 << 24 // characters
	maxGuardedArray  = 1 << 20 // elements
)

// guardNames are the words that make a script get the guards: a script
// that never names them cannot call them (short of building names at run
// time), and installing them costs a few µs per fold.
var guardNames = []string{"repeat", "padStart", "padEnd", "join", "fill", "Array.from"}

// guardProgram makes the guarded wrappers. They are JS functions (a native
// function cannot call a built-in back through goja's Callable while a
// fold runs) that run check first, a Go function that throws when the
// result would be too large.
var guardProgram = goja.MustCompile("jetsnap:guards", `(function (check, oRepeat, oPadStart, oPadEnd, oJoin, oFill, oFrom) {
  return [
    function repeat(n) { check(0, this, n); return oRepeat.apply(this, arguments); },
    function padStart(n) { check(1, this, n); return oPadStart.apply(this, arguments); },
    function padEnd(n) { check(1, this, n); return oPadEnd.apply(this, arguments); },
    function join() { check(2, this); return oJoin.apply(this, arguments); },
    function fill(v, start, end) { check(3, this, start, end); return oFill.apply(this, arguments); },
    function from(items) { check(4, items); return oFrom.apply(this, arguments); },
  ];
})`, true)

// guard installs the guards when the script names a guarded built-in.
func (r *realm) guard() error {
	if !r.s.guards {
		return nil
	}
	vm := r.vm
	str := vm.Get("String").ToObject(vm).Get("prototype").ToObject(vm)
	arr := vm.Get("Array").ToObject(vm)
	arrProto := arr.Get("prototype").ToObject(vm)
	targets := []struct {
		obj  *goja.Object
		name string
	}{{str, "repeat"}, {str, "padStart"}, {str, "padEnd"}, {arrProto, "join"}, {arrProto, "fill"}, {arr, "from"}}

	f, err := vm.RunProgram(guardProgram)
	if err != nil {
		return err
	}
	makeGuards, _ := goja.AssertFunction(f)
	args := []goja.Value{vm.ToValue(r.checkSize)}
	for _, t := range targets {
		args = append(args, t.obj.Get(t.name))
	}
	list, err := makeGuards(goja.Undefined(), args...)
	if err != nil {
		return err
	}
	lo := list.ToObject(vm)
	for i, t := range targets {
		if err := t.obj.DefineDataProperty(t.name, lo.Get(strconv.Itoa(i)), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
			return err
		}
	}
	return nil
}

// checkSize is the check of the guards: (kind, subject, args...).
func (r *realm) checkSize(c goja.FunctionCall) goja.Value {
	vm := r.vm
	length := func(v goja.Value) int64 {
		if goja.IsUndefined(v) || goja.IsNull(v) {
			return 0
		}
		l := v.ToObject(vm).Get("length")
		if l == nil {
			return 0
		}
		return max(l.ToInteger(), 0)
	}
	var what string
	switch c.Argument(0).ToInteger() {
	case 0:
		if int64(len(c.Argument(1).String()))*c.Argument(2).ToInteger() > maxGuardedString {
			what = "String.prototype.repeat"
		}
	case 1:
		if c.Argument(2).ToInteger() > maxGuardedString {
			what = "String.prototype.padStart/padEnd"
		}
	case 2:
		if length(c.Argument(1)) > maxGuardedArray {
			what = "Array.prototype.join"
		}
	case 3:
		n := length(c.Argument(1))
		rel := func(v goja.Value, def int64) int64 {
			if goja.IsUndefined(v) {
				return def
			}
			if i := v.ToInteger(); i < 0 {
				return max(n+i, 0)
			} else {
				return min(i, n)
			}
		}
		if rel(c.Argument(3), n)-rel(c.Argument(2), 0) > maxGuardedArray {
			what = "Array.prototype.fill"
		}
	case 4:
		if length(c.Argument(1)) > maxGuardedArray {
			what = "Array.from"
		}
	}
	if what != "" {
		e, err := vm.New(vm.Get("RangeError"), vm.ToValue(what+" would be too large for a reducer"))
		if err != nil {
			panic(err)
		}
		panic(e)
	}
	return goja.Undefined()
}
