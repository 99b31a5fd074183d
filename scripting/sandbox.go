package scripting

import (
	"strings"

	"github.com/dop251/goja"
)

// sandbox adds to a new realm what jetsnap gives scripts besides the
// ECMAScript built-ins (goja has no require, timers, I/O or process
// access): a console whose output goes to the Runtime's console hook, or
// nowhere. lockdown freezes it with the built-ins.
func (r *realm) sandbox() error {
	console := r.vm.NewObject()
	for _, level := range []string{"log", "info", "warn", "error", "debug"} {
		if err := console.DefineDataProperty(level, r.vm.ToValue(r.consoleFunc(level)), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE); err != nil {
			return err
		}
	}
	return r.vm.GlobalObject().DefineDataProperty("console", console, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
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
