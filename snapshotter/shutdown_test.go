package snapshotter_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// TestGracefulShutdownMidWorkload: jetsnap is stopped (as by SIGTERM)
// while events arrive and captures are queued, then started again; the
// workload goes on throughout. Every snapshot is right and each actor has
// exactly the snapshots the strategy gives: no event lost or counted twice.
// "finish" lets the queued captures complete; "abandon" has a shutdown
// timeout far shorter than the queued captures need, so some are dropped
// unacknowledged and redone after the restart.
func TestGracefulShutdownMidWorkload(t *testing.T) {
	for _, c := range []struct {
		name     string
		script   string
		shutdown time.Duration
	}{
		{"finish", "testdata/probe.js", 5 * time.Second},
		{"abandon", "testdata/probe.js", time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.script("account", c.script)
			o := defaults()
			o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25, OnTypes: []string{"Closed"}}
			o.workers = 2
			o.shutdown = c.shutdown
			o.ackWait = 2 * time.Second // what the stopped run leaves unacknowledged comes back soon
			subjects, types := workload(120, 30, []string{"Deposited", "Withdrawn", "Deposited", "Closed"}, 21)

			j := e.run(o)
			published := make(chan error, 1)
			go func() { published <- e.tryPublish(subjects, types) }()
			var queued int64
			waitFor(t, time.Minute, "captures under way", func() bool {
				st := j.snap.Stats()
				queued = st.Queued.Load()
				return st.Consumed.Load() > uint64(len(subjects)/4) && queued > 0
			})
			start := time.Now()
			j.stop()
			took := time.Since(start)
			st := j.snap.Stats()
			t.Logf("stopped after %d events with %d captures queued, in %v; %d snapshots published", st.Consumed.Load(), queued, took, st.Published.Load())
			if n := st.Queued.Load(); n != 0 {
				t.Errorf("%d captures still queued after Run returned", n)
			}
			if limit := c.shutdown + 5*time.Second; took > limit {
				t.Errorf("stop took %v, more than the shutdown timeout %v plus the consumer's drain", took, c.shutdown)
			}

			start = time.Now()
			j2 := e.run(o)
			if err := <-published; err != nil {
				t.Fatal(err)
			}
			events := e.allEvents()
			waitFor(t, 2*time.Minute, "snapshots to catch up", e.settled(o.strategy, events))
			cons, err := e.js.Consumer(context.Background(), "EVENTS", "jetsnap")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Minute, "every event acknowledged", func() bool {
				info, err := cons.Info(context.Background())
				return err == nil && info.NumPending == 0 && info.NumAckPending == 0
			})
			t.Logf("caught up %v after the restart", time.Since(start))
			if n := e.check(o.strategy); n < 120*3 {
				t.Fatalf("only %d snapshots checked", n)
			}
			if st.Published.Load()+j2.snap.Stats().Published.Load() == 0 {
				t.Fatal("nothing published")
			}
		})
	}
}
