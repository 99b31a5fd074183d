package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// runForget is `jetsnap forget <actor>`: purge the actor's snapshots.
func runForget(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("forget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: jetsnap forget <type>.<id>\n\nPurges every snapshot of the actor from the snapshot stream, e.g. for a\ndata-protection request. Its events stay in the producers' stream: delete\nthem there if required. No snapshot of the actor is made again until it has\nnew events; that snapshot is built from all its events in the stream.")
		fs.PrintDefaults()
	}
	c, code := openActorCommand(fs, args, stderr)
	if c == nil {
		return code
	}
	defer c.nc.Close()
	cfg, nc := c.cfg, c.nc
	actor := fs.Arg(0)
	n, err := snapshotter.NewReader(readerConfig(cfg), nc, nil).Forget(ctx, actor)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap forget: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Purged %d snapshot(s) of %s from stream %s.\n", n, actor, cfg.SnapshotStream)
	fmt.Fprintf(stdout, "Its events are in stream %s, which belongs to the producers: jetsnap does not delete them.\n", cfg.Stream)
	return 0
}
