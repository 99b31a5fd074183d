package main

import (
	"os"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
)

// BenchmarkFoldAccount folds the bench's default workload (its first
// actors' events in folds of 100, each on the state of the one before) with
// scripts/account.js and with its native Go twin, each fold by one then
// the other, as `jetsnap bench` does. It reports both per event and the
// reducer's share of native speed (issue 7 asks for at least 60 %).
func BenchmarkFoldAccount(b *testing.B) {
	pattern, err := snapshotter.ParsePattern("events.{type}.{id}")
	if err != nil {
		b.Fatal(err)
	}
	types, cum, err := parseMix("Deposited=65,Withdrawn=30,Opened=4,Closed=1")
	if err != nil {
		b.Fatal(err)
	}
	w := &workload{pattern: pattern, typ: "account", actors: 2000, payload: 150, seed: 1, types: types, cum: cum}
	folds := w.foldSet(400_000, 20_000, 100)
	src, err := os.ReadFile("../../scripts/account.js")
	if err != nil {
		b.Fatal(err)
	}
	script, err := scripting.Compile("account.js", src)
	if err != nil {
		b.Fatal(err)
	}
	rt := scripting.NewRuntime(scripting.Limits{})
	var js, native time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		dJS, dGo := foldBoth(rt, script, folds, func(actor string, outJS, outGo []byte, errJS, errGo error) {
			if errJS != nil || errGo != nil || string(outJS) != string(outGo) {
				b.Fatalf("%s: reducer %s (%v), native %s (%v)", actor, outJS, errJS, outGo, errGo)
			}
		})
		js, native = js+dJS, native+dGo
		for _, evs := range folds {
			n += len(evs)
		}
	}
	b.ReportMetric(float64(js.Nanoseconds())/float64(n), "js_ns/event")
	b.ReportMetric(float64(native.Nanoseconds())/float64(n), "native_ns/event")
	b.ReportMetric(100*float64(native)/float64(js), "js_vs_native_%")
}
