package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
)

// runRebuild is `jetsnap rebuild`: re-capture, with the current reducers,
// the snapshots of actors whose latest snapshot was made by another reducer
// (or that have none).
func runRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typ := fs.String("type", "", "rebuild the actors of this type only")
	actor := fs.String("actor", "", "rebuild this actor only (<type>.<id>)")
	rate := fs.Float64("rate", 0, "at most this many actors per second (0: no limit)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: jetsnap rebuild [--type T | --actor A] [--rate N]

Finds the actors in the EVENTS stream (from its subjects) and captures a
snapshot of each whose latest snapshot was made by another reducer, or that
has none, with the reducers in JETSNAP_SCRIPTS_DIR. Each snapshot is at the
actor's current version; it is published only if that is newer than the
latest, so rebuild is safe beside a running jetsnap. An actor with no event
since its old-reducer snapshot is left for its next event.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() != 0 || (*typ != "" && *actor != "") || *rate < 0 {
		fs.Usage()
		return 2
	}
	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	scripts, err := scripting.Load(cfg.ScriptsDir, log)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap rebuild: %v\n", err)
		return 1
	}
	nc, err := clientConn(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap rebuild: %v\n", err)
		return 1
	}
	defer nc.Close()
	r := snapshotter.NewReader(readerConfig(cfg), nc, scripts)

	actors := []string{*actor}
	if *actor == "" {
		if actors, err = r.Actors(ctx, *typ); err != nil {
			fmt.Fprintf(stderr, "jetsnap rebuild: %v\n", err)
			return 1
		}
	}
	var sum rebuildSummary
	progress := newProgress(stderr, len(actors))
	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer t.Stop()
		tick = t.C
	}
	for i, a := range actors {
		if tick != nil && i > 0 {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		sum.add(rebuildOne(ctx, r, scripts, a), stderr)
		progress.show(i + 1)
	}
	progress.done()
	fmt.Fprintf(stdout, "actors %d: rebuilt %d, already current %d, waiting for their next event %d, no reducer %d, errors %d; events folded %d\n",
		len(actors), sum.rebuilt, sum.current, sum.waiting, sum.noReducer, sum.errors, sum.folded)
	if sum.errors > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

type rebuildResult struct {
	actor string
	state snapshotter.State
	err   error
	skip  bool // already made by the current reducer
}

func rebuildOne(ctx context.Context, r *snapshotter.Reader, scripts *scripting.Registry, actor string) rebuildResult {
	typ, _, err := snapshotter.SplitActor(actor)
	if err != nil {
		return rebuildResult{actor: actor, err: err}
	}
	script, ok := scripts.Lookup(typ)
	if !ok {
		return rebuildResult{actor: actor, err: fmt.Errorf("%w %q", snapshotter.ErrNoReducer, typ)}
	}
	latest, err := r.Latest(ctx, actor)
	if err == nil && latest.Reducer == script.Reducer() {
		return rebuildResult{actor: actor, skip: true}
	}
	if err != nil && !errors.Is(err, snapshotter.ErrNoSnapshot) {
		return rebuildResult{actor: actor, err: err}
	}
	st, err := r.Capture(ctx, actor)
	return rebuildResult{actor: actor, state: st, err: err}
}

type rebuildSummary struct {
	rebuilt, current, waiting, noReducer, errors, folded int
}

func (s *rebuildSummary) add(res rebuildResult, stderr io.Writer) {
	switch {
	case res.skip:
		s.current++
	case errors.Is(res.err, snapshotter.ErrNoNewEvents), errors.Is(res.err, snapshotter.ErrForgotten):
		s.waiting++
	case errors.Is(res.err, snapshotter.ErrNoReducer):
		s.noReducer++
	case res.err != nil:
		s.errors++
		fmt.Fprintf(stderr, "\rjetsnap rebuild: %s: %v\n", res.actor, res.err)
	default:
		s.rebuilt++
		s.folded += res.state.Folded
	}
}

// progress draws a progress bar on stderr when it is a terminal.
type progress struct {
	w     io.Writer
	total int
	on    bool
}

func newProgress(w io.Writer, total int) *progress {
	f, ok := w.(*os.File)
	on := false
	if ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, total: total, on: on}
}

func (p *progress) show(n int) {
	if !p.on || p.total == 0 {
		return
	}
	const width = 40
	filled := n * width / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d actors", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), n, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
