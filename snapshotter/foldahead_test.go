package snapshotter_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// TestFoldAhead: while the consumer keeps up, an actor's events are folded
// every 32 (foldahead.go's aheadEvents) onto its last snapshot, not
// published, and its next capture folds only the rest, from memory. The
// snapshot is the same as a fold of every event since the last snapshot:
// probe.js checks that versions count events and sequences increase, and
// the state must hold exactly the actor's events. No fold is made ahead of
// an actor's first snapshot (there is none to start from), nor while 1,000
// events or more wait to be delivered (aheadBacklog). When another
// snapshot was published in between (a capture on request), or the
// actor's snapshots purged (a forget), the publish is refused, and the
// capture reads what the stream holds.
func TestFoldAhead(t *testing.T) {
	for _, c := range []struct {
		name       string
		backlog    int    // events published after the actor's 240, undelivered
		capture    uint64 // version captured on request before the capture at 240, if not 0
		forget     uint64 // version after which the actor is forgotten, if not 0
		ahead      uint64 // folds made ahead by then
		conflicts  uint64
		readBack   uint64 // events read back from the stream
		aheadAt160 uint64 // folds made ahead before the snapshot at version 160
	}{
		// 81..160: ahead at 112 and 144; 161..240: at 192 and 224.
		{name: "keeping up", ahead: 4, aheadAt160: 2},
		// Deliveries up to seq 160 see 1,000 or more events waiting.
		{name: "behind", backlog: 920, ahead: 2},
		// The capture at 240 starts from the fold made ahead at 224, is
		// refused, and reads version 230 and the 10 events after it.
		{name: "another snapshot", capture: 230, ahead: 4, aheadAt160: 2, conflicts: 1, readBack: 10},
		// The capture at 240 starts from the fold made ahead at 224, is
		// refused, finds no snapshot, and folds from version 0: the events
		// after the forget make the actor known again.
		{name: "forgotten", forget: 230, ahead: 4, aheadAt160: 2, conflicts: 1, readBack: 240},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 80}
			a := e.handlerWith(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st, Exclusive: true})
			d := e.shared()
			publish := func(subject string, n int) {
				e.publish(slices.Repeat([]string{subject}, n), slices.Repeat([]string{"Deposited"}, n))
			}
			first := 240 // x's events published before it is captured on request or forgotten
			if c.capture > 0 || c.forget > 0 {
				first = int(max(c.capture, c.forget))
			}
			publish("events.account.x", first)
			publish("events.account.other", c.backlog) // after x's: seqs 241 on

			for seq := uint64(1); seq <= 160; seq++ {
				a.Handle(d.next(seq, 1))
			}
			e.wantSnapshot(a, "account.x", 160, 160)
			if got := a.Stats().FoldsAhead.Load(); got != c.aheadAt160 {
				t.Errorf("%d folds made ahead by version 160, want %d", got, c.aheadAt160)
			}
			r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, mustLoad(t, e.scripts))
			for seq := uint64(161); seq <= 239; seq++ {
				a.Handle(d.next(seq, 1))
				if seq == c.capture {
					e.wantSnapshot(a, "account.x", 160, 160) // the folds made ahead so far are done
					if snap, err := r.Capture(context.Background(), "account.x"); err != nil || snap.Version != c.capture {
						t.Fatalf("capture on request: version %d, %v; want %d", snap.Version, err, c.capture)
					}
					publish("events.account.x", 240-first)
				}
				if seq == c.forget {
					e.wantSnapshot(a, "account.x", 160, 160)
					if n, err := r.Forget(context.Background(), "account.x"); err != nil || n != 2 {
						t.Fatalf("forget: %d snapshots purged, %v; want 2", n, err)
					}
					publish("events.account.x", 240-first)
				}
			}
			a.Handle(d.next(240, 1))
			e.wantSnapshot(a, "account.x", 240, 240)

			stats := a.Stats()
			if got := stats.FoldsAhead.Load(); got != c.ahead {
				t.Errorf("%d folds made ahead, want %d", got, c.ahead)
			}
			if got := stats.Conflicts.Load(); got != c.conflicts {
				t.Errorf("%d publishes refused, want %d", got, c.conflicts)
			}
			if got := stats.StreamReads.Load(); got != c.readBack {
				t.Errorf("%d events read back from the stream, want %d", got, c.readBack)
			}
			if got := stats.BaseReads.Load(); got != 1+c.conflicts {
				t.Errorf("%d bases read from the stream, want %d: the first capture's, and one per refused publish", got, 1+c.conflicts)
			}
			if s := e.latestProbe("account.x"); s.N != 240 || s.SeqSum != 240*241/2 || s.Last != 240 || s.Bad != 0 || s.Types["Deposited"] != 240 {
				t.Errorf("state at version 240: %+v; want n 240, seqSum %d, last 240, bad 0, 240 Deposited", s, 240*241/2)
			}
		})
	}
}

// TestFoldAheadReducerError: a fold made ahead that fails in the reducer is
// given up, silently: the capture at the placement reads the events back
// from the stream, meets the same error and reports it, once, at its own
// version.
func TestFoldAheadReducerError(t *testing.T) {
	e := newEnv(t)
	e.script("bomb", "testdata/throws.js")
	st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 80}
	a := e.handlerWith(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st, Exclusive: true})
	d := e.shared()
	types := slices.Repeat([]string{"Fine"}, 240)
	types[179] = "Boom" // version 180, in the fold made ahead at 192
	e.publish(slices.Repeat([]string{"events.bomb.x"}, 240), types)
	for seq := uint64(1); seq <= 240; seq++ {
		a.Handle(d.next(seq, 1))
	}
	e.wantSnapshot(a, "bomb.x", 160, 160)
	stats := a.Stats()
	for _, c := range []struct {
		what      string
		got, want uint64
	}{
		{"folds made ahead", stats.FoldsAhead.Load(), 2},   // at 112 and 144; at 192 it fails, at 224 no base lines up
		{"reducer errors", stats.ReducerErrors.Load(), 1},  // the capture at 240
		{"events read back", stats.StreamReads.Load(), 80}, // by that capture: 161 to 240
		{"bases read", stats.BaseReads.Load(), 1},          // by the first capture; then 160 is kept
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
}

// TestFoldAheadRestart: events published in small batches, each once the
// one before is consumed, so that the consumer keeps up and folds are made
// ahead, with a short AckWait (the
// triggers' acks are held back behind captures, and redelivered), and a
// restart halfway, gracefully then abruptly: every snapshot holds exactly
// its actor's events, as without folds made ahead.
func TestFoldAheadRestart(t *testing.T) {
	for _, abrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("abrupt=%v", abrupt), func(t *testing.T) {
			e := newEnv(t)
			o := defaults()
			o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 40, MinEvents: 5, MaxEvents: 100}
			o.ackWait = 2 * time.Second
			o.workers = 16 // the default: folds are made ahead while fewer captures and folds are under way
			subjects, types := workload(scaled(50, 5), 200, []string{"Deposited", "Withdrawn"}, 7)
			half := len(subjects) / 2
			// In batches of 100, each once the one before is consumed.
			publish := func(j *jetsnap, subjects, types []string) {
				for i := 0; i < len(subjects); i += 100 {
					e.publish(subjects[i:min(i+100, len(subjects))], types[i:min(i+100, len(types))])
					waitFor(t, time.Minute, "events consumed", func() bool { return j.snap.Stats().Consumed.Load() >= uint64(min(i+100, len(subjects))) })
				}
			}

			j := e.run(o)
			publish(j, subjects[:half], types[:half])
			waitFor(t, time.Minute, "folds made ahead", func() bool { return j.snap.Stats().FoldsAhead.Load() > 0 })
			if abrupt {
				j.kill()
			} else {
				j.stop()
			}
			j2 := e.run(o)
			publish(j2, subjects[half:], types[half:])
			waitFor(t, 2*time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
			e.check(o.strategy)
			if n := j2.snap.Stats().FoldsAhead.Load(); n == 0 {
				t.Error("no fold made ahead after the restart")
			}
			t.Logf("folds made ahead: %d before the restart, %d after", j.snap.Stats().FoldsAhead.Load(), j2.snap.Stats().FoldsAhead.Load())
		})
	}
}

// TestRedeliveryOfAnEventFoldedAhead: with every delivery of the durable
// coming to this process (Exclusive), an event counted after its actor's
// last placement and delivered again is acknowledged from memory, whether
// it was folded ahead since (seqs 81 and 90) or is still in the tail (115);
// an event before the actor's last placement (80, itself a placement) is
// counted against the streams.
func TestRedeliveryOfAnEventFoldedAhead(t *testing.T) {
	e := newEnv(t)
	st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 80}
	a := e.handlerWith(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st, Exclusive: true})
	d := e.shared()
	// Events are published only once the deliveries before them are
	// handled: a fetch may come back before a nak sent earlier has been
	// taken, with a new event.
	publish := func(n int) {
		e.publish(slices.Repeat([]string{"events.account.x"}, n), slices.Repeat([]string{"Deposited"}, n))
	}
	held := make(map[uint64]*heldAck)
	redeliver := func(seqs ...uint64) {
		t.Helper()
		for _, seq := range seqs {
			if err := held[seq].Nak(); err != nil {
				t.Fatal(err)
			}
		}
		for _, seq := range seqs {
			m := &heldAck{Msg: d.next(seq, 2)}
			a.Handle(m)
			if !m.acked {
				t.Errorf("redelivery of seq %d not acknowledged", seq)
			}
		}
	}
	publish(120)
	for seq := uint64(1); seq <= 120; seq++ {
		m := &heldAck{Msg: d.next(seq, 1)}
		held[seq] = m
		a.Handle(m) // a placement at 80; 81..112 folded ahead
	}
	e.wantSnapshot(a, "account.x", 80, 80)
	if got := a.Stats().FoldsAhead.Load(); got != 1 {
		t.Fatalf("%d folds made ahead, want 1", got)
	}

	resyncs := a.Stats().Resyncs.Load()
	redeliver(81, 90, 115)
	if got := a.Stats().Resyncs.Load() - resyncs; got != 0 {
		t.Errorf("%d resyncs for the redeliveries of seqs 81, 90 and 115, want 0", got)
	}
	publish(40)
	for seq := uint64(121); seq <= 160; seq++ {
		a.Handle(d.next(seq, 1))
	}
	e.wantSnapshot(a, "account.x", 160, 160)
	if got := a.Stats().StreamReads.Load(); got != 0 {
		t.Errorf("%d events read back from the stream, want 0", got)
	}
	publish(5)
	for seq := uint64(161); seq <= 165; seq++ {
		a.Handle(d.next(seq, 1)) // a tail again
	}
	redeliver(80)
	if got := a.Stats().Resyncs.Load() - resyncs; got != 1 {
		t.Errorf("%d resyncs after the redelivery of seq 80, want 1", got)
	}
}
