// Command jetsnap turns a NATS JetStream event stream into snapshots.
// See README.md and DESIGN.md for the contract.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jetsnap/jetsnap/config"
)

func main() {
	// Reducers must fold the same everywhere: local-time Date methods in
	// goja follow time.Local, so every host folds in UTC.
	time.Local = time.UTC
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const commands = `usage: jetsnap [command] [flags]

commands:
  run       consume events and publish snapshots (the default)
  get       print an actor's latest snapshot (--history: all kept ones)
  state     ask the running jetsnap for an actor's state now
  capture   ask the running jetsnap to capture and publish a snapshot now
  rebuild   re-capture snapshots made by an older reducer
  forget    purge an actor's snapshots
  reduce    fold a JSONL file of events through a reducer, or --check scripts
  demo      publish sample events and show a snapshot
  bench     measure jetsnap against the bare consumer and a native fold

Every command takes --help. Configuration is by environment variable:
`

// run dispatches to a subcommand and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, commands)
		_ = config.Usage(stdout)
		return 0
	}
	switch cmd {
	case "run":
		return runRun(ctx, args, stderr)
	case "get":
		return runGet(ctx, args, stdout, stderr)
	case "state", "capture":
		return runRequest(ctx, cmd, args, stdout, stderr)
	case "rebuild":
		return runRebuild(ctx, args, stdout, stderr)
	case "forget":
		return runForget(ctx, args, stdout, stderr)
	case "reduce":
		return runReduce(ctx, args, stdin, stdout, stderr)
	case "demo":
		return runDemo(ctx, args, stdout, stderr)
	case "bench":
		return runBench(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, commands)
		_ = config.Usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "jetsnap: unknown command %q\n\n%s", cmd, commands)
		return 2
	}
}
