package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// runRequest is `jetsnap state <actor>` and `jetsnap capture <actor>`: call
// the service of the running jetsnap and print its reply.
func runRequest(ctx context.Context, op string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(op, flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := fs.Bool("raw", false, "print only the state")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the reply")
	fs.Usage = func() {
		what := "the actor's state now (latest snapshot + events after it, folded; nothing is published)"
		if op == "capture" {
			what = "a snapshot of the actor captured and published now"
		}
		fmt.Fprintf(stderr, "usage: jetsnap %s [--raw] <type>.<id>\n\nAsks the running jetsnap's service (jetsnap.%s.<type>.<id>) for %s.\n", op, op, what)
		fs.PrintDefaults()
	}
	c, code := openActorCommand(fs, args, stderr)
	if c == nil {
		return code
	}
	defer c.nc.Close()
	nc := c.nc
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	subject := "jetsnap." + op + "." + fs.Arg(0)
	reply, err := nc.RequestWithContext(ctx, subject, nil)
	if errors.Is(err, nats.ErrNoResponders) {
		fmt.Fprintf(stderr, "jetsnap %s: no jetsnap service answers on %s: is `jetsnap run` running on this server?\n", op, subject)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap %s: %v\n", op, err)
		return 1
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		fmt.Fprintf(stderr, "jetsnap %s: error %s: %s\n", op, code, reply.Header.Get(micro.ErrorHeader))
		return 1
	}
	if *raw {
		fmt.Fprintf(stdout, "%s\n", reply.Data)
		return 0
	}
	snap, err := snapshotter.ParseHeaders(reply.Header, reply.Data)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap %s: %v\n", op, err)
		return 1
	}
	printSnapshot(stdout, snap)
	return 0
}
