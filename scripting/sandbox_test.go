package scripting

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// probe folds one event with a reducer that stores in state.v what expr
// (a function body) returns, run by (indirect) eval so that all probes
// share one script and its realms.
func probe(t *testing.T, expr string) string {
	t.Helper()
	s := mustCompile(t, "probe.js", "function reduce(s, e) { s.v = (0, eval)(\"(function () { \" + e.data + \"\\n})()\"); return s; }")
	data, _ := json.Marshal(expr)
	got, err := fold(t, NewRuntime(Limits{}), s, "probe.1", "", evs("probe.1", "A", string(data)))
	require_NoError(t, err)
	return got
}

func TestSandboxGlobals(t *testing.T) {
	// (goja's Object.getOwnPropertyNames(globalThis) lists only the
	// script's own globals once a script ran, so probe names one by one.)
	for _, name := range []string{"Array", "JSON", "Math", "Date", "Object", "Promise", "console"} {
		require_Contains(t, probe(t, "return typeof "+name+" !== 'undefined';"), `"v":true`)
	}
	for _, bad := range []string{"require", "process", "setTimeout", "setInterval", "setImmediate", "queueMicrotask",
		"fetch", "XMLHttpRequest", "module", "exports", "global", "Java", "load", "print", "os", "fs", "Deno", "Bun", "performance"} {
		if got := probe(t, "return typeof "+bad+";"); !strings.Contains(got, `"v":"undefined"`) {
			t.Errorf("global %q reachable: %s", bad, got)
		}
	}
	// console exists when the script names it.
	require_Contains(t, probe(t, "return typeof console.log;"), `"v":"function"`)
}

func TestSandboxEscapes(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"constructor chain gives this realm's global", `var g = this.constructor.constructor("return this")(); return g === globalThis && typeof g.require === "undefined" && typeof g.process === "undefined";`, `"v":true`},
		{"Function", `var g = Function("return this")(); return [typeof g.require, typeof g.setTimeout, typeof g.os].join();`, `"v":"undefined,undefined,undefined"`},
		{"console is plain JS", `return [console.log.constructor === Function, Object.keys(console.log).length, typeof console.log.call];`, `"v":[true,0,"function"]`},
		{"console result", `return console.log("x") === undefined;`, `"v":true`},
		{"eval stays in the realm", `return eval("typeof require") + " " + (0, eval)("typeof setTimeout");`, `"v":"undefined undefined"`},
		{"import is a syntax error at run time", `try { return typeof new Function("return import('fs')"); } catch (e) { return e.name; }`, `"v":"SyntaxError"`},
		{"error has no Go value", `try { null.x; } catch (e) { return [e instanceof TypeError, typeof e.value, Object.keys(e).length]; }`, `"v":[true,"undefined",0]`},
		{"no timers via Promise jobs", `var n = 0; Promise.resolve().then(function () { n = 1; }); return n;`, `"v":0`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require_Contains(t, probe(t, c.expr), c.want)
		})
	}
}

func TestEventObject(t *testing.T) {
	s := mustCompile(t, "e.js", `function reduce(s, e) { s.push(e); return s; } function init() { return []; }`)
	ev := Event{
		Actor: "e.1", Type: "T", Subject: "events.e.1", Data: []byte(` {"b":1,"a":[1,{"__proto__":2}],"b":3} `),
		Seq: 9, Version: 2, Time: time.Date(2024, 5, 6, 7, 8, 9, 123000000, time.FixedZone("x", 3600)),
		Headers: map[string][]string{"Z": {"z1", "z2"}, "A": {"a"}, "Empty": nil},
	}
	got, err := fold(t, NewRuntime(Limits{}), s, "e.1", "", []Event{ev})
	require_NoError(t, err)
	require_Equal(t, got, `[{"actor":"e.1","type":"T","data":{"b":3,"a":[1,{"__proto__":2}]},"seq":9,"version":2,"time":"2024-05-06T06:08:09.123Z","subject":"events.e.1","headers":{"A":"a","Z":"z1"}}]`)
}

func TestNoLeakBetweenFolds(t *testing.T) {
	src := `var n = 0;
function reduce(s, e) {
  n++;
  Object.prototype.polluted = 1;
  Array.prototype.push = function () { return 42; };
  Math.random = function () { return 0.5; };
  globalThis.leak = (globalThis.leak || 0) + 1;
  s.n = n; s.p = typeof ({}).polluted; s.push = [].push === Array.prototype.push && [1].push(2) === 2; s.leak = leak;
  return s;
}`
	s := mustCompile(t, "leak.js", src)
	rt := NewRuntime(Limits{})
	for i := 0; i < 3; i++ {
		got, err := fold(t, rt, s, "leak.1", "", evs("leak.1", "A", `{}`, "B", `{}`))
		require_NoError(t, err)
		// Built-ins cannot be changed (sloppy mode: silently); globals and
		// top-level variables start afresh.
		require_Equal(t, got, `{"n":2,"p":"undefined","push":true,"leak":2}`)
	}
	// And a different script in the same runtime sees clean built-ins.
	clean := mustCompile(t, "clean.js", `function reduce(s, e) { var a = []; a.push(1); s.len = a.length; s.p = typeof ({}).polluted; s.r = Math.random() !== 0.5; return s; }`)
	got, err := fold(t, rt, clean, "clean.1", "", evs("clean.1", "A", `{}`))
	require_NoError(t, err)
	require_Equal(t, got, `{"len":1,"p":"undefined","r":true}`)
}

// TestLockdown tries what a fold could leave for the next folds of its
// realm: every probe must read the same in each fold as in the first.
func TestLockdown(t *testing.T) {
	probes := []struct{ name, change, read string }{
		{"global var", `globalThis.g1 = 1; g2 = 2;`, `[typeof g1, typeof globalThis.g2]`},
		{"global defined unconfigurable", `Object.defineProperty(globalThis, "g3", {value: 3});`, `typeof g3`},
		{"global symbol", `globalThis[Symbol.for("s")] = 1;`, `globalThis[Symbol.for("s")]`},
		{"global prototype", `Object.setPrototypeOf(globalThis, {inherited: 1});`, `typeof inherited`},
		{"global replaced", `Math = null; JSON = 1; console = 2; Array = 3;`, `[typeof Math, typeof JSON, typeof console, typeof Array]`},
		{"prototype pollution", `Object.prototype.x = 1; ({}).__proto__.y = 2; var o = {}; o["__proto__"].z = 3;`, `[({}).x, ({}).y, ({}).z]`},
		{"prototype via data", `var s = {}; var k = "__proto__"; s[k].count = 9;`, `({}).count`},
		{"method replaced", `Array.prototype.map = null; String.prototype.trim = null; delete Array.prototype.push;`, `[typeof [].map, typeof "".trim, typeof [].push]`},
		{"defineProperty on built-in", `try { Object.defineProperty(Array.prototype, "q", {value: 1}); } catch (e) {}`, `[].q`},
		{"hidden intrinsics", `try { Object.getPrototypeOf([][Symbol.iterator]()).x = 1; Object.getPrototypeOf(function* () {}).y = 2; Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())).z = 3; } catch (e) {}`,
			`[Object.getPrototypeOf([][Symbol.iterator]()).x, Object.getPrototypeOf(function* () {}).y, Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())).z]`},
		{"statics", `Object.keys = null; Symbol.custom = 1; JSON.parse = null; Promise.resolve = null;`, `[typeof Object.keys, Symbol.custom, typeof JSON.parse, typeof Promise.resolve]`},
		{"console", `console.log = null; console.x = 1;`, `[typeof console.log, console.x]`},
		{"error prototypes", `Error.prototype.name = "X"; TypeError.prototype.message = "m";`, `[new Error().name, new TypeError().message]`},
		{"function prototype", `(function () {}).constructor.prototype.x = 1; Function.prototype.y = 2;`, `[(function () {}).x, (function () {}).y]`},
		{"eval var", `(0, eval)("var ev = 1");`, `typeof ev`},
		{"Function global", `Function("return this")().fg = 1;`, `typeof fg`},
		{"regexp", `/a/.exec("a"); RegExp.prototype.flags2 = 1;`, `[RegExp.prototype.flags2, typeof RegExp.$1]`},
		{"promise job", `Promise.resolve().then(function () { globalThis.pj = 1; });`, `typeof pj`},
		{"date and random", `Date.now = null;`, `[typeof Date.now, Math.random() === Math.random()]`},
		{"frozen", ``, `[Object.isFrozen(Object.prototype), Object.isFrozen(Array.prototype), Object.isFrozen(Math), Object.isFrozen(console)]`},
	}
	const src = `function reduce(s, e) {
  var d = e.data, read = "(function () { " + d.strict + "return JSON.stringify(" + d.read + "); })()";
  s.before = (0, eval)(read);
  try { (0, eval)("(function () { " + d.strict + d.change + "\\n})()"); } catch (x) { s.threw = x.name; }
  s.after = (0, eval)(read);
  return s;
}`
	s := mustCompile(t, "probe.js", src)
	rt := NewRuntime(Limits{})
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			for _, strict := range []string{"", "'use strict';"} {
				data, _ := json.Marshal(map[string]string{"change": p.change, "read": p.read, "strict": strict})
				events := evs("probe.1", "A", string(data))
				first, err := fold(t, rt, s, "probe.1", "", events)
				require_NoError(t, err)
				for i := 0; i < 3; i++ {
					got, err := fold(t, rt, s, "probe.1", "", events)
					require_NoError(t, err)
					require_Equal(t, got, first)
				}
			}
		})
	}
}

// TestOverrideTaming: a property that frozen Object.prototype has can
// still be set on ordinary objects.
func TestOverrideTaming(t *testing.T) {
	s := mustCompile(t, "tame.js", `function reduce(s, e) {
  var o = {}; o.constructor = 1; o.toString = function () { return "T"; }; o.valueOf = 2; o.hasOwnProperty = 3;
  var items = {}; items[e.data.k] = 1;
  var err = new Error(); err.message = "m"; err.name = "N";
  class MyError extends TypeError { constructor() { super("x"); this.name = "MyError"; } }
  s.v = [o.constructor, String(o), o.valueOf, o.hasOwnProperty, Object.keys(o), items, String(err), String(new MyError()), Object.prototype.toString.call([])];
  return s;
}`)
	got, err := fold(t, NewRuntime(Limits{}), s, "tame.1", "", evs("tame.1", "A", `{"k":"constructor"}`))
	require_NoError(t, err)
	require_Equal(t, got, `{"v":[1,"T",2,3,["constructor","toString","valueOf","hasOwnProperty"],{"constructor":1},"N: m","MyError: x","[object Array]"]}`)
}

const randomSrc = `
var top = Date.now();
function init(actor) { return { actor: actor, top: top, initNow: Date.now(), log: [] }; }
function reduce(s, e) {
  s.log.push([e.version, Date.now(), new Date().toISOString(), Date.now() === Date.parse(e.time), Math.random(), Math.random()]);
  return s;
}`

func TestDeterminism(t *testing.T) {
	s := mustCompile(t, "rnd.js", randomSrc)
	events := evs("rnd.1", "A", `{}`, "B", `{}`, "C", `{}`)

	rt1 := NewRuntime(Limits{})
	want, err := fold(t, rt1, s, "rnd.1", "", events)
	require_NoError(t, err)

	// A second runtime that folded other actors and scripts first.
	rt2 := NewRuntime(Limits{})
	_, err = fold(t, rt2, s, "rnd.2", "", evs("rnd.2", "A", `{}`))
	require_NoError(t, err)
	_, err = fold(t, rt2, mustCompile(t, "a.js", accountSrc), "a.1", "", evs("a.1", "Deposited", `{"amount":1}`))
	require_NoError(t, err)
	got, err := fold(t, rt2, s, "rnd.1", "", events)
	require_NoError(t, err)
	require_Equal(t, got, want)

	// Split folds (snapshot + tail) equal the fold in one go.
	head, err := fold(t, rt2, s, "rnd.1", "", events[:1])
	require_NoError(t, err)
	got, err = fold(t, rt1, s, "rnd.1", head, events[1:])
	require_NoError(t, err)
	require_Equal(t, got, want)

	require_Contains(t, want, `"top":0,"initNow":1704067201000`)
	require_Contains(t, want, `[1,1704067201000,"2024-01-01T00:00:01.000Z",true,`)
	require_Contains(t, want, `[3,1704067203000,"2024-01-01T00:00:03.000Z",true,`)
	// Math.random differs between versions, actors and calls.
	other, err := fold(t, rt1, s, "rnd.2", "", evs("rnd.2", "A", `{}`, "B", `{}`, "C", `{}`))
	require_NoError(t, err)
	if bytes.Equal([]byte(other[strings.Index(other, "log"):]), []byte(want[strings.Index(want, "log"):])) {
		t.Fatalf("Math.random is the same for two actors: %s", other)
	}
}

func TestDeterminismConcurrent(t *testing.T) {
	s := mustCompile(t, "rnd.js", randomSrc)
	events := evs("rnd.1", "A", `{}`, "B", `{}`)
	want, err := fold(t, NewRuntime(Limits{}), s, "rnd.1", "", events)
	require_NoError(t, err)
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func() {
			rt := NewRuntime(Limits{})
			for i := 0; i < 50; i++ {
				got, err := rt.Fold(context.Background(), s, "rnd.1", nil, events)
				if err == nil && string(got) != want {
					err = &ScriptError{File: "rnd.js", Err: errString("got " + string(got))}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < 4; w++ {
		require_NoError(t, <-errs)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestPromiseReturned(t *testing.T) {
	s := mustCompile(t, "async.js", `async function reduce(s, e) { return s; }`)
	_, err := fold(t, NewRuntime(Limits{}), s, "async.1", "", evs("async.1", "A", `{}`))
	if err == nil {
		t.Fatal("no error")
	}
	require_Contains(t, err.Error(), "Promise")
}

func TestConsole(t *testing.T) {
	s := mustCompile(t, "c.js", `console.log("top"); function reduce(s, e) { console.warn("event", e.type, {a: 1}, [1], 2, null); return s; }`)
	rt := NewRuntime(Limits{})
	var lines []string
	rt.SetConsole(func(level, msg string) { lines = append(lines, level+": "+msg) })
	_, err := fold(t, rt, s, "c.1", "", evs("c.1", "A", `{}`))
	require_NoError(t, err)
	require_Equal(t, strings.Join(lines, "|"), `log: top|warn: event A {"a":1} [1] 2 null`)
}

func TestDeepState(t *testing.T) {
	s := mustCompile(t, "deep.js", `function reduce(s, e) { var x = {}; for (var i = 0; i < 5000; i++) x = {x: x}; s.x = x; return s; }`)
	_, err := fold(t, NewRuntime(Limits{}), s, "deep.1", "", evs("deep.1", "A", `{}`))
	if err == nil {
		t.Fatal("no error")
	}
	require_Contains(t, err.Error(), "nested")
}

func TestGuards(t *testing.T) {
	rt := NewRuntime(Limits{Timeout: time.Second})
	cases := []struct{ expr, want string }{
		{`return 'ab'.repeat(3) + 'x'.padStart(3, '-') + 'y'.padEnd(2, '.') + [1, 2].join('+');`, `"v":"ababab--xy.1+2"`},
		{`return [new Array(3).fill(7), Array.from({length: 2}, function (_, i) { return i; }), Array.from(new Set([1]))];`, `"v":[[7,7,7],[0,1],[1]]`},
		{`return [1, 2, 3, 4].fill(0, -2);`, `"v":[1,2,0,0]`},
		{`return String.prototype.repeat.name + String.prototype.repeat.call("z", 2);`, `"v":"repeatzz"`},
	}
	for _, c := range cases {
		require_Contains(t, probe(t, c.expr), c.want)
	}
	for _, expr := range []string{
		`'x'.repeat(2 ** 28)`, `'x'.padStart(2 ** 30)`, `''.padEnd(Infinity)`, `new Array(1e8).fill(0)`,
		`Array.from({length: 3e7})`, `var a = []; a.length = 1e9; a.join('x')`, `Array.prototype.fill.call({length: 1e9}, 1)`,
	} {
		s := mustCompile(t, "g.js", "function reduce(s, e) { "+expr+"; return s; }")
		start := time.Now()
		_, err := fold(t, rt, s, "g.1", "", evs("g.1", "A", `{}`))
		if err == nil || !strings.Contains(err.Error(), "RangeError") {
			t.Errorf("%s: error %v, want a RangeError", expr, err)
		}
		if el := time.Since(start); el > 250*time.Millisecond {
			t.Errorf("%s: took %s", expr, el)
		}
	}
}

func TestEventDataLazy(t *testing.T) {
	cases := []struct{ expr, want string }{
		// Values are made once: the same object on every read.
		{`return [e.data === e.data, e.data.tags === e.data.tags, e.headers === e.headers, e.data.n.k === e.data.n.k];`, `"v":[true,true,true,true]`},
		{`return [typeof e.data, Array.isArray(e.data.tags), Object.getPrototypeOf(e.data) === Object.prototype, e.data instanceof Object];`, `"v":["object",true,true,true]`},
		{`return Object.keys(e.data).concat(Object.keys(e));`, `"v":["1","2","b","a","tags","n","actor","type","data","seq","version","time","subject","headers"]`},
		{`var d = e.data; d.x = 1; delete d.a; d.b = 9; d["0"] = 0; return [Object.keys(d), d.hasOwnProperty("a"), "x" in d, JSON.stringify(d)];`, `"v":[["0","1","2","b","tags","n","x"],false,true,"{\"0\":0,\"1\":\"one\",\"2\":\"two\",\"b\":9,\"tags\":[\"t\"],\"n\":{\"k\":{}},\"x\":1}"]`},
		{`e.type = "T2"; e.extra = 1; delete e.seq; return [e.type, Object.keys(e).join()];`, `"v":["T2","actor,type,data,version,time,subject,headers,extra"]`},
		{`var s = {keep: e.data.n}; s.keep.k.z = 1; return JSON.stringify(s);`, `"v":"{\"keep\":{\"k\":{\"z\":1}}}"`},
		// What a dynamic object cannot do throws; a copy can.
		{`try { Object.freeze(e.data); return "frozen"; } catch (x) { return x.name; }`, `"v":"TypeError"`},
		{`try { Object.defineProperty(e.data, "g", {get: function () { return 1; }}); return "defined"; } catch (x) { return x.name; }`, `"v":"TypeError"`},
		{`return Object.isFrozen(Object.freeze({...e.data})) && Object.isFrozen(Object.freeze(JSON.parse(JSON.stringify(e.data))));`, `"v":true`},
	}
	for _, c := range cases {
		s := mustCompile(t, "lazy.js", "function reduce(s, e) { s.v = (function () { "+c.expr+" })(); return s; }")
		events := evs("lazy.1", "T", `{"b":1,"2":"two","a":2,"1":"one","tags":["t"],"n":{"k":{}},"b":3}`)
		got, err := fold(t, NewRuntime(Limits{}), s, "lazy.1", "", events)
		require_NoError(t, err)
		require_Contains(t, got, c.want)
	}
}

// TestImplicitGlobals: a script that assigns undeclared variables (and
// cannot reach the global object otherwise) sees them in its fold only;
// reading an undeclared variable is still a ReferenceError.
func TestImplicitGlobals(t *testing.T) {
	s := mustCompile(t, "implicit.js", `function reduce(s, e) {
  s.before = [typeof leak, typeof toString];
  leak = (typeof leak === "undefined" ? 0 : leak) + 1; toString = 5; for (i = 0; i < 2; i++) {}
  s.after = [leak, typeof toString, i];
  if (e.type === "Bad") s.x = notDefined;
  return s;
}`)
	rt := NewRuntime(Limits{})
	for i := 0; i < 3; i++ {
		got, err := fold(t, rt, s, "implicit.1", "", evs("implicit.1", "A", `{}`))
		require_NoError(t, err)
		require_Equal(t, got, `{"before":["undefined","function"],"after":[1,"number",2]}`)
	}
	_, err := fold(t, rt, s, "implicit.1", "", evs("implicit.1", "Bad", `{}`))
	if err == nil || !strings.Contains(err.Error(), "ReferenceError: notDefined is not defined") {
		t.Fatalf("got %v", err)
	}
}
