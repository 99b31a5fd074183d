package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jetsnap/jetsnap/config"
	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
)

// runGet is `jetsnap get <actor>`: print the actor's latest snapshot.
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := fs.Bool("raw", false, "print only the snapshot's state, as stored")
	history := fs.Bool("history", false, "print every kept snapshot (JETSNAP_KEEP), newest first")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: jetsnap get [--history] [--raw] <type>.<id>\n\nPrints the latest snapshot of an actor, e.g. jetsnap get account.42.\nConnects with NATS_URL (default: the embedded server at JETSNAP_EMBEDDED_LISTEN).")
		fs.PrintDefaults()
	}
	c, code := openActorCommand(fs, args, stderr)
	if c == nil {
		return code
	}
	defer c.nc.Close()
	cfg, nc := c.cfg, c.nc
	r := snapshotter.NewReader(readerConfig(cfg), nc, nil)
	if *history {
		snaps, err := r.History(ctx, fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "jetsnap get: %v\n", err)
			return 1
		}
		if len(snaps) == 0 {
			fmt.Fprintf(stderr, "jetsnap get: %s has no snapshot in stream %s\n", fs.Arg(0), cfg.SnapshotStream)
			return 1
		}
		for i, snap := range snaps {
			if i > 0 {
				fmt.Fprintln(stdout, "---")
			}
			if *raw {
				fmt.Fprintf(stdout, "%s\n", snap.State)
			} else {
				printSnapshot(stdout, snap)
			}
		}
		return 0
	}
	snap, err := r.Latest(ctx, fs.Arg(0))
	if errors.Is(err, snapshotter.ErrNoSnapshot) {
		fmt.Fprintf(stderr, "jetsnap get: %s has no snapshot yet in stream %s\n", fs.Arg(0), cfg.SnapshotStream)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap get: %v\n", err)
		return 1
	}
	if *raw {
		_, _ = stdout.Write(snap.State)
		fmt.Fprintln(stdout)
		return 0
	}
	printSnapshot(stdout, snap)
	return 0
}

func printSnapshot(w io.Writer, s snapshotter.Snapshot) {
	fmt.Fprintf(w, "%s: %s\n", snapshotter.HeaderActor, s.Actor)
	fmt.Fprintf(w, "%s: %d\n", snapshotter.HeaderVersion, s.Version)
	fmt.Fprintf(w, "%s: %d\n", snapshotter.HeaderLastSeq, s.LastSeq)
	fmt.Fprintf(w, "%s: %s\n", snapshotter.HeaderReducer, s.Reducer)
	fmt.Fprintf(w, "%s: %s\n", snapshotter.HeaderEventTime, s.EventTime.Format(time.RFC3339Nano))
	if s.Seq > 0 {
		fmt.Fprintf(w, "Snapshot-Seq: %d (stored %s, %s ago)\n", s.Seq, s.Stored.Format(time.RFC3339), time.Since(s.Stored).Round(time.Millisecond))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, s.State, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(s.State)
	}
	fmt.Fprintf(w, "\n%s\n", pretty.Bytes())
}

// actorCommand is a parsed subcommand that takes one actor, connected.
type actorCommand struct {
	cfg *config.Config
	nc  *nats.Conn
}

// openActorCommand parses args for a subcommand that takes one <type>.<id>,
// reads the configuration and connects. On failure it has printed why and
// returns nil with the exit code.
func openActorCommand(fs *flag.FlagSet, args []string, stderr io.Writer) (*actorCommand, int) {
	if err := fs.Parse(args); err != nil {
		return nil, exitUsage(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, 2
	}
	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return nil, code
	}
	nc, err := clientConn(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap %s: %v\n", fs.Name(), err)
		return nil, 1
	}
	return &actorCommand{cfg: cfg, nc: nc}, 0
}

// clientConn connects a CLI command: to NATS_URL, or to the embedded server
// a `jetsnap run` on this machine listens on.
func clientConn(cfg *config.Config, log *slog.Logger) (*nats.Conn, error) {
	cc := connConfig(cfg)
	if cc.URL == "" {
		cc.URL = "nats://" + cfg.EmbeddedListen
	}
	cc.Name = "jetsnap-cli"
	return consumer.Connect(cc, log)
}
