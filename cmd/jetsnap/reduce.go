package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jetsnap/jetsnap/scripting"
)

const reduceUsage = `Usage:
  jetsnap reduce --script FILE [--actor KEY] [--trace] [--state FILE] [EVENTS.jsonl]
  jetsnap reduce --check DIR|FILE...

Folds events with a reducer, as jetsnap does, and prints the state as JSON.
Events are read from EVENTS.jsonl, or from standard input: one JSON object
per line, shaped like the event reducers see:

  {"type": "Deposited", "data": {"amount": 5}}
  {"type": "Withdrawn", "data": {"amount": 2}, "version": 2, "seq": 9,
   "time": "2024-01-01T10:00:00Z", "subject": "events.account.42",
   "actor": "account.42", "headers": {"Trace-Id": "abc"}}

"type" and "data" are required ("data": any JSON value; a string stands for
a payload that is not JSON). Defaults: version and seq the line's position
among the events, time 1970-01-01T00:00:00Z, actor --actor, subject
"events.<actor>". Blank lines are skipped.

--check compiles every *.js file of each DIR (or each FILE) and exits with
status 1 at the first problem, printed as file:line:col: message.

Exit status: 0 ok, 1 a reducer or input error, 2 a usage error.

Flags:
`

// runReduce implements `jetsnap reduce`: the authoring loop for reducers.
func runReduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reduce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		script   = fs.String("script", "", "reducer `file` to fold with, e.g. scripts/account.js")
		actor    = fs.String("actor", "", "actor `key` <type>.<id> (default <type>.1, the type from the file name)")
		trace    = fs.Bool("trace", false, "print the state after each event, as JSON lines {version, seq, type, state}")
		base     = fs.String("state", "", "`file` with a base state (JSON) to fold onto instead of init(actor)")
		check    = fs.Bool("check", false, "compile the scripts of the given dirs or files and report the first problem")
		timeout  = fs.Duration("timeout", scripting.DefaultTimeout, "limit per fold (JETSNAP_SCRIPT_TIMEOUT); with --trace, per event")
		maxState = fs.Int("max-state-bytes", scripting.DefaultMaxStateBytes, "limit on the state's JSON (JETSNAP_MAX_STATE_BYTES)")
		quiet    = fs.Bool("quiet", false, "drop console.log output of the reducer (default: to standard error)")
	)
	fs.Usage = func() {} // parse errors get one line, --help the full text

	// Accept flags after positional arguments too.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fmt.Fprint(stdout, reduceUsage)
				fs.PrintDefaults()
				return 0
			}
			fmt.Fprintln(stderr, "see jetsnap reduce --help")
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "jetsnap reduce: %s (see jetsnap reduce --help)\n", msg)
		return 2
	}

	if *check {
		if *script != "" || *trace || *base != "" || *actor != "" {
			return usage("--check takes only dirs or files")
		}
		if len(pos) == 0 {
			return usage("--check needs a dir or file, e.g. --check scripts/")
		}
		return reduceCheck(pos, stdout, stderr)
	}
	if *script == "" {
		return usage("--script is required")
	}
	if len(pos) > 1 {
		return usage("at most one events file")
	}
	if *timeout <= 0 || *maxState <= 0 {
		return usage("--timeout and --max-state-bytes must be positive")
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "jetsnap reduce: %v\n", err)
		return 1
	}

	src, err := os.ReadFile(*script)
	if err != nil {
		return fail(err)
	}
	s, err := scripting.Compile(*script, src)
	if err != nil {
		return fail(err)
	}
	if *actor == "" {
		*actor = s.Type + ".1"
	}
	var state []byte
	if *base != "" {
		if state, err = os.ReadFile(*base); err != nil {
			return fail(err)
		}
		if !json.Valid(state) {
			return fail(fmt.Errorf("%s: not valid JSON", *base))
		}
	}
	in, name := stdin, "stdin"
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		in, name = f, pos[0]
	}
	events, err := scripting.ReadJSONL(in, *actor)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", name, err))
	}

	rt := scripting.NewRuntime(scripting.Limits{Timeout: *timeout, MaxStateBytes: *maxState})
	if !*quiet {
		rt.SetConsole(func(level, msg string) { fmt.Fprintf(stderr, "console.%s: %s\n", level, msg) })
	}
	if !*trace {
		out, err := rt.Fold(ctx, s, *actor, state, events)
		if err != nil {
			return fail(err)
		}
		return printPretty(stdout, out, stderr)
	}
	// Trace: one fold per event, as captures fold a snapshot plus its tail.
	if len(events) == 0 {
		out, err := rt.Fold(ctx, s, *actor, state, nil)
		if err != nil {
			return fail(err)
		}
		return printPretty(stdout, out, stderr)
	}
	for _, ev := range events {
		out, err := rt.Fold(ctx, s, *actor, state, []scripting.Event{ev})
		if err != nil {
			return fail(err)
		}
		state = out
		line, _ := json.Marshal(struct {
			Version uint64          `json:"version"`
			Seq     uint64          `json:"seq"`
			Type    string          `json:"type"`
			State   json.RawMessage `json:"state"`
		}{ev.Version, ev.Seq, ev.Type, out})
		if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
			return fail(err)
		}
	}
	return 0
}

func printPretty(w io.Writer, state []byte, stderr io.Writer) int {
	var b bytes.Buffer
	if err := json.Indent(&b, state, "", "  "); err != nil {
		fmt.Fprintf(stderr, "jetsnap reduce: %v\n", err)
		return 1
	}
	b.WriteByte('\n')
	if _, err := w.Write(b.Bytes()); err != nil {
		fmt.Fprintf(stderr, "jetsnap reduce: %v\n", err)
		return 1
	}
	return 0
}

// reduceCheck compiles every script of the given dirs and files.
func reduceCheck(paths []string, stdout, stderr io.Writer) int {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(stderr, "jetsnap reduce: %v\n", err)
			return 1
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		fs, err := scripting.ListScripts(p)
		if err != nil {
			fmt.Fprintf(stderr, "jetsnap reduce: %v\n", err)
			return 1
		}
		if len(fs) == 0 {
			fmt.Fprintf(stderr, "jetsnap reduce: no *.js scripts in %s\n", p)
			return 1
		}
		files = append(files, fs...)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err == nil {
			var s *scripting.Script
			if s, err = scripting.Compile(f, src); err == nil {
				fmt.Fprintf(stdout, "ok  %s  %s\n", f, s.Reducer())
				continue
			}
		}
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	return 0
}
