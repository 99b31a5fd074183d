package scripting

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// sameAsJS compares two JS values as JSON.parse would build them: same
// types, numbers by Object.is, own properties in the same order with the
// same descriptors, plain prototypes.
const sameAsJS = `(function same(a, b) {
  if (typeof a !== typeof b) return false;
  if (typeof a !== "object" || a === null || b === null) return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  var ka = Reflect.ownKeys(a), kb = Reflect.ownKeys(b);
  if (ka.length !== kb.length) return false;
  for (var i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i]) return false;
    var da = Object.getOwnPropertyDescriptor(a, ka[i]), db = Object.getOwnPropertyDescriptor(b, kb[i]);
    if (da.writable !== db.writable || da.enumerable !== db.enumerable || da.configurable !== db.configurable) return false;
    if (!same(da.value, db.value)) return false;
  }
  return true;
})`

// exercise reads, changes and lists an object as reducers do, and returns
// what it saw; applied to e.data and to JSON.parse's result it must give
// the same.
const exercise = `(function exercise(o, depth) {
  var out = [];
  if (o === null || typeof o !== "object") return JSON.stringify([o]);
  var keys = Object.keys(o);
  out.push(keys.join(","), JSON.stringify(o), "a" in o, o.hasOwnProperty("__proto__"), typeof o.toString);
  for (var k in o) out.push(k);
  if (depth < 2) for (var i = 0; i < keys.length; i++) out.push(exercise(o[keys[i]], depth + 1));
  if (!Array.isArray(o)) {
    o.z = 1; o["7"] = 2; o["10"] = 3; o[keys[0]] = "changed";
    delete o[keys[keys.length - 1]];
    o.__proto__ = {inherited: 1};
    out.push(Object.keys(o).join(","), JSON.stringify(o), o.inherited, Object.getOwnPropertyNames(o).join(","));
    var d = Object.getOwnPropertyDescriptor(o, "z");
    out.push(d.value, d.writable, d.enumerable, d.configurable);
    out.push(JSON.stringify(Object.assign({}, o)), JSON.stringify(Object.entries(o)));
  }
  return out.join("|");
})`

func FuzzDecodeEvent(f *testing.F) {
	for _, seed := range []string{
		`{"type":"Deposited","amount":12}`, `{"b":1,"a":2,"b":3}`, `{"__proto__":{"x":1},"constructor":2}`,
		`{"2":"a","1":"b","x":"c","-1":"d","01":"e","4294967295":"f"}`, `[1,-0,0.1,1e21,1e-7,123456789012345678901234567890,-1e400,1e400]`,
		`"\ud800\u00e9\n\"x"`, `"plain"`, `null`, `true`, ` 42 `, ``, `not json`, "\xff\xfe", `{"a":`, `[[[[[]]]]]`,
		`{"a":{"b":{"c":[{"d":null}]}}}`, `"\u0000"`, `{"":1}`, `-0`, `0e10`, `1E+2`,
		// UTF-8 inside strings: valid, broken, a surrogate, past U+10FFFF, U+FFFD itself.
		// Strings longer than a word (plainRun reads eight bytes at a time).
		`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxx","type":"T"}`, `["0123456789abcdef\"0123456789\\x\u0041yz"]`, "\"abcdefgh\x01ijklmnop\"",
		"{\"abcdefghijk\xc3\xa9lmnopqrstu\":\"abcdefgh\x7fijkl\"}",
		"{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", "[\"\xf4\x90\x80\x80\"]", "\"\xef\xbf\xbd\"", "{\"\xff\":1}",
	} {
		f.Add([]byte(seed), "Type", "events.x.1", "Hdr", "v")
	}
	s := mustCompile(f, "fuzz.js", `function reduce(s, e) { return s; }`)
	f.Fuzz(func(t *testing.T, data []byte, typ, subject, hk, hv string) {
		r, err := s.realm()
		require_NoError(t, err)
		require_NoError(t, r.begin(context.Background(), "x.1", Limits{}.withDefaults(), nil))
		defer r.end(false)
		sameV, err := r.vm.RunString(sameAsJS)
		require_NoError(t, err)
		same, _ := goja.AssertFunction(sameV)
		parse, _ := goja.AssertFunction(r.vm.Get("JSON").ToObject(r.vm).Get("parse"))

		ev := &Event{Actor: "x.1", Type: typ, Subject: subject, Data: data, Seq: 3, Version: 2,
			Time: time.Unix(1700000000, 5), Headers: map[string][]string{hk: {hv}}}
		var obj goja.Value
		require_NoError(t, r.try(func() error { obj = r.event(ev); return nil }))
		got := obj.(*goja.Object).Get("data")

		// The type found while decoding is PayloadType's.
		fromData := &Event{Data: data, TypeFromData: true}
		var typV goja.Value
		require_NoError(t, r.try(func() error { typV = r.event(fromData).(*goja.Object).Get("type"); return nil }))
		if want := PayloadType(data); typV.String() != want {
			t.Fatalf("payload %q: type %q from the decode, PayloadType %q", data, typV, want)
		}

		if len(data) == 0 || !utf8.Valid(data) || !json.Valid(data) {
			if s, ok := got.Export().(string); !ok || s != strings.ToValidUTF8(string(data), "\uFFFD") {
				t.Fatalf("payload %q reached JS as %v, want the string", data, got)
			}
			return
		}
		if jsonDepth(data) > DefaultMaxCallStack/2 {
			return // too deep for the comparison in JS
		}
		want, err := parse(goja.Undefined(), r.vm.ToValue(string(data)))
		if err != nil {
			// goja's JSON.parse refuses numbers beyond float64; we give ±Infinity.
			if !strings.Contains(err.Error(), "cannot unmarshal number") {
				t.Fatalf("JSON.parse(%q): %v", data, err)
			}
			return
		}
		eq, err := same(goja.Undefined(), got, want)
		require_NoError(t, err)
		if !eq.ToBoolean() {
			gs, _ := json.Marshal(got.Export())
			ws, _ := json.Marshal(want.Export())
			t.Fatalf("payload %q: decoded %s, JSON.parse gives %s", data, gs, ws)
		}
		// The whole event stringifies.
		if _, err := r.stringify(goja.Undefined(), obj); err != nil {
			t.Fatalf("event does not stringify: %v", err)
		}
		// Used and changed as reducers do, it behaves the same.
		exV, err := r.vm.RunString(exercise)
		require_NoError(t, err)
		ex, _ := goja.AssertFunction(exV)
		got2 := r.event(ev).(*goja.Object).Get("data")
		want2, err := parse(goja.Undefined(), r.vm.ToValue(string(data)))
		require_NoError(t, err)
		gs, err := ex(goja.Undefined(), got2, r.vm.ToValue(0))
		require_NoError(t, err)
		ws, err := ex(goja.Undefined(), want2, r.vm.ToValue(0))
		require_NoError(t, err)
		require_Equal(t, gs.String(), ws.String())
	})
}
