package scripting

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// benchEvents returns n account events with 150-byte JSON payloads.
func benchEvents(n int) []Event {
	events := make([]Event, n)
	for i := range events {
		typ := "Deposited"
		if i%3 == 2 {
			typ = "Withdrawn"
		}
		data := fmt.Sprintf(`{"type":%q,"amount":%d,"currency":"EUR","account":"account.42","ref":"tx-%08d","note":"monthly transfer","tags":["auto","sepa"],"ok":true}`, typ, 10+i%50, i)
		for len(data) < 150 {
			data = data[:len(data)-1] + `,"p":0}`
		}
		events[i] = Event{
			Actor: "account.42", Type: typ, Subject: "events.account.42", Data: []byte(data),
			Seq: uint64(1000 + i), Version: uint64(i + 1), Time: time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC),
			Headers: map[string][]string{"Nats-Msg-Id": {fmt.Sprint(i)}},
		}
	}
	return events
}

const benchFunctionSrc = `
function init(actor) { return { id: actor, balance: 0, deposits: 0, withdrawals: 0 }; }
function reduce(s, e) {
  switch (e.type) {
  case "Deposited": s.balance += e.data.amount; s.deposits++; break;
  case "Withdrawn": s.balance -= e.data.amount; s.withdrawals++; break;
  }
  return s;
}`

const benchHandlersSrc = `
var handlers = {
  $init: function (actor) { return { id: actor, balance: 0, deposits: 0, withdrawals: 0 }; },
  Deposited: function (s, e) { s.balance += e.data.amount; s.deposits++; return s; },
  Withdrawn: function (s, e) { s.balance -= e.data.amount; s.withdrawals++; return s; },
};`

type benchState struct {
	ID          string `json:"id"`
	Balance     int    `json:"balance"`
	Deposits    int    `json:"deposits"`
	Withdrawals int    `json:"withdrawals"`
}

// nativeFold is the same reducer written in Go: the baseline.
func nativeFold(actor string, state []byte, events []Event) ([]byte, error) {
	s := benchState{ID: actor}
	if state != nil {
		if err := json.Unmarshal(state, &s); err != nil {
			return nil, err
		}
	}
	for i := range events {
		var d struct {
			Amount int `json:"amount"`
		}
		if err := json.Unmarshal(events[i].Data, &d); err != nil {
			continue
		}
		switch events[i].Type {
		case "Deposited":
			s.Balance += d.Amount
			s.Deposits++
		case "Withdrawn":
			s.Balance -= d.Amount
			s.Withdrawals++
		}
	}
	return json.Marshal(s)
}

func BenchmarkFold(b *testing.B) {
	if n := len(benchEvents(1)[0].Data); n < 150 || n > 155 {
		b.Fatalf("payload is %d bytes", n)
	}
	fn := mustCompile(b, "account.js", benchFunctionSrc)
	h := mustCompile(b, "account.js", benchHandlersSrc)
	ctx := context.Background()
	for _, n := range []int{1, 10, 100} {
		events := benchEvents(n)
		want, err := nativeFold("account.42", nil, events)
		require_NoError(b, err)
		for _, c := range []struct {
			name string
			s    *Script
		}{{"function", fn}, {"handlers", h}, {"native", nil}} {
			b.Run(fmt.Sprintf("%s/events=%d", c.name, n), func(b *testing.B) {
				rt := NewRuntime(Limits{})
				b.ReportAllocs()
				var out []byte
				var err error
				for b.Loop() {
					if c.s == nil {
						out, err = nativeFold("account.42", nil, events)
					} else {
						out, err = rt.Fold(ctx, c.s, "account.42", nil, events)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if string(out) != string(want) {
					b.Fatalf("got %s, want %s", out, want)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
			})
		}
	}
}

// BenchmarkFoldVsNative runs the JS fold and the native fold of the same
// 100 events alternately in one loop, so that both see the same machine
// load, and reports their ratio: js_vs_native_% is native time / JS time
// (100 means as fast as Go; issue 7 asks for at least 60).
func BenchmarkFoldVsNative(b *testing.B) {
	events := benchEvents(100)
	want, err := nativeFold("account.42", nil, events)
	require_NoError(b, err)
	ctx := context.Background()
	for _, c := range []struct{ name, src string }{{"function", benchFunctionSrc}, {"handlers", benchHandlersSrc}} {
		b.Run(c.name, func(b *testing.B) {
			s := mustCompile(b, "account.js", c.src)
			rt := NewRuntime(Limits{})
			var js, native time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				out, err := rt.Fold(ctx, s, "account.42", nil, events)
				t1 := time.Now()
				nout, nerr := nativeFold("account.42", nil, events)
				t2 := time.Now()
				if err != nil || nerr != nil || string(out) != string(want) || string(nout) != string(want) {
					b.Fatalf("got %s (%v), %s (%v), want %s", out, err, nout, nerr, want)
				}
				js += t1.Sub(t0)
				native += t2.Sub(t1)
			}
			n := float64(b.N * len(events))
			b.ReportMetric(float64(js.Nanoseconds())/n, "js_ns/event")
			b.ReportMetric(float64(native.Nanoseconds())/n, "native_ns/event")
			b.ReportMetric(100*float64(native)/float64(js), "js_vs_native_%")
		})
	}
}

// BenchmarkDecodeData compares decoding a 150-byte payload in Go with
// goja's JSON.parse, the reason decodeData exists.
func BenchmarkDecodeData(b *testing.B) {
	data := benchEvents(1)[0].Data
	vm := goja.New()
	b.Run("go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodeData(vm, data)
		}
	})
	// What a fold does with each payload: check it whole, index the top
	// level, decode members when read (not here). The padded payload is
	// jetsnap bench's: most of its bytes in one string.
	padded := []byte(`{"type":"Deposited","amount":42,"ref":"e123456","pad":"` + strings.Repeat("x", 90) + `"}`)
	for _, p := range []struct {
		name string
		data []byte
	}{{"lazy", data}, {"lazy-padded", padded}} {
		b.Run(p.name, func(b *testing.B) {
			var top lazyObject
			b.ReportAllocs()
			for b.Loop() {
				if _, typ := decodeEventData(vm, string(p.data), &top); typ != "Deposited" && typ != "Withdrawn" {
					b.Fatalf("type %q", typ)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(p.data)), "ns/byte")
		})
	}
	b.Run("JSON.parse", func(b *testing.B) {
		parse, _ := goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("parse"))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parse(goja.Undefined(), vm.ToValue(string(data))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRealm is the fixed cost of a fold: "new" makes a realm (sandbox,
// guards, lockdown), once per script and concurrent fold; "reuse" takes
// an idle one and runs the script's top level, as every fold does.
func BenchmarkRealm(b *testing.B) {
	s := mustCompile(b, "account.js", benchFunctionSrc)
	lim := Limits{}.withDefaults()
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := newRealm(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reuse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := s.realm()
			if err != nil {
				b.Fatal(err)
			}
			if err := r.begin(context.Background(), "account.42", lim, nil); err != nil {
				b.Fatal(err)
			}
			r.end(true)
		}
	})
}
