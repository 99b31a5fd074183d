package snapshotter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
)

// TestLongLivedActor: one actor with 10,000 events gets snapshots exactly
// at the versions each strategy gives, and Load folds at most EVERY events.
func TestLongLivedActor(t *testing.T) {
	strategies := []snapshotter.Strategy{
		{Kind: snapshotter.KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500},
		{Kind: snapshotter.KindInterval, Every: 300},
		{Kind: snapshotter.KindVersion, Every: 250},
		{Kind: snapshotter.KindHybrid, Every: 1000, MinEvents: 20, MaxEvents: 300, OnTypes: []string{"Closed"}},
	}
	for _, st := range strategies {
		t.Run(fmt.Sprintf("%s/%d", st.Kind, st.Every), func(t *testing.T) {
			e := newEnv(t)
			o := defaults()
			o.strategy = st
			e.run(o)
			n := scaled(10000, 3)
			subjects, types := workload(1, n, []string{"Deposited", "Withdrawn", "Deposited", "Closed"}, 7)
			e.publish(subjects, types)
			events := e.allEvents()
			waitFor(t, time.Minute, "snapshots to catch up", e.settled(st, events))
			if n := e.check(st); n == 0 {
				t.Fatal("no snapshot checked")
			}

			r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, mustLoad(t, e.scripts))
			state, err := r.Load(context.Background(), "account.0")
			if err != nil {
				t.Fatal(err)
			}
			limit := st.Every
			if st.Kind == snapshotter.KindHybrid {
				limit = min(st.Every+st.MinEvents, st.MaxEvents)
			}
			if uint64(state.Folded) > limit {
				t.Errorf("Load folded %d events on top of the snapshot, want at most %d", state.Folded, limit)
			}
			var got probeState
			if err := json.Unmarshal(state.State, &got); err != nil {
				t.Fatal(err)
			}
			evs := events["account.0"]
			if ref := referenceFold("account.0", evs); fmt.Sprint(got) != fmt.Sprint(ref) || state.Version != uint64(n) {
				t.Errorf("Load = v%d %+v, reference = v%d %+v", state.Version, got, len(evs), ref)
			}
		})
	}
}

// scaled returns n, or n/div under the race detector (see raceDetector).
func scaled(n, div int) int {
	if raceDetector {
		return n / div
	}
	return n
}

func mustLoad(t *testing.T, dir string) *scripting.Registry {
	t.Helper()
	r, err := scripting.Load(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestManyActors: 1,000 actors (200 under -race) × 50 interleaved events of
// random types; every snapshot is the reference fold of exactly its events.
func TestManyActors(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25, OnTypes: []string{"Closed"}}
	o.workers = 4
	j := e.run(o)
	actors := scaled(1000, 5)
	subjects, types := workload(actors, 50, []string{"Deposited", "Withdrawn", "Renamed", "Closed"}, 1)
	e.publish(subjects, types)
	waitFor(t, 2*time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
	if n := e.check(o.strategy); n < actors {
		t.Fatalf("only %d snapshots checked", n)
	}
	if n := j.snap.Stats().StreamReads.Load(); n != 0 {
		t.Errorf("captures read %d events back from the stream; keeping up, they should all come from memory", n)
	}
}

// TestTailFromStreamOrMemory: the same events give byte-identical snapshots
// whether captures fold buffered events or read them back from the stream.
func TestTailFromStreamOrMemory(t *testing.T) {
	e := newEnv(t)
	e.script("account", "testdata/echo.js")
	subjects, types := workload(50, 60, []string{"Deposited", "Withdrawn"}, 9)
	e.publish(subjects, types)
	ctx := context.Background()
	bodies := make([]map[string][]string, 2)
	for i, buffer := range []int64{0, 1} { // default budget; one byte: every tail is dropped
		// Start over on the same events.
		if err := e.js.DeleteConsumer(ctx, "EVENTS", "jetsnap"); err != nil && i > 0 {
			t.Fatal(err)
		}
		// A new stream, not a purge: a purge keeps the Nats-Msg-Id window,
		// which would take the second run's snapshots for duplicates.
		if err := e.js.DeleteStream(ctx, "SNAPSHOTS"); err != nil {
			t.Fatal(err)
		}
		if err := snapshotter.EnsureSnapshotStream(ctx, e.js, snapshotter.StreamConfig{Keep: 1000}); err != nil {
			t.Fatal(err)
		}
		o := defaults()
		o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
		o.buffer = buffer
		j := e.run(o)
		waitFor(t, time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
		j.stop()
		reads := j.snap.Stats().StreamReads.Load()
		if (buffer == 1) != (reads > 0) {
			t.Fatalf("buffer %d bytes: %d events read from the stream", buffer, reads)
		}
		bodies[i] = map[string][]string{}
		for actor, snaps := range e.allSnapshots() {
			for _, s := range snaps {
				bodies[i][actor] = append(bodies[i][actor], fmt.Sprintf("v%d@%d %s", s.Version, s.LastSeq, s.State))
			}
		}
	}
	if len(bodies[0]) != 50 || fmt.Sprint(bodies[0]) != fmt.Sprint(bodies[1]) {
		t.Fatalf("snapshots differ:\nmemory: %v\nstream: %v", bodies[0], bodies[1])
	}
}

// TestRestart: stop jetsnap halfway (gracefully, then abruptly), start it
// again, publish the rest: placement is exactly as without a restart.
func TestRestart(t *testing.T) {
	for _, abrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("abrupt=%v", abrupt), func(t *testing.T) {
			e := newEnv(t)
			o := defaults()
			o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 20, MinEvents: 5, MaxEvents: 50}
			o.ackWait = 2 * time.Second // redeliveries of unacknowledged triggers come quickly
			subjects, types := workload(scaled(200, 4), 100, []string{"Deposited", "Withdrawn"}, 3)
			half := len(subjects) / 2

			j := e.run(o)
			e.publish(subjects[:half/2], types[:half/2])
			published := make(chan error, 1)
			go func() { published <- e.tryPublish(subjects[half/2:half], types[half/2:half]) }()
			waitFor(t, time.Minute, "some snapshots", func() bool { return j.snap.Stats().Published.Load() > 20 })
			if abrupt {
				j.kill()
			} else {
				j.stop()
			}

			if err := <-published; err != nil {
				t.Fatal(err)
			}
			j2 := e.run(o)
			e.publish(subjects[half:], types[half:])
			waitFor(t, 2*time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
			e.check(o.strategy)
			if j2.snap.Stats().Resyncs.Load() == 0 {
				t.Error("the second run never counted a tally against the streams")
			}
		})
	}
}

// TestLag: 100,000 events (20,000 under -race) published before jetsnap
// starts get the same placement as when it keeps up.
func TestLag(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 events")
	}
	e := newEnv(t)
	o := defaults()
	o.workers = 4
	actors := scaled(500, 5)
	subjects, types := workload(actors, 200, []string{"Deposited", "Withdrawn"}, 5)
	e.publish(subjects, types)
	j := e.run(o)
	waitFor(t, 3*time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
	if n := e.check(o.strategy); n != 2*actors {
		t.Fatalf("%d snapshots checked, want %d (2 per actor)", n, 2*actors)
	}
	if n := j.snap.Stats().StreamReads.Load(); n != 0 {
		t.Errorf("captures read %d events back from the stream; they should all come from memory", n)
	}
}

// TestNoReducer: an actor type with no script is counted and acknowledged,
// never snapshotted, and does not hold up the others.
func TestNoReducer(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	j := e.run(o)
	var subjects, types []string
	for i := 0; i < 30; i++ {
		subjects = append(subjects, "events.ghost.1", "events.account.1")
		types = append(types, "Haunted", "Deposited")
	}
	e.publish(subjects, types)
	events := e.allEvents()
	delete(events, "ghost.1")
	waitFor(t, 30*time.Second, "account snapshots", e.settled(o.strategy, events))
	cons, err := e.js.Consumer(context.Background(), "EVENTS", "jetsnap")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every event acknowledged", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if n := j.snap.Stats().NoScript.Load(); n != 3 {
		t.Errorf("NoScript = %d, want 3 (ghost.1 due at 10, 20, 30)", n)
	}
	if snaps := e.allSnapshots(); len(snaps["ghost.1"]) != 0 || len(snaps["account.1"]) != 3 {
		t.Errorf("snapshots: ghost.1 %d, account.1 %d; want 0 and 3", len(snaps["ghost.1"]), len(snaps["account.1"]))
	}
}

// TestMaxAge: an actor whose oldest unsnapshotted event is MaxAge old gets
// a snapshot from the sweep, without further events.
func TestMaxAge(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 1000, MinEvents: 3, MaxEvents: 500, MaxAge: 300 * time.Millisecond}
	e.run(o)
	e.publish([]string{"events.account.1", "events.account.1", "events.account.1", "events.account.1", "events.account.2"}, []string{"a", "b", "c", "d", "e"})
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	waitFor(t, 10*time.Second, "the MAX_AGE snapshot of account.1", func() bool {
		snap, err := r.Latest(context.Background(), "account.1")
		return err == nil && snap.Version == 4
	})
	// account.2 has one event, under MIN_EVENTS: no snapshot however old.
	if _, err := r.Latest(context.Background(), "account.2"); !errors.Is(err, snapshotter.ErrNoSnapshot) {
		t.Errorf("account.2: %v, want no snapshot", err)
	}
}
