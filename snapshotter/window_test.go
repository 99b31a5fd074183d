package snapshotter_test

import (
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// TestCatchUpWindow: a process started after another stopped finds every
// actor with events since its last snapshot (those the other process
// counted after its last placement). It reads them once, in a window, and
// folds every actor's first capture from memory: no event is read back one
// actor at a time. That holds for a backlog published before it starts, for
// events that come once it runs (the deliveries extend the window), and for
// actors with no snapshot yet. With a budget too small for all of them, the
// actors the window does not hold read theirs back. In every case the
// snapshots are exactly the reference fold's.
func TestCatchUpWindow(t *testing.T) {
	for _, c := range []struct {
		name   string
		first  int   // events per actor before the restart (of 200)
		live   bool  // the rest published once the new process runs
		buffer int64 // Config.BufferBytes, 0 for the default
	}{
		{name: "backlog", first: 100},
		{name: "live", first: 100, live: true},
		{name: "no snapshot yet", first: 30},
		{name: "small budget", first: 100, buffer: 16 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			o := defaults()
			o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 40, MinEvents: 5, MaxEvents: 100}
			o.buffer = c.buffer
			actors := scaled(50, 5)
			// Round-robin over the actors: with 100 events each before the
			// restart, each has 20 after its placement at 80; with 30, all
			// 30 and no snapshot.
			subjects, types := workload(actors, 200, []string{"Deposited", "Withdrawn"}, 11)
			before := actors * c.first

			j := e.run(o)
			e.publish(subjects[:before], types[:before])
			waitFor(t, time.Minute, "events consumed", func() bool { return j.snap.Stats().Consumed.Load() >= uint64(before) })
			waitFor(t, time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
			j.stop()
			if !c.live {
				e.publish(subjects[before:], types[before:])
			}
			j2 := e.run(o)
			if c.live {
				e.publish(subjects[before:], types[before:])
			}
			waitFor(t, 2*time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
			e.check(o.strategy)

			st := j2.snap.Stats()
			if st.WindowReads.Load() == 0 {
				t.Error("no catch-up window was read")
			}
			switch n := st.StreamReads.Load(); {
			case c.buffer == 0 && n > 0:
				t.Errorf("the new process read %d events back from the stream; the window holds every actor's", n)
			case c.buffer > 0 && n == 0:
				t.Error("with a window too small for every actor, none read its events back: was the window's budget kept?")
			}
			t.Logf("new process: %d events read in a window, %d read back by captures, %d resyncs", st.WindowReads.Load(), st.StreamReads.Load(), st.Resyncs.Load())
		})
	}
}
