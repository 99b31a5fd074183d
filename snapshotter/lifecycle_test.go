package snapshotter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func (e *env) reader() *snapshotter.Reader {
	e.t.Helper()
	return snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, mustLoad(e.t, e.scripts))
}

// TestService: the state and capture endpoints for a known actor, an
// unknown actor, an unknown type and an actor whose reducer throws.
func TestService(t *testing.T) {
	e := newEnv(t)
	e.script("bomb", "testdata/throws.js")
	svc, err := snapshotter.StartService(snapshotter.ServiceConfig{}, e.nc, e.reader(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	subjects, types := workload(1, 25, []string{"Deposited"}, 1)
	subjects = append(subjects, "events.bomb.1", "events.bomb.1", "events.ghost.1")
	types = append(types, "Fine", "Boom", "Whatever")
	e.publish(subjects, types)

	request := func(subject string) *nats.Msg {
		t.Helper()
		m, err := e.nc.Request(subject, nil, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		return m
	}
	m := request("jetsnap.state.account.0")
	var st probeState
	if err := json.Unmarshal(m.Data, &st); err != nil || st.N != 25 || m.Header.Get(snapshotter.HeaderVersion) != "25" || m.Header.Get(snapshotter.HeaderReducer) == "" {
		t.Fatalf("state: %v %+v headers %v", err, st, m.Header)
	}
	if snaps := e.allSnapshots(); len(snaps) != 0 {
		t.Fatalf("state published a snapshot: %v", snaps)
	}
	m = request("jetsnap.capture.account.0")
	if m.Header.Get(snapshotter.HeaderVersion) != "25" || m.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("capture: %v", m.Header)
	}
	if snaps := e.allSnapshots()["account.0"]; len(snaps) != 1 || snaps[0].Version != 25 {
		t.Fatalf("capture stored %v", snaps)
	}
	// Capturing again with no new event returns the same snapshot.
	request("jetsnap.capture.account.0")
	if snaps := e.allSnapshots()["account.0"]; len(snaps) != 1 {
		t.Fatalf("a second capture stored another snapshot: %v", snaps)
	}

	for _, c := range []struct{ subject, code, says string }{
		{"jetsnap.state.account.404", snapshotter.CodeUnknownActor, "no events"},
		{"jetsnap.capture.account.404", snapshotter.CodeUnknownActor, "no events"},
		{"jetsnap.state.ghost.1", snapshotter.CodeNoReducer, "ghost.js"},
		{"jetsnap.state.bomb.1", snapshotter.CodeReducer, "cannot handle Boom"},
		{"jetsnap.capture.bomb.1", snapshotter.CodeReducer, "cannot handle Boom"},
	} {
		m := request(c.subject)
		if m.Header.Get(micro.ErrorCodeHeader) != c.code || !strings.Contains(m.Header.Get(micro.ErrorHeader), c.says) {
			t.Errorf("%s: code %q error %q, want %s saying %q", c.subject, m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader), c.code, c.says)
		}
	}
}

// TestReducerChange: after a hot reload to a new reducer identity, the next
// snapshots are rebuilt from version 0 by the new reducer; an old snapshot is
// never a base.
func TestReducerChange(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	j := e.run(o)
	subjects, types := workload(20, 30, []string{"Deposited", "Withdrawn"}, 2)
	e.publish(subjects, types)
	waitFor(t, time.Minute, "first snapshots", e.settled(o.strategy, e.allEvents()))

	e.script("account", "testdata/probe2.js") // revision 2: identity r2
	waitFor(t, 10*time.Second, "jetsnap to reload the reducer", func() bool {
		s, ok := j.scripts.Lookup("account")
		return ok && s.Identity == "r2"
	})
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
	e.checkWith(o.strategy, true, 2)
	r2 := 0
	for actor, snaps := range e.allSnapshots() {
		last := snaps[len(snaps)-1]
		if last.Reducer != "account@r2" {
			t.Errorf("%s: latest snapshot by %s, want account@r2", actor, last.Reducer)
		}
		for _, s := range snaps {
			if s.Reducer == "account@r2" {
				r2++
			}
		}
	}
	if r2 == 0 || j.snap.Stats().Invalidated.Load() == 0 {
		t.Fatalf("r2 snapshots %d, invalidated bases %d", r2, j.snap.Stats().Invalidated.Load())
	}

	// Break the script: it does not compile, so r2 stays in use.
	if err := os.WriteFile(filepath.Join(e.scripts, "account.js"), []byte("function reduce(s, e) { return s; "), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the broken script to be rejected", func() bool {
		_, err := scripting.Load(e.scripts, testLogger(t))
		return err != nil
	})
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots with the broken script in place", e.settled(o.strategy, e.allEvents()))
	// Fix it as revision 3: the next snapshots switch to r3, rebuilt from 0.
	e.script("account", "testdata/probe3.js")
	waitFor(t, 10*time.Second, "jetsnap to load r3", func() bool {
		s, ok := j.scripts.Lookup("account")
		return ok && s.Identity == "r3"
	})
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
	e.checkWith(o.strategy, true, 3)
	for actor, snaps := range e.allSnapshots() {
		if last := snaps[len(snaps)-1]; last.Reducer != "account@r3" {
			t.Errorf("%s: latest snapshot by %s, want account@r3", actor, last.Reducer)
		}
	}
}

// TestRebuildBesideRun: rebuilding with a new reducer while jetsnap runs on
// a live stream never stores a wrong snapshot, a lower version or a
// duplicate.
func TestRebuildBesideRun(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	e.run(o)
	subjects, types := workload(30, 40, []string{"Deposited", "Withdrawn"}, 4)
	// 615 events: actors 0-14 at version 21, one event past their snapshot
	// at 20, so that the first round rebuilds them whatever the timing (at
	// 600, every actor would sit on a placement, and the captures would
	// rebuild only if the events published beside them came first).
	e.publish(subjects[:615], types[:615])
	e.script("account", "testdata/probe2.js")
	r := e.reader()

	var wg sync.WaitGroup
	wg.Go(func() { e.publish(subjects[615:], types[615:]) })
	rebuilt := 0
	for round := 0; round < 3; round++ {
		actors, err := r.Actors(context.Background(), "account")
		if err != nil || len(actors) != 30 {
			t.Fatalf("Actors = %d, %v", len(actors), err)
		}
		for _, a := range actors {
			_, err := r.Capture(context.Background(), a)
			switch {
			case err == nil:
				rebuilt++
			case errors.Is(err, snapshotter.ErrNoNewEvents):
			default:
				t.Fatalf("capture %s: %v", a, err)
			}
		}
	}
	wg.Wait()
	if rebuilt == 0 {
		t.Fatal("nothing rebuilt")
	}
	waitFor(t, time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
	e.checkWith(o.strategy, false, 2)
}

// TestForget: snapshots are purged and events kept; no snapshot until new
// events, and then one whose version counts the actor's whole history.
func TestForget(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	j := e.run(o)
	subjects, types := workload(2, 25, []string{"Deposited"}, 3)
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots", e.settled(o.strategy, e.allEvents()))
	r := e.reader()
	n, err := r.Forget(context.Background(), "account.0")
	if err != nil || n != 2 {
		t.Fatalf("Forget = %d, %v; want 2 snapshots purged", n, err)
	}
	if _, err := r.Latest(context.Background(), "account.0"); !errors.Is(err, snapshotter.ErrNoSnapshot) {
		t.Fatalf("after forget: %v", err)
	}
	if evs := e.allEvents()["account.0"]; len(evs) != 25 {
		t.Fatalf("events of account.0: %d, want 25 untouched", len(evs))
	}
	if _, err := r.Capture(context.Background(), "account.0"); !errors.Is(err, snapshotter.ErrForgotten) {
		t.Fatalf("capture right after forget: %v, want ErrForgotten", err)
	}

	// Five more events: version 30 is due (EVERY=10) and counts all 30.
	more, moreTypes := make([]string, 5), make([]string, 5)
	for i := range more {
		more[i], moreTypes[i] = "events.account.0", "Deposited"
	}
	e.publish(more, moreTypes)
	waitFor(t, time.Minute, "a new snapshot of account.0", func() bool {
		s, err := r.Latest(context.Background(), "account.0")
		return err == nil && s.Version == 30
	})
	e.checkWith(o.strategy, false, 0)
	if got := fmt.Sprint(j.snap.Stats().ReducerErrors.Load()); got != "0" {
		t.Fatalf("reducer errors: %s", got)
	}
	// The capture at version 30 started from the version 20 it had kept
	// (bases.go), purged since: its publish was refused, and it read again.
	if got := j.snap.Stats().Conflicts.Load(); got != 1 {
		t.Errorf("%d publishes refused, want 1 (on the kept, forgotten version 20)", got)
	}
}

// TestStreamRecreated: EVENTS is deleted and recreated with other events.
// jetsnap binds its consumer again, finds that the old snapshots do not
// match the new stream, purges them and rebuilds every actor from what the
// stream holds.
func TestStreamRecreated(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	j := e.run(o)
	subjects, types := workload(20, 40, []string{"Deposited", "Withdrawn"}, 21)
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots", e.settled(o.strategy, e.allEvents()))

	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	if err := consumer.EnsureEventStream(ctx, e.js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	subjects, types = workload(20, 25, []string{"Renamed", "Closed"}, 22)
	e.publish(subjects, types)
	waitFor(t, time.Minute, "the consumer to be bound again", func() bool { return j.snap.Stats().Resets.Load() > 0 })
	e.idle(o.strategy, time.Minute)
	e.check(o.strategy)
	s := j.snap.Stats()
	if s.Resets.Load() == 0 || s.Mismatches.Load() == 0 {
		t.Fatalf("resets %d, mismatches %d: the recreated stream went unnoticed", s.Resets.Load(), s.Mismatches.Load())
	}
}

// TestStreamPurged: events that aged out of EVENTS (a purge) leave the
// snapshots valid bases: new snapshots build on them and their versions go
// on counting the whole history.
func TestStreamPurged(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	j := e.run(o)
	subjects, types := workload(5, 30, []string{"Deposited"}, 23)
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots", e.settled(o.strategy, e.allEvents()))
	before := e.allEvents()
	ctx := context.Background()
	e.purgeEvents()
	j.stop() // and restart, so tallies are rebuilt from the snapshots
	j = e.run(o)
	e.publish(subjects[:50], types[:50]) // 10 more per actor
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	after := e.allEvents()
	for actor, evs := range before {
		all := append(append([]storedEvent(nil), evs...), after[actor]...)
		waitFor(t, 30*time.Second, actor+" at version 40", func() bool {
			s, err := r.Latest(ctx, actor)
			return err == nil && s.Version == 40
		})
		s, _ := r.Latest(ctx, actor)
		var got probeState
		if err := json.Unmarshal(s.State, &got); err != nil {
			t.Fatal(err)
		}
		if ref := referenceFold(actor, all); fmt.Sprint(got) != fmt.Sprint(ref) {
			t.Errorf("%s: %+v, want the fold of all 40 events %+v", actor, got, ref)
		}
	}
	if n := j.snap.Stats().Mismatches.Load(); n != 0 {
		t.Errorf("%d mismatches reported for aged-out events", n)
	}
}

// TestReducerChangeAfterPurge: a new reducer must fold from version 0, but
// the stream's first events aged out. The capture fails for that actor,
// counted and logged; it is not taken for a recreated stream (no reset of
// every tally), and the old snapshot stays.
func TestReducerChangeAfterPurge(t *testing.T) {
	e := newEnv(t)
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	j := e.run(o)
	subjects, types := workload(1, 30, []string{"Deposited"}, 24)
	e.publish(subjects, types)
	waitFor(t, time.Minute, "snapshots", e.settled(o.strategy, e.allEvents()))
	ctx := context.Background()
	e.purgeEvents()
	e.script("account", "testdata/probe2.js")
	waitFor(t, 10*time.Second, "jetsnap to load r2", func() bool {
		s, ok := j.scripts.Lookup("account")
		return ok && s.Identity == "r2"
	})
	e.publish(subjects[:10], types[:10]) // version 40 is due
	waitFor(t, 30*time.Second, "the failed rebuild", func() bool { return j.snap.Stats().CaptureErrors.Load() > 0 })
	s := j.snap.Stats()
	if s.Resets.Load() != 0 || s.Mismatches.Load() != 0 {
		t.Errorf("resets %d, mismatches %d: aged-out history was taken for a recreated stream", s.Resets.Load(), s.Mismatches.Load())
	}
	snap, err := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil).Latest(ctx, "account.0")
	if err != nil || snap.Version != 30 || strings.HasSuffix(snap.Reducer, "@r2") {
		t.Errorf("latest snapshot: v%d by %s (%v); want the old v30", snap.Version, snap.Reducer, err)
	}
}

// purgeEvents purges the EVENTS stream, as events aging out would.
func (e *env) purgeEvents() {
	e.t.Helper()
	stream, err := e.js.Stream(context.Background(), "EVENTS")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := stream.Purge(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}
