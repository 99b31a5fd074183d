package snapshotter_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// TestCatchUpWindow: a process started after another stopped, with a
// backlog, finds every actor with events since its last snapshot (those
// the other process counted after its last placement). It reads them once,
// in a window, and folds every actor's first capture from memory: no event
// is read back one actor at a time. With a budget too small for all of
// them, the actors the window does not hold read theirs back. Either way
// the snapshots are exactly the reference fold's.
func TestCatchUpWindow(t *testing.T) {
	for _, buffer := range []int64{0, 16 << 10} {
		t.Run(fmt.Sprintf("buffer=%d", buffer), func(t *testing.T) {
			e := newEnv(t)
			o := defaults()
			o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 40, MinEvents: 5, MaxEvents: 100}
			o.buffer = buffer // 0: the default, 64 MiB
			actors := scaled(50, 5)
			// 100 events per actor, then 100 more: each actor has 20
			// events after its placement at 80 when the first process stops.
			subjects, types := workload(actors, 200, []string{"Deposited", "Withdrawn"}, 11)
			half := len(subjects) / 2

			j := e.run(o)
			e.publish(subjects[:half], types[:half])
			waitFor(t, time.Minute, "events consumed", func() bool { return j.snap.Stats().Consumed.Load() >= uint64(half) })
			waitFor(t, time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
			j.stop()
			// The backlog is in the stream before the new process starts, so
			// that the window reaches every actor's first delivery.
			e.publish(subjects[half:], types[half:])
			j2 := e.run(o)
			waitFor(t, 2*time.Minute, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
			e.check(o.strategy)

			st := j2.snap.Stats()
			if st.WindowReads.Load() == 0 {
				t.Error("no catch-up window was read")
			}
			switch n := st.StreamReads.Load(); {
			case buffer == 0 && n > 0:
				t.Errorf("the new process read %d events back from the stream; the window holds every actor's", n)
			case buffer > 0 && n == 0:
				t.Error("with a window too small for every actor, none read its events back: was the window's budget kept?")
			}
			t.Logf("new process: %d events read in a window, %d read back by captures, %d resyncs", st.WindowReads.Load(), st.StreamReads.Load(), st.Resyncs.Load())
		})
	}
}
