package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The flag is not called -update so as not to clash with other tests of this package.
var updateReduce = flag.Bool("update-reduce", false, "rewrite the golden files of the example reducers (scripts/testdata)")

const scriptsDir = "../../scripts"

// reduce runs `jetsnap reduce args...` with stdin and returns its outputs.
func reduce(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runReduce(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestReduceGolden(t *testing.T) {
	for _, typ := range []string{"account", "cart"} {
		for _, trace := range []bool{false, true} {
			name, golden := typ, filepath.Join(scriptsDir, "testdata", typ+".golden.json")
			args := []string{"--script", filepath.Join(scriptsDir, typ+".js")}
			if trace {
				name, golden = typ+"/trace", filepath.Join(scriptsDir, "testdata", typ+".trace.golden.jsonl")
				args = append(args, "--trace")
			}
			t.Run(name, func(t *testing.T) {
				events, err := os.ReadFile(filepath.Join(scriptsDir, "testdata", typ+".events.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				code, out, errs := reduce(t, string(events), args...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errs)
				}
				if *updateReduce {
					if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if out != string(want) {
					t.Fatalf("%s: got\n%s\nwant\n%s", golden, out, want)
				}
			})
		}
	}
}

func TestReduceOptions(t *testing.T) {
	script := filepath.Join(scriptsDir, "account.js")
	events := `{"type":"Deposited","data":{"amount":5},"time":"2024-01-01T00:00:00Z"}` + "\n\n" +
		`{"type":"Deposited","data":{"amount":7},"version":9,"seq":90}`

	code, out, errs := reduce(t, events, "--script", script, "--actor", "account.42")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, `"id": "account.42"`) || !strings.Contains(out, `"balance": 12`) {
		t.Fatalf("unexpected state:\n%s", out)
	}

	// Events from a file, flags after it, a base state.
	dir := t.TempDir()
	file, base := filepath.Join(dir, "ev.jsonl"), filepath.Join(dir, "base.json")
	if err := os.WriteFile(file, []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, []byte(`{"balance":100,"deposits":0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = reduce(t, "", "--script", script, file, "--state", base, "--trace")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := `{"version":1,"seq":1,"type":"Deposited","state":{"balance":105,"deposits":1,"updated":"2024-01-01T00:00:00Z"}}` + "\n" +
		`{"version":9,"seq":90,"type":"Deposited","state":{"balance":112,"deposits":2,"updated":"1970-01-01T00:00:00Z"}}` + "\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}

	// console.log goes to stderr.
	dbg := filepath.Join(dir, "dbg.js")
	if err := os.WriteFile(dbg, []byte(`function reduce(s, e) { console.log("seen", e.type, e.data); return s; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = reduce(t, `{"type":"A","data":{"x":1}}`, "--script", dbg)
	if code != 0 || errs != "console.log: seen A {\"x\":1}\n" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestReduceErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	throws := write("throws.js", "function reduce(s, e) {\n  if (e.type === 'Bad') throw new Error('no way');\n  return s;\n}\n")
	broken := write("broken.js", "function reduce(s, e) {\n  return s +;\n}\n")
	loops := write("loops.js", "function reduce(s, e) { for (;;) {} }")
	account := filepath.Join(scriptsDir, "account.js")

	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string // in stderr
	}{
		{"no script", "", nil, 2, "--script is required"},
		{"unknown flag", "", []string{"--nope"}, 2, "flag provided but not defined"},
		{"two files", "", []string{"--script", account, "a", "b"}, 2, "at most one events file"},
		{"check with script", "", []string{"--check", "--script", account, dir}, 2, "--check takes only"},
		{"check without dir", "", []string{"--check"}, 2, "--check needs"},
		{"missing script", "", []string{"--script", filepath.Join(dir, "nope.js")}, 1, "no such file"},
		{"syntax error", "", []string{"--script", broken}, 1, broken + ":2:13: SyntaxError"},
		{"throw", `{"type":"Good","data":{}}` + "\n" + `{"type":"Bad","data":{}}`, []string{"--script", throws}, 1,
			throws + ":2:31: actor throws.1, event seq 2 (Bad): Error: no way"},
		{"timeout", `{"type":"A","data":{}}`, []string{"--script", loops, "--timeout", "50ms"}, 1, "reducer timed out"},
		{"missing data", `{"type":"A"}`, []string{"--script", account}, 1, `stdin: line 1: missing "data"`},
		{"missing type", "\n" + `{"data":{}}`, []string{"--script", account}, 1, `stdin: line 2: missing "type"`},
		{"unknown field", `{"type":"A","data":{},"dta":1}`, []string{"--script", account}, 1, `line 1: not a JSON event object: json: unknown field "dta"`},
		{"not json", `{"type":"A",`, []string{"--script", account}, 1, "line 1: not a JSON event object"},
		{"bad time", `{"type":"A","data":{},"time":"yesterday"}`, []string{"--script", account}, 1, `line 1: "time"`},
		{"bad headers", `{"type":"A","data":{},"headers":{"X":1}}`, []string{"--script", account}, 1, `"X" must be a string`},
		{"check broken dir", "", []string{"--check", dir}, 1, broken + ":2:13: SyntaxError"},
		{"check empty dir", "", []string{"--check", t.TempDir()}, 1, "no *.js scripts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := reduce(t, c.stdin, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q does not contain %q", code, c.code, errs, c.want)
			}
		})
	}
}

func TestReduceCheckAndHelp(t *testing.T) {
	code, out, errs := reduce(t, "", "--check", scriptsDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "account.js  account@") || !strings.Contains(out, "cart.js  cart@r1") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	code, out, _ = reduce(t, "", "--help")
	if code != 0 || !strings.Contains(out, "jetsnap reduce --check DIR") || !strings.Contains(out, "-trace") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}

func TestReduceHelpOnlyOnStdout(t *testing.T) {
	code, out, errs := reduce(t, "", "-h")
	if code != 0 || errs != "" || !strings.HasPrefix(out, "Usage:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = reduce(t, "", "--bogus")
	if code != 2 || out != "" || strings.Contains(errs, "Usage:") || !strings.Contains(errs, "-bogus") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
