package scripting

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// Runtime.Interrupt stops a script only between instructions of the goja
// VM: a built-in that loops or allocates in Go runs to its end. A reducer
// could hold a worker for hours (a backtracking regular expression,
// Array.prototype.indexOf.call({length: 1e15})) or kill the process with a
// fatal out-of-memory error ('x'.repeat(2**40), f.apply(null, {length:
// 1e10}), new Float64Array(1e10), 2n ** 2n ** 40n) before its timeout. So
// every realm gets guards before lockdown freezes them in (guardJS):
//
//   - Built-ins whose result can be far larger than their input check the
//     size first and throw a RangeError beyond maxGuardedString characters
//     or maxGuardedArray elements (no storable state needs more): repeat,
//     padStart/padEnd, String and Array concat, join, toLocaleString, fill,
//     flat, split, Array.from, Function.prototype.apply, Reflect.apply and
//     construct. replace and replaceAll whose replacement could amplify
//     ("$`", "$1" or a long replacement of many matches) substitute in JS,
//     one match at a time, so they stay interruptible and bounded.
//   - Array.prototype methods that loop over this.length throw a RangeError
//     beyond maxGuardedArray, so an array-like {length: 1e15} or a sparse
//     array cannot spin.
//   - Regular expressions: RegExp.prototype.exec is replaced (and locked)
//     by a timed wrapper. That turns off goja's fast paths: replace, split,
//     match and the rest call exec once per match, between which the VM
//     can be interrupted, and one exec is one match of regexp2 (goja's
//     backtracking engine), which gives up after regexpTimeout. The wrapper
//     times every exec; one that took regexpSuspect or more interrupts the
//     fold with ErrTimeout, so a match that regexp2 abandoned (and reported
//     as "no match") can never reach a state. RegExp subclasses and custom
//     species are refused by split and matchAll.
//   - No BigInt (a literal is a compile error; the global is removed): its
//     ** and << are single instructions that can allocate without bound.
//     Typed arrays, ArrayBuffer and DataView are removed: their
//     constructors allocate without bound, and no reducer needs them.
//   - Code made at run time (Function, eval, the generator and async
//     function constructors) is checked for BigInt literals; eval becomes
//     an indirect (global) eval.
//
// The guards capture the built-ins they call before any script runs and
// call them through a bound Function.prototype.apply, so a script cannot
// get hold of an unguarded original. Growth that is interruptible but fast
// (s += s, pushing in a loop) is bounded by the heap watch (heapwatch.go).
const (
	maxGuardedString = 1 << 24 // characters
	maxGuardedArray  = 1 << 20 // elements

	// regexpTimeout bounds one regular-expression match; regexpClock is
	// how often regexp2 reads its clock, which can make it give up up to
	// about two periods early: an exec that took regexpSuspect or more may
	// have been abandoned.
	regexpTimeout = 250 * time.Millisecond
	regexpClock   = 10 * time.Millisecond
	regexpSuspect = 200 * time.Millisecond
)

var regexpOnce sync.Once

// configureRegexp sets regexp2's match timeout. regexp2 reads it when goja
// compiles a pattern, so it is called before any script is compiled or
// run. It is process-wide: only goja uses regexp2 in jetsnap.
func configureRegexp() {
	regexpOnce.Do(func() {
		regexp2.DefaultMatchTimeout = regexpTimeout
		regexp2.SetTimeoutCheckPeriod(regexpClock)
	})
}

// errRegexpTimeout is the interrupt value of a regular expression that ran
// longer than regexpTimeout.
var errRegexpTimeout = fmt.Errorf("%w: a regular expression ran %s or longer", ErrTimeout, regexpSuspect)

// lengthGuarded are the Array.prototype methods that loop over this.length,
// with their parameters (for their length property).
var lengthGuarded = []struct{ name, params string }{
	{"copyWithin", "target, start"}, {"every", "callbackfn"}, {"filter", "callbackfn"},
	{"find", "predicate"}, {"findIndex", "predicate"}, {"findLast", "predicate"},
	{"findLastIndex", "predicate"}, {"flatMap", "mapperFunction"}, {"forEach", "callbackfn"},
	{"includes", "searchElement"}, {"indexOf", "searchElement"}, {"lastIndexOf", "searchElement"},
	{"map", "callbackfn"}, {"reduce", "callbackfn"}, {"reduceRight", "callbackfn"},
	{"reverse", ""}, {"shift", ""}, {"slice", "start, end"}, {"some", "callbackfn"},
	{"sort", "comparefn"}, {"splice", "start, deleteCount"}, {"unshift", "item"},
	{"with", "index, value"}, {"toReversed", ""}, {"toSorted", "comparefn"},
	{"toSpliced", "start, skipCount"},
}

// removedGlobals are taken out of every realm (see above).
var removedGlobals = []string{"BigInt", "ArrayBuffer", "DataView", "Int8Array", "Uint8Array",
	"Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
	"Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"}

// guardProgram installs the guards when called with (enter, leave,
// dynamic, maxString, maxArray).
var guardProgram = goja.MustCompile("jetsnap:guards", guardSource(), true)

func guardSource() string {
	var arr strings.Builder
	for _, m := range lengthGuarded {
		fmt.Fprintf(&arr, "AP.%[1]s = {%[1]s(%[2]s) { guardLength(this, \"Array.prototype.%[1]s\"); return applyFn(o_%[1]s, this, arguments); }}.%[1]s;\n", m.name, m.params)
	}
	var orig strings.Builder
	for _, m := range lengthGuarded {
		fmt.Fprintf(&orig, "var o_%[1]s = AP.%[1]s;\n", m.name)
	}
	var removed strings.Builder
	for _, n := range removedGlobals {
		fmt.Fprintf(&removed, "%q, ", n)
	}
	return strings.NewReplacer("{{ORIG}}", orig.String(), "{{ARRAY}}", arr.String(), "{{REMOVED}}", removed.String()).Replace(guardJS)
}

const guardJS = `(function (enter, leave, dynamic, MAXS, MAXA) {
"use strict";
var FP = Function.prototype, SP = String.prototype, AP = Array.prototype, G = globalThis;
var applyFn = FP.call.bind(FP.apply);
var Obj = Object, getProto = Obj.getPrototypeOf, defProp = Obj.defineProperty;
var RE = RangeError, TE = TypeError, Arr = Array, isArray = Arr.isArray, oFrom = Arr.from;
var sSpreadable = Symbol.isConcatSpreadable;
var oRepeat = SP.repeat, oPadStart = SP.padStart, oPadEnd = SP.padEnd, oSConcat = SP.concat,
    oReplace = SP.replace, oReplaceAll = SP.replaceAll, oSplit = SP.split, oSIndexOf = SP.indexOf,
    oSlice = SP.slice;
var oIndexOfA = AP.indexOf, oJoin = AP.join, oFill = AP.fill, oAConcat = AP.concat, oFlat = AP.flat, oApply = FP.apply,
    oFunction = FP.constructor;
{{ORIG}}
function tooLarge(what) { throw new RE(what + " would be too large for a reducer"); }
function toLength(v) {
  v = +v;
  if (!(v > 0)) return 0;
  return v > 9007199254740991 ? 9007199254740991 : v - v % 1;
}
// toInteger is ToIntegerOrInfinity.
function toInteger(v) {
  v = +v;
  if (v !== v) return 0;
  return v === Infinity || v === -Infinity ? v : v - v % 1;
}
function isObject(v) { return v !== null && (typeof v === "object" || typeof v === "function"); }
// str is ToString; a template literal would copy a string.
function str(v) { return typeof v === "string" ? v : ` + "`${v}`" + `; }
function guardLength(o, what) { if (o != null && toLength(Obj(o).length) > MAXA) tooLarge(what); }
function slice(s, a, b) { return applyFn(oSlice, s, [a, b]); }

// substituter returns a replace callback that does what the replacement
// string r does ($$, $&, $ backquote, $', $n, $nn, $<name>, as goja does), one
// match at a time, and throws once the replacements add up to more than
// MAXS characters.
function substituter(r, what) {
  var total = 0;
  return function (matched) {
    var n = arguments.length, groups = arguments[n - 1], S, position, m;
    if (typeof groups === "string") { S = groups; position = arguments[n - 2]; groups = undefined; m = n - 2; }
    else { S = arguments[n - 2]; position = arguments[n - 3]; m = n - 3; }
    var out = "", rl = r.length, L = S.length, tail = position + matched.length, i = 0;
    function add(piece) {
      if (out.length + piece.length + total > MAXS) tooLarge(what);
      out += piece;
    }
    while (i < rl) {
      var d = applyFn(oSIndexOf, r, ["$", i]);
      if (d < 0 || d === rl - 1) { add(slice(r, i, rl)); break; }
      if (d > i) add(slice(r, i, d));
      i = d;
      var ch = r[i + 1];
      if (ch === "$") add("$");
      else if (ch === "\u0060") add(slice(S, 0, position));
      else if (ch === "'") { if (tail < L) add(slice(S, tail, L)); }
      else if (ch === "&") add(matched);
      else if (ch === "<") {
        var j = i + 2, ref = undefined;
        for (; j < rl; j++) if (r[j] === ">") { ref = slice(r, i + 2, j); break; }
        if (ref !== undefined && groups !== undefined) {
          var g = groups[ref];
          if (g !== undefined) add(str(g));
          i = j + 1;
          continue;
        }
        add("$<");
      } else {
        var index = 0, k = i + 1, lim = k + 2 < rl ? k + 2 : rl;
        for (; k < lim; k++) {
          var c = r[k];
          if (c < "0" || c > "9") break;
          var mm = index * 10 + (+c);
          if (mm >= m) break;
          index = mm;
        }
        if (index > 0) {
          var cap = arguments[index];
          if (cap !== undefined) add(cap);
          i = k;
          continue;
        }
        add("$" + ch);
      }
      i += 2;
    }
    total += out.length;
    return out;
  };
}
// amplified returns the replacement string r for s, or a substituter when
// it could make a result larger than MAXS or refers to parts of s. For a
// string pattern p (not a regular expression) with a replacement without
// $, the size is known: too large throws at once. all: replaceAll.
function amplified(s, r, what, p, all) {
  if (r.length === 0) return r;
  if (applyFn(oSIndexOf, r, ["$"]) < 0) {
    var n = 1;
    if (p === undefined) n = s.length + 1;
    else if (all && p.length === 0) n = s.length + 1;
    else if (all) for (var i = applyFn(oSIndexOf, s, [p]), n = 0; i >= 0; i = applyFn(oSIndexOf, s, [p, i + p.length])) n++;
    if (s.length + n * r.length <= MAXS) return r;
    if (p !== undefined) tooLarge(what);
  }
  return substituter(r, what);
}

var S = {
  repeat(count) {
    if (this == null) return applyFn(oRepeat, this, arguments);
    var s = str(this), n = +count;
    if (s.length * n > MAXS) tooLarge("String.prototype.repeat");
    return applyFn(oRepeat, s, [n]);
  },
  padStart(maxLength) {
    if (this == null) return applyFn(oPadStart, this, arguments);
    var s = str(this), n = +maxLength;
    if (n > MAXS) tooLarge("String.prototype.padStart");
    return applyFn(oPadStart, s, [n, arguments[1]]);
  },
  padEnd(maxLength) {
    if (this == null) return applyFn(oPadEnd, this, arguments);
    var s = str(this), n = +maxLength;
    if (n > MAXS) tooLarge("String.prototype.padEnd");
    return applyFn(oPadEnd, s, [n, arguments[1]]);
  },
  concat(_) {
    if (this == null) return applyFn(oSConcat, this, arguments);
    var s = str(this), n = s.length, parts = [];
    for (var i = 0; i < arguments.length; i++) {
      var a = str(arguments[i]);
      n += a.length;
      parts[i] = a;
    }
    if (n > MAXS) tooLarge("String.prototype.concat");
    return applyFn(oSConcat, s, parts);
  },
  replace(searchValue, replaceValue) {
    if (isObject(searchValue)) return applyFn(oReplace, this, arguments);
    if (this == null) return applyFn(oReplace, this, arguments);
    var s = str(this), p = str(searchValue);
    if (typeof replaceValue !== "function") replaceValue = amplified(s, str(replaceValue), "String.prototype.replace", p, false);
    return applyFn(oReplace, s, [p, replaceValue]);
  },
  replaceAll(searchValue, replaceValue) {
    if (isObject(searchValue)) return applyFn(oReplaceAll, this, arguments);
    if (this == null) return applyFn(oReplaceAll, this, arguments);
    var s = str(this), p = str(searchValue);
    if (typeof replaceValue !== "function") replaceValue = amplified(s, str(replaceValue), "String.prototype.replaceAll", p, true);
    return applyFn(oReplaceAll, s, [p, replaceValue]);
  },
  split(separator, limit) {
    if (isObject(separator)) return applyFn(oSplit, this, arguments);
    if (this == null) return applyFn(oSplit, this, arguments);
    var s = str(this), lim = limit === undefined ? 4294967295 : limit >>> 0;
    var sep = separator === undefined ? undefined : str(separator);
    var a = applyFn(oSplit, s, [sep, lim > MAXA ? MAXA + 1 : lim]);
    if (a.length > MAXA) tooLarge("String.prototype.split");
    return a;
  },
};
SP.repeat = S.repeat; SP.padStart = S.padStart; SP.padEnd = S.padEnd; SP.concat = S.concat;
SP.replace = S.replace; SP.replaceAll = S.replaceAll; SP.split = S.split;

// joined is join and toLocaleString: each element made a string once, in
// order, then joined by the original when the total fits.
function joined(self, sep, locale, what) {
  var O = Obj(self), len = toLength(O.length);
  if (len > MAXA) tooLarge(what);
  var total = len > 0 ? (len - 1) * sep.length : 0, parts = [];
  if (total > MAXS) tooLarge(what);
  for (var k = 0; k < len; k++) {
    var e = O[k], s = e == null ? "" : locale ? str(e.toLocaleString()) : str(e);
    total += s.length;
    if (total > MAXS) tooLarge(what);
    parts[k] = s;
  }
  return applyFn(oJoin, parts, [sep]);
}
// flatCount counts the elements flat(depth) would make, up to MAXA.
function flatCount(O, depth, n) {
  var len = toLength(O.length);
  for (var k = 0; k < len; k++) {
    if (!(k in O)) continue;
    var e = O[k];
    if (depth > 0 && isArray(e)) n = flatCount(e, depth - 1, n);
    else if (++n > MAXA) tooLarge("Array.prototype.flat");
  }
  return n;
}
var A = {
  join(separator) {
    if (this == null) return applyFn(oJoin, this, arguments);
    return joined(this, separator === undefined ? "," : str(separator), false, "Array.prototype.join");
  },
  toLocaleString() {
    if (this == null) return applyFn(oJoin, this, arguments);
    return joined(this, ",", true, "Array.prototype.toLocaleString");
  },
  fill(value) {
    if (this == null) return applyFn(oFill, this, arguments);
    var n = toLength(Obj(this).length);
    function rel(v, def) {
      if (v === undefined) return def;
      v = toInteger(v);
      return v < 0 ? (n + v > 0 ? n + v : 0) : (v < n ? v : n);
    }
    var start = rel(arguments[1], 0), end = rel(arguments[2], n);
    if (end - start > MAXA) tooLarge("Array.prototype.fill");
    return applyFn(oFill, this, [value, start, end]);
  },
  concat(_) {
    var n = 0, items = [this];
    for (var i = 0; i < arguments.length; i++) items[i + 1] = arguments[i];
    for (var i = 0; i < items.length; i++) {
      var E = items[i], spread = false;
      if (isObject(E)) {
        var sc = E[sSpreadable];
        spread = sc !== undefined ? !!sc : isArray(E);
      }
      n += spread ? toLength(E.length) : 1;
    }
    if (n > MAXA) tooLarge("Array.prototype.concat");
    return applyFn(oAConcat, this, arguments);
  },
  flat() {
    if (this == null) return applyFn(oFlat, this, arguments);
    var d = arguments[0] === undefined ? 1 : toInteger(arguments[0]);
    if (d < 0) d = 0;
    flatCount(Obj(this), d, 0);
    return applyFn(oFlat, this, [d]);
  },
  from(items) {
    if (items != null && (typeof items === "string" ? items.length : toLength(Obj(items).length)) > MAXA) tooLarge("Array.from");
    return applyFn(oFrom, this, arguments);
  },
};
{{ARRAY}}
AP.join = A.join; AP.toLocaleString = A.toLocaleString; AP.fill = A.fill; AP.concat = A.concat; AP.flat = A.flat;
Arr.from = A.from;
FP.apply = {apply(thisArg, argArray) {
  if (argArray != null && toLength(Obj(argArray).length) > MAXA) tooLarge("Function.prototype.apply");
  return applyFn(oApply, this, arguments);
}}.apply;

// Code made at run time: checked first.
function code(args, kind, ctor) {
  var a = [];
  for (var i = 0; i < args.length; i++) a[i] = str(args[i]);
  var msg = dynamic(a, kind);
  if (msg) throw new G.SyntaxError(msg);
  return applyFn(ctor, undefined, a);
}
var W = function Function(body) { return code(arguments, "function", oFunction); };
W.prototype = FP;
FP.constructor = W;

// Regular expressions.
(function () {
  var RP = getProto(/(?:)/), oExec = RP.exec, oTest = RP.test, RX = RP.constructor;
  var sSplit = Symbol.split, sMatchAll = Symbol.matchAll, sReplace = Symbol.replace, sSpecies = Symbol.species;
  var oSplitRx = RP[sSplit], oMatchAllRx = RP[sMatchAll], oReplaceRx = RP[sReplace];
  defProp(RP, "exec", {__proto__: null, value: {exec(string) {
    enter();
    try { return applyFn(oExec, this, arguments); } finally { leave(); }
  }}.exec, writable: false, enumerable: false, configurable: false});
  RP.test = {test(S) {
    enter();
    try { return applyFn(oTest, this, arguments); } finally { leave(); }
  }}.test;
  function plain(rx, what) {
    var C = rx.constructor;
    if (C === undefined || C === RX) return;
    if (isObject(C)) {
      var Sp = C[sSpecies];
      if (Sp == null || Sp === RX) return;
    }
    throw new TE(what + ": RegExp subclasses and species are not supported in reducers");
  }
  RP[sSplit] = {[sSplit](string, limit) {
    plain(this, "RegExp.prototype[Symbol.split]");
    var lim = limit === undefined ? 4294967295 : limit >>> 0;
    var a = applyFn(oSplitRx, this, [string, lim > MAXA ? MAXA + 1 : lim]);
    if (a.length > MAXA) tooLarge("RegExp.prototype[Symbol.split]");
    return a;
  }}[sSplit];
  RP[sMatchAll] = {[sMatchAll](string) {
    plain(this, "RegExp.prototype[Symbol.matchAll]");
    return applyFn(oMatchAllRx, this, arguments);
  }}[sMatchAll];
  RP[sReplace] = {[sReplace](string, replaceValue) {
    var s = str(string);
    if (typeof replaceValue !== "function") replaceValue = amplified(s, str(replaceValue), "RegExp.prototype[Symbol.replace]");
    return applyFn(oReplaceRx, this, [s, replaceValue]);
  }}[sReplace];
})();
// Iterators: next in JS, so that a loop in Go over an iterator (spread,
// new Set(a), Array.from(it)) stops at the VM's interrupt checks even over
// a sparse array of length 4e9.
(function () {
  var AIP = getProto([][Symbol.iterator]()), SIP = getProto(""[Symbol.iterator]());
  var oANext = AIP.next, oSNext = SIP.next;
  AIP.next = {next() { return applyFn(oANext, this, []); }}.next;
  SIP.next = {next() { return applyFn(oSNext, this, []); }}.next;
})();
// JSON.stringify walks arrays up to their length in Go: a replacer, called
// for every value, refuses arrays longer than MAXA. A replacer the script
// gives is called from it; a key list becomes objects with those keys.
(function () {
  var J = G.JSON, oStringify = J.stringify;
  J.stringify = {stringify(value, replacer, space) {
    var fn, list;
    if (typeof replacer === "function") fn = replacer;
    else if (isArray(replacer)) {
      list = [];
      var len = toLength(replacer.length);
      for (var i = 0; i < len; i++) {
        var v = replacer[i], item;
        if (typeof v === "string") item = v;
        else if (typeof v === "number" || (isObject(v) && (v instanceof Number || v instanceof String))) item = str(v);
        if (item !== undefined && applyFn(oIndexOfA, list, [item]) < 0) list[list.length] = item;
      }
    }
    return applyFn(oStringify, J, [value, function (key, v) {
      if (fn) v = applyFn(fn, this, [key, v]);
      if (isArray(v)) { if (toLength(v.length) > MAXA) tooLarge("JSON.stringify"); }
      else if (list && isObject(v) && typeof v !== "function") {
        var o = {};
        for (var i = 0; i < list.length; i++) defProp(o, list[i], {__proto__: null, value: v[list[i]], writable: true, enumerable: true, configurable: true});
        v = o;
      }
      return v;
    }, space]);
  }}.stringify;
  var oRaw = String.raw;
  String.raw = {raw(template) {
    if (template != null) guardLength(Obj(Obj(template).raw), "String.raw");
    return applyFn(oRaw, String, arguments);
  }}.raw;
})();
// Reflect, removed globals, code made at run time.
(function () {
  var R = G.Reflect, oRApply = R.apply, oRConstruct = R.construct;
  R.apply = {apply(target, thisArgument, argumentsList) {
    guardLength(argumentsList, "Reflect.apply");
    return applyFn(oRApply, R, arguments);
  }}.apply;
  R.construct = {construct(target, argumentsList) {
    guardLength(argumentsList, "Reflect.construct");
    return applyFn(oRConstruct, R, arguments);
  }}.construct;
  var removed = [{{REMOVED}}];
  for (var i = 0; i < removed.length; i++) delete G[removed[i]];
  G.Function = W;
  var oEval = G.eval;
  G.eval = {eval(x) {
    if (typeof x !== "string") return x;
    var msg = dynamic([x], "eval");
    if (msg) throw new G.SyntaxError(msg);
    return oEval(x);
  }}.eval;
  function wrapCtor(proto, name, kind) {
    var o = proto.constructor;
    var w = {[name]: function (body) { return code(arguments, kind, o); }}[name];
    w.prototype = proto;
    defProp(proto, "constructor", {__proto__: null, value: w, writable: false, enumerable: false, configurable: true});
  }
  wrapCtor(getProto(function* () {}), "GeneratorFunction", "function*");
  wrapCtor(getProto(async function () {}), "AsyncFunction", "async function");
})();
})`

// guard installs all the guards in a new realm.
func (r *realm) guard() error {
	f, err := r.vm.RunProgram(guardProgram)
	if err != nil {
		return err
	}
	install, _ := goja.AssertFunction(f)
	vm := r.vm
	_, err = install(goja.Undefined(),
		vm.ToValue(r.regexpEnter), vm.ToValue(r.regexpLeave), vm.ToValue(r.dynamicCode),
		vm.ToValue(maxGuardedString), vm.ToValue(maxGuardedArray))
	return err
}

// regexpTimer is one exec or test call in progress.
type regexpTimer struct {
	start  time.Time
	nested time.Duration // time in exec calls made by this one
}

func (r *realm) regexpEnter(goja.FunctionCall) goja.Value {
	r.regexps = append(r.regexps, regexpTimer{start: time.Now()})
	return goja.Undefined()
}

// regexpLeave ends the innermost timed call. If it took regexpSuspect or
// more, regexp2 may have given up on a match and reported none: the fold
// is interrupted (unless it is being interrupted anyway), so that result
// never reaches a state.
func (r *realm) regexpLeave(goja.FunctionCall) goja.Value {
	n := len(r.regexps)
	if n == 0 {
		return goja.Undefined()
	}
	t := r.regexps[n-1]
	r.regexps = r.regexps[:n-1]
	d := time.Since(t.start)
	if n > 1 {
		r.regexps[n-2].nested += d
	}
	if d-t.nested >= regexpSuspect && r.ctx.Err() == nil {
		r.vm.Interrupt(errRegexpTimeout)
	}
	return goja.Undefined()
}

// dynamicCode checks code made at run time (args: the strings given to
// the Function constructor or eval; kind: "function", "function*", "async
// function" or "eval"; goja has no async generators). It returns why it is refused,
// or "".
func (r *realm) dynamicCode(c goja.FunctionCall) goja.Value {
	r.dynamic = true
	var parts []string
	if o, ok := c.Argument(0).(*goja.Object); ok {
		_ = r.vm.ExportTo(o, &parts)
	}
	kind := c.Argument(1).String()
	src := ""
	switch {
	case kind == "eval" && len(parts) == 1:
		src = parts[0]
	case len(parts) > 0:
		src = "(" + kind + " anonymous(" + strings.Join(parts[:len(parts)-1], ",") + "\n) {\n" + parts[len(parts)-1] + "\n})"
	default:
		return r.vm.ToValue("")
	}
	prog, err := parser.ParseFile(nil, "", src, 0)
	if err != nil {
		return r.vm.ToValue("") // the original reports the syntax error
	}
	var sc scan
	sc.walk(reflect.ValueOf(prog))
	if sc.bigint != 0 {
		return r.vm.ToValue("BigInt is not available in reducers")
	}
	return r.vm.ToValue("")
}

// scan is what Compile learns from a script's syntax tree.
type scan struct {
	bigint file.Idx // the first BigInt literal, 0 if none
	global bool     // see Script.global
}

var (
	fileType  = reflect.TypeOf((*file.File)(nil))
	identType = reflect.TypeOf(ast.Identifier{})
)

// walk visits every node of a goja syntax tree (by reflection, so that it
// keeps up with goja's node types).
func (sc *scan) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() || v.Type() == fileType {
			return
		}
		switch n := v.Interface().(type) {
		case *ast.NumberLiteral:
			if _, ok := n.Value.(*big.Int); ok && sc.bigint == 0 {
				sc.bigint = n.Idx
			}
		case *ast.DotExpression:
			// Only the object: the name after the dot is not a variable.
			sc.walk(reflect.ValueOf(n.Left))
			return
		case *ast.ThisExpression:
			sc.global = true
		}
		sc.walk(v.Elem())
	case reflect.Struct:
		if v.Type() == identType {
			switch v.Interface().(ast.Identifier).Name.String() {
			case "globalThis", "eval", "Function":
				sc.global = true
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				sc.walk(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			sc.walk(v.Index(i))
		}
	}
}

// errNoBigInt is the compile error for a BigInt literal.
var errNoBigInt = errors.New("SyntaxError: BigInt is not available in reducers (its ** and << can allocate without bound)")
