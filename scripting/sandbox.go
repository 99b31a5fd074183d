package scripting

import (
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
