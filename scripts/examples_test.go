// Package scripts_test folds the example reducers over their sample events
// (testdata/<type>.events.jsonl → testdata/<type>.golden.json) and over
// random workloads. Run with -update to rewrite the golden files.
package scripts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func compile(t *testing.T, typ string) *scripting.Script {
	t.Helper()
	src, err := os.ReadFile(typ + ".js")
	if err != nil {
		t.Fatal(err)
	}
	s, err := scripting.Compile(typ+".js", src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExamplesGolden(t *testing.T) {
	for _, typ := range []string{"account", "cart"} {
		t.Run(typ, func(t *testing.T) {
			s := compile(t, typ)
			f, err := os.Open(filepath.Join("testdata", typ+".events.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			actor := typ + ".1"
			events, err := scripting.ReadJSONL(f, actor)
			if err != nil {
				t.Fatal(err)
			}
			out, err := scripting.NewRuntime(scripting.Limits{}).Fold(context.Background(), s, actor, nil, events)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", typ+".golden.json")
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Fatalf("%s: got\n%s\nwant\n%s", golden, pretty.Bytes(), want)
			}
		})
	}
}

// randomPayload gives the kind of payloads the team's workloads and
// careless producers send, valid or not.
func randomPayload(r *rand.Rand, types []string) (string, []byte) {
	typ := types[r.IntN(len(types))]
	switch r.IntN(12) {
	case 0:
		return typ, nil
	case 1:
		return typ, []byte("not json")
	case 2:
		return typ, []byte("null")
	case 3:
		return typ, []byte(fmt.Sprint(r.IntN(100)))
	case 4:
		return typ, []byte(`[1,2,3]`)
	case 5:
		return typ, []byte(fmt.Sprintf(`{"type":%q}`, typ))
	case 6:
		return typ, []byte(fmt.Sprintf(`{"type":%q,"amount":"12","sku":7,"qty":-1,"price":1e400}`, typ))
	case 7:
		return typ, []byte(fmt.Sprintf(`{"type":%q,"amount":null,"sku":"__proto__","qty":1.5}`, typ))
	default:
		skus := []string{"tea", "mug", "pot", "constructor"}
		return typ, []byte(fmt.Sprintf(`{"type":%q,"amount":%d,"sku":%q,"qty":%d,"price":%d}`,
			typ, r.IntN(1000), skus[r.IntN(len(skus))], r.IntN(4), r.IntN(5000)))
	}
}

// TestExamplesRobust folds random workloads: nothing may throw, and a fold
// split as captures split it gives the same state as one fold.
func TestExamplesRobust(t *testing.T) {
	types := map[string][]string{
		"account": {"Opened", "Deposited", "Withdrawn", "Closed", "Renamed", "", "$init", "constructor", "toString"},
		"cart":    {"ItemAdded", "ItemRemoved", "CheckedOut", "CouponApplied", "", "$any", "__proto__", "hasOwnProperty"},
	}
	rt := scripting.NewRuntime(scripting.Limits{})
	ctx := context.Background()
	for typ, ts := range types {
		t.Run(typ, func(t *testing.T) {
			s := compile(t, typ)
			r := rand.New(rand.NewPCG(1, uint64(len(typ))))
			for actor := 0; actor < 20; actor++ {
				key := fmt.Sprintf("%s.%d", typ, actor)
				var events []scripting.Event
				for v := 1; v <= 60; v++ {
					et, data := randomPayload(r, ts)
					events = append(events, scripting.Event{
						Actor: key, Type: et, Data: data, Seq: uint64(1000*actor + v), Version: uint64(v),
						Subject: "events." + key, Time: time.Date(2024, 1, 1, 0, 0, v, 0, time.UTC),
					})
				}
				whole, err := rt.Fold(ctx, s, key, nil, events)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				var state []byte
				for i := 0; i < len(events); i += 7 {
					if state, err = rt.Fold(ctx, s, key, state, events[i:min(i+7, len(events))]); err != nil {
						t.Fatalf("%s: %v", key, err)
					}
				}
				if !bytes.Equal(state, whole) {
					t.Fatalf("%s: split fold\n%s\n!= whole fold\n%s", key, state, whole)
				}
			}
		})
	}
}

// TestAccountBalance checks the account example against a Go fold of the
// workload the integration tests publish.
func TestAccountBalance(t *testing.T) {
	s := compile(t, "account")
	r := rand.New(rand.NewPCG(2, 3))
	var events []scripting.Event
	balance := 0
	for v := 1; v <= 500; v++ {
		typ, amount := "Deposited", 1+r.IntN(100)
		if r.IntN(3) == 0 {
			typ = "Withdrawn"
			balance -= amount
		} else {
			balance += amount
		}
		events = append(events, scripting.Event{
			Actor: "account.42", Type: typ, Version: uint64(v), Seq: uint64(v),
			Data: []byte(fmt.Sprintf(`{"type":%q,"amount":%d}`, typ, amount)),
		})
	}
	out, err := scripting.NewRuntime(scripting.Limits{}).Fold(context.Background(), s, "account.42", nil, events)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"balance":%d,`, balance); !strings.Contains(string(out), want) {
		t.Fatalf("state %s does not contain %s", out, want)
	}
}
