package snapshotter

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
)

// TestFoldsAtOnce: by default as many folds run at once as Go has CPUs,
// never more than there are workers.
func TestFoldsAtOnce(t *testing.T) {
	for _, c := range []struct{ workers, folds, want int }{
		{0, 0, min(16, runtime.GOMAXPROCS(0))},
		{1, 0, 1},
		{8, 3, 3},
		{2, 5, 2},
	} {
		if cfg := (Config{Workers: c.workers, Folds: c.folds}).WithDefaults(); cfg.Folds != c.want {
			t.Errorf("Workers %d, Folds %d: %d folds at once, want %d", c.workers, c.folds, cfg.Folds, c.want)
		}
	}
}

// TestFoldWaitsForASlot: a capture folds only once one of the Config.Folds
// slots is free, and gives it back. Its context may end while it waits:
// that is a passing error, and the capture is tried again, never a reducer
// failure (which would be acknowledged without a snapshot).
func TestFoldWaitsForASlot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "account.js"), []byte(`function reduce(s, e) { s.n = (s.n || 0) + 1; return s; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	scripts, err := scripting.Load(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Pattern: MustPattern("events.{type}.{id}"), Strategy: Strategy{Kind: KindInterval, Every: 2}, Workers: 4, Folds: 1},
		nil, nil, scripts, log)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := scripts.Lookup("account")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	j := job{key: "account.1", typ: "account", id: "1", version: 2, seq: 7, tail: &buffer{events: []buffered{
		{subject: "events.account.1", data: []byte(`{}`), seq: 3, time: at},
		{subject: "events.account.1", data: []byte(`{}`), seq: 7, time: at},
	}}}
	rt := scripting.NewRuntime(scripting.Limits{})

	s.folding <- struct{}{} // another fold holds the only slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = s.fold(ctx, rt, script, j, Snapshot{}, false)
	cancel()
	var rerr *ReducerError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &rerr) || !transient(err) {
		t.Fatalf("waiting for a slot past the deadline: %v, want a passing context error", err)
	}
	<-s.folding

	snap, err := s.fold(context.Background(), rt, script, j, Snapshot{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(snap.State) != `{"n":2}` || snap.Version != 2 || snap.LastSeq != 7 {
		t.Fatalf("snapshot %s at version %d, seq %d; want {\"n\":2} at 2, 7", snap.State, snap.Version, snap.LastSeq)
	}
	if len(s.folding) != 0 {
		t.Fatal("the fold kept its slot")
	}
}
