package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBench runs `jetsnap bench` on a tiny workload on its own embedded
// server: every phase runs, the table and the JSON have every figure, and
// the native fold computes what the reducer computes.
func TestBench(t *testing.T) {
	t.Setenv("NATS_URL", "")
	t.Setenv("JETSNAP_SCRIPTS_DIR", "../../scripts")
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "--events", "3000", "--actors", "20", "--rounds", "1", "--fold-events", "2000", "--fold-rounds", "1",
		"--lag-duration", "1s", "--lag-rate", "2000", "--long-events", "1000", "--long-spread", "3", "--loads", "5", "--replays", "2",
		"--memory-actors", "10000", "--json", out}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"consume, snapshots every 100", "reducer account.js", "read amplification", "snapshot lag", "load 1,050-event actor", "memory per tracked actor", "consume after a restart"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"consume_ratio", "read_amplification", "reduce_ratio", "lag_p99_ms", "load_p50_ms", "load_speedup", "bytes_per_actor"} {
		if v, ok := res[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, res[k])
		}
	}
	if v, ok := res["restart_events_per_s"].(float64); !ok || v <= 0 || res["restart_events"].(float64) != 750 {
		t.Errorf("restart: %v events at %v events/s, want 750 (a quarter of --events) at a positive rate", res["restart_events"], res["restart_events_per_s"])
	}
	if rr, ok := res["consume_round_ratios"].([]any); !ok || len(rr) != 1 || rr[0].(float64) <= 0 {
		t.Errorf("consume_round_ratios = %v, want one positive ratio (one round)", res["consume_round_ratios"])
	}
	// The slowest snapshots' lag, taken apart from the capture spans: each
	// part took time, and together they are within the lag measured from
	// outside (the snapshot may be seen a little before its publish is
	// acknowledged, hence the margin).
	due, queued, capture := res["lag_slowest_until_due_ms"].(float64), res["lag_slowest_queued_ms"].(float64), res["lag_slowest_capture_ms"].(float64)
	if due <= 0 || queued < 0 || capture <= 0 || due+queued+capture > res["lag_max_ms"].(float64)+50 {
		t.Errorf("slowest snapshots: %.2f ms until due, %.2f queued, %.2f capturing; lag at most %v ms", due, queued, capture, res["lag_max_ms"])
	}
	if wait, ok := res["lag_slowest_fold_wait_ms"].(float64); !ok || wait < 0 || wait > capture {
		t.Errorf("slowest snapshots: %v ms waiting for a fold slot, out of %.2f ms capturing", res["lag_slowest_fold_wait_ms"], capture)
	}
	if res["native_fold_matches_reducer"] != true {
		t.Errorf("the native fold differs from scripts/account.js:\n%s", stderr.String())
	}
	if res["consumed"].(float64) < 3000 || res["load_tail_events"].(float64) != 50 {
		t.Errorf("consumed %v, load tail %v; want >= 3000 and 50", res["consumed"], res["load_tail_events"])
	}
}

func TestParseMix(t *testing.T) {
	types, cum, err := parseMix("A=1, B=3")
	if err != nil || strings.Join(types, ",") != "A,B" || cum[0] != 1 || cum[1] != 4 {
		t.Fatalf("got %v %v %v", types, cum, err)
	}
	for _, bad := range []string{"", "A", "A=0", "=2", "A=x"} {
		if _, _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) did not fail", bad)
		}
	}
}

// TestJSFormat: the native fold writes numbers and strings as
// JSON.stringify does.
func TestJSFormat(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{{0, "0"}, {12, "12"}, {-3.5, "-3.5"}, {1e21, "1e+21"}, {1e-7, "1e-7"}} {
		if got := string(appendJSNumber(nil, c.in)); got != c.want {
			t.Errorf("appendJSNumber(%v) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := string(appendJSString(nil, "a\"b\\\n\x01")); got != `"a\"b\\\n\u0001"` {
		t.Errorf("appendJSString = %s", got)
	}
}
