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
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run dispatches to a subcommand and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "reduce":
		return runReduce(ctx, args, stdin, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "jetsnap: unknown command %q; commands: run, get, state, reduce, demo, bench\n", cmd)
		return 2
	}
}
