package scripting

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

const accountSrc = `
function init(actor) { return { id: actor, balance: 0 }; }
function reduce(state, event) {
  switch (event.type) {
  case "Deposited": state.balance += event.data.amount; break;
  case "Withdrawn": state.balance -= event.data.amount; break;
  }
  return state;
}
`

const cartSrc = `
var handlers = {
  $init: function (actor) { return { items: {}, n: 0 }; },
  ItemAdded: function (s, e) { s.items[e.data.sku] = (s.items[e.data.sku] || 0) + e.data.qty; s.n++; return s; },
  ItemRemoved: function (s, e) { delete s.items[e.data.sku]; s.n++; return s; },
};
`

func TestFoldForms(t *testing.T) {
	rt := NewRuntime(Limits{})
	acc := mustCompile(t, "account.js", accountSrc)
	cart := mustCompile(t, "cart.js", cartSrc)

	events := evs("account.1", "Deposited", `{"amount":10}`, "Withdrawn", `{"amount":3}`, "Other", `{}`)
	got, err := fold(t, rt, acc, "account.1", "", events)
	require_NoError(t, err)
	require_Equal(t, got, `{"id":"account.1","balance":7}`)

	// From a base state, as a capture after a snapshot does.
	got, err = fold(t, rt, acc, "account.1", `{"id":"account.1","balance":100}`, events[1:])
	require_NoError(t, err)
	require_Equal(t, got, `{"id":"account.1","balance":97}`)

	events = evs("cart.7", "ItemAdded", `{"sku":"a","qty":2}`, "Unknown", `{}`, "ItemAdded", `{"sku":"b","qty":1}`, "ItemRemoved", `{"sku":"a"}`, "constructor", `{}`)
	got, err = fold(t, rt, cart, "cart.7", "", events)
	require_NoError(t, err)
	require_Equal(t, got, `{"items":{"b":1},"n":3}`)
}

// TestTypeFromData: events whose type is their payload's fold as if the
// type were given, in both forms; the type is the payload's as stored,
// whatever the reducer does to e.data first; a reducer error names it.
func TestTypeFromData(t *testing.T) {
	rt := NewRuntime(Limits{})
	fromData := func(events []Event) []Event {
		for i := range events {
			events[i].Type, events[i].TypeFromData = "", true
		}
		return events
	}
	acc := mustCompile(t, "account.js", accountSrc)
	got, err := fold(t, rt, acc, "account.1", "", fromData(evs("account.1",
		"", `{"type":"Deposited","amount":10}`, "", `{"amount":3,"type":"Withdrawn"}`, "", `{"type":"Other"}`,
		"", `{"type":7,"amount":100}`, "", `not json`, "", `["Deposited"]`, "", `{"type":"Withdrawn","type":"Deposited","amount":1}`)))
	require_NoError(t, err)
	require_Equal(t, got, `{"id":"account.1","balance":8}`)

	cart := mustCompile(t, "cart.js", cartSrc)
	got, err = fold(t, rt, cart, "cart.7", "", fromData(evs("cart.7",
		"", `{"type":"ItemAdded","sku":"a","qty":2}`, "", `{"type":"constructor"}`, "", `{"type":"ItemAdded","sku":"b","qty":1}`, "", `{"sku":"a","type":"ItemRemoved"}`)))
	require_NoError(t, err)
	require_Equal(t, got, `{"items":{"b":1},"n":3}`)

	// Given types win; the payload's type is read before the reducer runs.
	s := mustCompile(t, "x.js", `function reduce(s, e) { e.data.type = "changed"; delete e.data.type; s.t = (s.t || "") + e.type + ","; return s; }`)
	events := fromData(evs("x.1", "", `{"type":"A"}`, "", `{"type":"B"}`))
	events[1].Type = "Given"
	got, err = fold(t, rt, s, "x.1", "", events)
	require_NoError(t, err)
	require_Equal(t, got, `{"t":"A,Given,"}`)

	bad := mustCompile(t, "bad.js", `function reduce(s, e) { if (e.type === "Boom") throw new Error("no"); return s; }`)
	_, err = fold(t, rt, bad, "bad.1", "", fromData(evs("bad.1", "", `{"type":"Fine"}`, "", `{"type":"Boom"}`)))
	require_Equal(t, asScriptError(t, err).EventType, "Boom")
}

// TestFoldMemChunks: a fold's JS events get their memory a chunk at a
// time, the first from the realm, and each its own payload, in place,
// across chunk boundaries; the realm's chunk is cleared after the fold.
func TestFoldMemChunks(t *testing.T) {
	n := 3*foldChunk + 5
	events := make([]Event, n)
	for i := range events {
		events[i].Data = fmt.Appendf(nil, `{"i":%d}`, i)
	}
	events[foldChunk].Data = nil // empty, at a boundary
	var m foldMem
	r := &realm{chunk: new(chunk)}
	for i := range events {
		o := m.event(r, events, i)
		if o.ev != &events[i] || o.r != r || o.top == nil || o.payload != string(events[i].Data) {
			t.Fatalf("event %d: payload %q, want %q", i, o.payload, events[i].Data)
		}
		if len(events[i].Data) > 0 && unsafe.StringData(o.payload) != &events[i].Data[0] {
			t.Fatalf("event %d: payload copied", i)
		}
		base, p := uintptr(unsafe.Pointer(&r.chunk.objs)), uintptr(unsafe.Pointer(o))
		if inRealm := p >= base && p < base+unsafe.Sizeof(r.chunk.objs); inRealm != (i < foldChunk) {
			t.Fatalf("event %d: in the realm's chunk: %v", i, inRealm)
		}
		if len(m.objs) > n/3 {
			t.Fatalf("event %d: memory for %d of %d events held at once", i, len(m.objs), n)
		}
	}
	r.release(events)
	if o := r.chunk.objs[0]; o.ev != nil || o.payload != "" || r.chunk.objs[foldChunk-1].ev != nil || r.chunk.tops[0].s != "" {
		t.Fatal("the realm's chunk still holds the fold's events")
	}
}

// TestFoldsShareNoEvents: a fold sees nothing a fold before it in the same
// realm did to its events (the realm's chunk is reused).
func TestFoldsShareNoEvents(t *testing.T) {
	rt := NewRuntime(Limits{})
	s := mustCompile(t, "mark.js", `function reduce(s, e) {
  s.seen = (s.seen || []).concat([[e.type, e.mark === undefined, e.data.mark === undefined, Object.keys(e).length, Object.keys(e.data).length]]);
  e.mark = 1; e.data.mark = 1; delete e.subject; e.data.extra = e.seq;
  return s;
}`)
	var want string
	for i := range 3 {
		events := evs("mark.1", "", `{"type":"A","v":1}`, "", `{"type":"B","v":2}`)
		for j := range events {
			events[j].Type, events[j].TypeFromData = "", true
		}
		out, err := fold(t, rt, s, "mark.1", "", events)
		require_NoError(t, err)
		if i == 0 {
			want = out
			require_Equal(t, out, `{"seen":[["A",true,true,8,2],["B",true,true,8,2]]}`)
		}
		require_Equal(t, out, want)
	}
}

// TestLongFoldMemory: a fold as long as a rebuild of a long history keeps
// no memory per event folded, so it passes under a heap limit that all its
// events' JS objects held at once would exceed (found in review: the first
// foldMem took memory for the whole fold).
func TestLongFoldMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measures the heap; run without -race: go test -run TestLongFoldMemory ./scripting/")
	}
	const n = 400_000
	s := mustCompile(t, "long.js", `function reduce(s, e) { if (e.type === "Deposited") s.b = (s.b || 0) + e.data.amount; return s; }`)
	events := make([]Event, n)
	for i := range events {
		d := fmt.Appendf(nil, `{"type":"Deposited","amount":1,"currency":"EUR","owner":"someone-%06d","note":"padding padding padding"}`, i)
		events[i] = Event{Data: d, TypeFromData: true, Seq: uint64(i + 1), Version: uint64(i + 1)}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// The garbage collector lets the heap reach about twice what is live:
	// the events, plus a chunk. Their JS objects all at once are ~350 MB more.
	rt := NewRuntime(Limits{MaxHeapBytes: int(ms.HeapAlloc) + 200<<20})
	got, err := fold(t, rt, s, "long.1", "", events)
	require_NoError(t, err)
	require_Equal(t, got, fmt.Sprintf(`{"b":%d}`, n))
	runtime.KeepAlive(events)
}

// TestIdleRealmMemory: a realm back in its pool keeps nothing of the
// events it folded (found in review: a type found in a payload, cached by
// the realm, kept every payload of the fold alive).
func TestIdleRealmMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measures the heap; run without -race: go test -run TestIdleRealmMemory ./scripting/")
	}
	const n, size = 64, 1 << 20
	s := mustCompile(t, "idle.js", `function reduce(s, e) { s.n = (s.n || 0) + 1; s.type = e.type; s.last = e.data.note.length; return s; }`)
	rt := NewRuntime(Limits{})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	func() {
		events := make([]Event, n)
		for i := range events {
			note := strings.Repeat("x", size)
			events[i] = Event{Data: fmt.Appendf(nil, `{"type":"T%d","note":%q}`, i, note), TypeFromData: true, Seq: uint64(i + 1), Version: uint64(i + 1)}
		}
		got, err := fold(t, rt, s, "idle.1", "", events)
		require_NoError(t, err)
		require_Equal(t, got, fmt.Sprintf(`{"n":%d,"type":"T%d","last":%d}`, n, n-1, size))
	}()
	if grew := int64(heap()) - int64(before); grew > 8<<20 {
		t.Fatalf("the heap grew by %d MiB after a fold of %d MiB of payloads whose events are gone", grew>>20, n*size>>20)
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(rt)
}

func TestFoldDefaultsAndAny(t *testing.T) {
	rt := NewRuntime(Limits{})
	s := mustCompile(t, "x.js", `function reduce(s, e) { s[e.type] = e.data; return s; }`)
	got, err := fold(t, rt, s, "x.1", "", evs("x.1", "A", `{"k":[1,2.5,"z",null,true]}`, "B", `not json`, "C", ``, "D", `"str"`))
	require_NoError(t, err)
	require_Equal(t, got, `{"A":{"k":[1,2.5,"z",null,true]},"B":"not json","C":"","D":"str"}`)

	h := mustCompile(t, "h.js", `var handlers = { A: function (s, e) { s.a = 1; return s; }, $any: function (s, e) { s.any = (s.any || 0) + 1; return s; } };`)
	got, err = fold(t, rt, h, "h.1", "", evs("h.1", "A", `{}`, "B", `{}`, "", `{}`))
	require_NoError(t, err)
	require_Equal(t, got, `{"a":1,"any":2}`)
}

func TestFoldErrors(t *testing.T) {
	rt := NewRuntime(Limits{MaxStateBytes: 1000})
	cases := []struct {
		name, src string
		want      string // substring of the error
		line      int
		is        error
	}{
		{"throw", "function reduce(s, e) {\n  if (e.type === 'Bad') {\n    throw new TypeError('bad event');\n  }\n  return s;\n}", "x.js:3:11: actor x.1, event seq 20 (Bad): TypeError: bad event", 3, nil},
		{"type error", "function reduce(s, e) {\n  return e.data.missing.field;\n}", "TypeError", 2, nil},
		{"undefined", "function reduce(s, e) { s.n = 1; }", "reduce returned undefined", 0, nil},
		{"function state", "function reduce(s, e) { s.f = function () {}; return s; }", `function at key "f"`, 0, ErrNotSerialisable},
		{"function top", "function reduce(s, e) { return function () {}; }", "not JSON-serialisable", 0, ErrNotSerialisable},
		{"cycle", "function reduce(s, e) { s.self = s; return s; }", "not JSON-serialisable", 0, ErrNotSerialisable},
		{"too large", "function reduce(s, e) { s.x = 'x'.repeat(2000); return s; }", "2008 bytes, limit 1000", 0, ErrStateTooLarge},
		{"recursion", "function f(n) { return f(n + 1) + 1; }\nfunction reduce(s, e) { return f(0); }", "maximum call stack", 1, ErrStackOverflow},
		{"init throws", "function init(a) { null.x; }\nfunction reduce(s, e) { return s; }", "init: TypeError", 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, "x.js", c.src)
			_, err := fold(t, rt, s, "x.1", "", evs("x.1", "Good", `{}`, "Bad", `{}`))
			if err == nil {
				t.Fatal("no error")
			}
			require_Contains(t, err.Error(), c.want)
			se := asScriptError(t, err)
			require_Equal(t, se.File, "x.js")
			require_Equal(t, se.Actor, "x.1")
			if c.line > 0 {
				require_Equal(t, se.Line, c.line)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("%v is not %v", err, c.is)
			}
			// The runtime goes on folding.
			ok := mustCompile(t, "ok.js", accountSrc)
			got, err := fold(t, rt, ok, "account.2", "", evs("account.2", "Deposited", `{"amount":5}`))
			require_NoError(t, err)
			require_Equal(t, got, `{"id":"account.2","balance":5}`)
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"syntax", "function reduce(s, e) {\n  return s +;\n}", "bad.js:2:"},
		{"no reducer", "var x = 1;", "neither reduce"},
		{"reduce not function", "var reduce = 3;", "reduce is not a function"},
		{"handler not function", "var handlers = { A: 1 };", "handlers.A is not a function"},
		{"top level throws", "\n\nthrow new Error('boom');", "bad.js:3:"},
		{"bad revision", "var revision = {}; function reduce(s) { return s; }", "revision must be"},
		{"bigint", "function reduce(s, e) {\n  s.n = 10n; return s; }", "bad.js:2:9: SyntaxError: BigInt is not available"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile("bad.js", []byte(c.src))
			if err == nil {
				t.Fatal("no error")
			}
			require_Contains(t, err.Error(), c.want)
			asScriptError(t, err)
		})
	}
}

func TestIdentity(t *testing.T) {
	s := mustCompile(t, "dir/account.js", accountSrc)
	require_Equal(t, s.Type, "account")
	require_Equal(t, len(s.Identity), 16)
	require_Equal(t, s.Reducer(), "account@"+s.Identity)
	r := mustCompile(t, "account.js", `var revision = 3; `+accountSrc)
	require_Equal(t, r.Reducer(), "account@r3")
	r = mustCompile(t, "account.js", `const revision = "2024-06"; `+accountSrc)
	require_Equal(t, r.Identity, "r2024-06")
}

func TestTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	rt := NewRuntime(Limits{Timeout: timeout})
	loop := mustCompile(t, "loop.js", "function reduce(s, e) {\n  if (e.type === 'Loop') { for (;;) {} }\n  return s;\n}")
	start := time.Now()
	_, err := fold(t, rt, loop, "loop.1", "", evs("loop.1", "A", `{}`, "Loop", `{}`))
	if el := time.Since(start); el > timeout+250*time.Millisecond {
		t.Fatalf("fold returned after %s", el)
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v is not ErrTimeout", err)
	}
	se := asScriptError(t, err)
	require_Equal(t, se.Line, 2)
	require_Equal(t, se.Seq, 20)

	// The same runtime folds the next actor.
	acc := mustCompile(t, "account.js", accountSrc)
	got, err := fold(t, rt, acc, "account.9", "", evs("account.9", "Deposited", `{"amount":1}`))
	require_NoError(t, err)
	require_Equal(t, got, `{"id":"account.9","balance":1}`)

	// A cancelled ctx is reported as such, not as a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = rt.Fold(ctx, loop, "loop.1", nil, evs("loop.1", "Loop", `{}`))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestFoldsShareNothingThroughTheTopLevel: the top level's wrapper
// function, which a script reaches with arguments.callee, is the same in
// every fold of a realm; what a fold hangs on it is not seen by the next
// (found in review: an event kept there was a later fold's, or a cleared
// one).
func TestFoldsShareNothingThroughTheTopLevel(t *testing.T) {
	rt := NewRuntime(Limits{})
	s := mustCompile(t, "callee.js", `var top = arguments.callee;
function reduce(s, e) {
  s.kept = top.kept === undefined ? null : [top.kept.seq, top.kept.type];
  top.kept = e;
  top.prototype && (top.prototype.kept = e);
  return s;
}`)
	for i := range 3 {
		events := evs("callee.1", "A", `{}`, "B", `{}`)[:2-i%2]
		out, err := fold(t, rt, s, "callee.1", "", events) // two events, then one, ...
		require_NoError(t, err)
		require_Equal(t, out, `{"kept":null}`)
	}
	strict := mustCompile(t, "callee-strict.js", `var top = arguments.callee;
function reduce(s, e) { "use strict"; top.kept = e; return s; }`)
	_, err := fold(t, rt, strict, "callee.1", "", evs("callee.1", "A", `{}`))
	if err == nil {
		t.Fatal("a strict assignment to the frozen top level succeeded")
	}
}

// TestFoldErrorOwnsItsText: an error that quotes a payload (a thrown
// string from e.data) keeps its text when the caller reuses the payload's
// memory after Fold (found in review: payloads reach JS without a copy).
func TestFoldErrorOwnsItsText(t *testing.T) {
	s := mustCompile(t, "throw.js", `function reduce(s, e) { throw e.data.m; }`)
	events := evs("throw.1", "A", `{"m":"original"}`)
	_, err := fold(t, NewRuntime(Limits{}), s, "throw.1", "", events)
	if err == nil {
		t.Fatal("no error")
	}
	before := err.Error()
	for i := range events[0].Data {
		events[0].Data[i] = 'X'
	}
	if after := err.Error(); after != before || !strings.Contains(after, "original") {
		t.Fatalf("error %q became %q", before, after)
	}
}

// TestCancelAfterFoldLeavesNoInterrupt: a fold's context that ends after its
// JS has finished, just as the fold ends, leaves no interrupt behind in the
// realm it puts back in the pool: the next fold on it, maybe of another
// actor, runs normally.
func TestCancelAfterFoldLeavesNoInterrupt(t *testing.T) {
	s := mustCompile(t, "count.js", `function reduce(s, e) { s.n = (s.n || 0) + 1; return s; }`)
	lim := Limits{}.withDefaults()
	for i := range 2000 {
		r, err := s.realm()
		require_NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		require_NoError(t, r.begin(ctx, "a", lim, nil))
		_, err = r.fold(nil, evs("a", "Deposited", `{}`))
		require_NoError(t, err)
		cancel() // its interrupt starts now, in a goroutine of its own
		r.end(true)

		r, err = s.realm()
		require_NoError(t, err)
		require_NoError(t, r.begin(context.Background(), "b", lim, nil))
		out, err := r.fold(nil, evs("b", "Deposited", `{}`))
		r.end(err == nil)
		if err != nil {
			t.Fatalf("fold %d, after a fold whose context ended as it finished: %v", i, err)
		}
		require_Equal(t, string(out), `{"n":1}`)
	}
}
