package scripting

import (
	"slices"

	"github.com/dop251/goja"
)

// A realm is reused for many folds of its script (see realm), which is
// safe only if nothing a fold does can be seen by a later fold. Once the
// realm is set up (guards installed), lockdown makes everything shared
// immutable:
//
//   - every object reachable from the built-ins (prototypes, constructors,
//     Math, JSON, iterator and generator prototypes, ...) is frozen, as
//     are the global object's own properties (the built-in globals and
//     console): a script cannot change or replace a built-in (an
//     assignment fails, silently in sloppy mode, with a TypeError in
//     strict mode);
//   - so that assigning a property that a frozen prototype also has still
//     works on ordinary objects (o.constructor = x, o.toString = f, the
//     "override mistake"), the data properties of Object.prototype and of
//     the Error prototypes become accessors whose setter defines the
//     property on the object assigned to;
//   - the script's top level runs anew in every fold, inside a function
//     (Script.prog), so its variables, functions and closures are fresh;
//     that function, the same in every fold and reachable from the script
//     (arguments.callee), is frozen, and so is the one that drives a fold;
//   - what a fold adds to the global object (an assignment to an
//     undeclared variable) is deleted after the fold; a realm whose global
//     object changed in a way that cannot be undone, or whose fold failed,
//     is not reused. So that this costs nothing when a fold adds nothing,
//     the global object's prototype is a proxy (of a frozen object whose
//     prototype is Object.prototype) whose set trap sees every such
//     assignment first.
//
// The rest of the realm's state is per fold: Date.now and Math.random
// (set per event), the guards' timers, the call-stack limit and timeout.
// goja drops pending Promise jobs when a call ends abruptly and runs them
// before a call returns otherwise.

// globalNames are goja's global bindings (its global object template lists
// them; goja's Object.getOwnPropertyNames(globalThis) shows only those
// already used). TestLockdown checks that none is missing.
var globalNames = []string{"Object", "Function", "Array", "String", "Number", "RegExp", "Date",
	"Boolean", "Proxy", "Reflect", "Error", "AggregateError", "TypeError", "ReferenceError",
	"SyntaxError", "RangeError", "EvalError", "URIError", "GoError", "eval", "Math", "JSON",
	"Symbol", "WeakSet", "WeakMap", "Map", "Set", "Promise", "globalThis", "NaN", "undefined",
	"Infinity", "isNaN", "parseInt", "parseFloat", "isFinite", "decodeURI", "decodeURIComponent",
	"encodeURI", "encodeURIComponent", "escape", "unescape", "console"}

var lockdownProgram = goja.MustCompile("jetsnap:lockdown", `(function (names, globalProtoTarget) {
"use strict";
var G = globalThis, O = Object, gop = O.getOwnPropertyNames, gos = O.getOwnPropertySymbols,
    gd = O.getOwnPropertyDescriptor, gp = O.getPrototypeOf, dp = O.defineProperty, freeze = O.freeze;
var seen = new Set(), todo = [];
function add(v) {
  if (v !== null && (typeof v === "object" || typeof v === "function") && v !== G && !seen.has(v)) {
    seen.add(v);
    todo.push(v);
  }
}
// Override taming (see lockdown.go).
function tame(proto, key) {
  var d = gd(proto, key);
  if (!d || !("value" in d) || !d.configurable) return;
  var value = d.value;
  dp(proto, key, {__proto__: null, configurable: false, enumerable: d.enumerable,
    get: {get() { return value; }}.get,
    set: {set(v) {
      if (this === proto || this === null || (typeof this !== "object" && typeof this !== "function")) return;
      try { dp(this, key, {__proto__: null, value: v, writable: true, enumerable: true, configurable: true}); } catch (e) {}
    }}.set});
}
var OP = O.prototype, keys = gop(OP);
for (var i = 0; i < keys.length; i++) tame(OP, keys[i]);
[Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError].forEach(function (E) {
  tame(E.prototype, "name");
  tame(E.prototype, "message");
});
// What only instances lead to.
add([][Symbol.iterator]()); add(""[Symbol.iterator]()); add(new Map().entries()); add(new Set().values());
add(/x/[Symbol.matchAll]("")); add(function* () {}); add((function* () {})()); add(async function () {});
add(Promise.resolve()); add(Object.getOwnPropertyDescriptor(function () {}, "caller"));
for (var i = 0; i < names.length; i++) {
  var d = gd(G, names[i]);
  if (d) { add(d.value); add(d.get); add(d.set); }
}
while (todo.length) {
  var o = todo.pop();
  add(gp(o));
  var ks = gop(o).concat(gos(o));
  for (var i = 0; i < ks.length; i++) {
    var d = gd(o, ks[i]);
    add(d.value); add(d.get); add(d.set);
  }
}
add(globalProtoTarget);
seen.forEach(function (o) { freeze(o); });
for (var i = 0; i < names.length; i++) {
  var d = gd(G, names[i]);
  if (d && d.configurable) dp(G, names[i], {__proto__: null, writable: false, configurable: false});
}
return seen.size;
})`, true)

// lockdown freezes the realm's shared objects (see above) and remembers
// its global object's keys.
func (r *realm) lockdown() error {
	vm := r.vm
	g := vm.GlobalObject()
	// A proxy between the global object and Object.prototype: it sees
	// assignments to undeclared variables (sloppy mode), which would
	// otherwise create a global unnoticed, and makes them as usual.
	target := vm.NewObject()
	if err := target.SetPrototype(g.Prototype()); err != nil {
		return err
	}
	proxy := vm.NewProxy(target, &goja.ProxyTrapConfig{
		Set: func(_ *goja.Object, key string, v, receiver goja.Value) bool {
			if o, ok := receiver.(*goja.Object); ok && o == g {
				r.globalSet = true
				return g.DefineDataProperty(key, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE) == nil
			}
			return false
		},
	})
	if err := g.SetPrototype(vm.ToValue(proxy).(*goja.Object)); err != nil {
		return err
	}
	f, err := vm.RunProgram(lockdownProgram)
	if err != nil {
		return err
	}
	run, _ := goja.AssertFunction(f)
	if _, err := run(goja.Undefined(), vm.ToValue(globalNames), target); err != nil {
		return err
	}
	r.globals = g.GetOwnPropertyNames()
	r.globalSyms = len(g.Symbols())
	r.globalProto = g.Prototype()
	return nil
}

// clean undoes what a fold added to the global object and reports whether
// the realm is as lockdown left it. Without a reference to the global
// object, a script can only add enumerable, configurable properties by
// assigning undeclared variables, which the proxy flags (globalSet) and
// Keys lists; a script that can get one (Script.global, or code made at
// run time) gets the full check.
func (r *realm) clean() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if !r.globalSet && !r.s.global && !r.dynamic {
		return true
	}
	g := r.vm.GlobalObject()
	for _, k := range g.Keys() {
		if err := g.Delete(k); err != nil {
			return false
		}
	}
	if !r.s.global && !r.dynamic {
		return true
	}
	if g.Prototype() != r.globalProto || len(g.Symbols()) != r.globalSyms {
		return false
	}
	names := g.GetOwnPropertyNames()
	if len(names) != len(r.globals) {
		for _, k := range names {
			if !slices.Contains(r.globals, k) {
				if err := g.Delete(k); err != nil {
					return false // not configurable
				}
			}
		}
		if len(g.GetOwnPropertyNames()) != len(r.globals) {
			return false
		}
	}
	// Still extensible? (preventExtensions cannot be undone.)
	if err := g.DefineDataProperty("jetsnap:probe", goja.Undefined(), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE); err != nil {
		return false
	}
	return g.Delete("jetsnap:probe") == nil
}
