package snapshotter_test

import (
	"context"
	"testing"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// TestKeptBase: a capture starts from the snapshot this process published
// at the actor's previous capture, or read to count an actor new to it
// (after a restart), without reading it back. When another publisher (here
// a capture on request) stored a newer one in between, the publish is
// refused, and the capture folds again on the one in the stream: the
// snapshot holds exactly the actor's events.
func TestKeptBase(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "published", true: "read after a restart"}[restart]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3}
			cfg := snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st, Exclusive: true}
			a := e.handlerWith(cfg)
			d := e.shared()
			for seq := uint64(1); seq <= 3; seq++ {
				e.publishOne("events.account.x")
				a.Handle(d.next(seq, 1)) // version 3 is a placement: its snapshot is kept
			}
			e.wantSnapshot(a, "account.x", 3, 3)
			if restart {
				a = e.handlerWith(cfg) // counts x from version 3, which it keeps
			}

			e.publishOne("events.account.x") // seq 4
			a.Handle(d.next(4, 1))
			r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, mustLoad(t, e.scripts))
			if st, err := r.Capture(context.Background(), "account.x"); err != nil || st.Version != 4 {
				t.Fatalf("capture on request: version %d, %v; want 4", st.Version, err)
			}
			for seq := uint64(5); seq <= 6; seq++ {
				e.publishOne("events.account.x")
				a.Handle(d.next(seq, 1)) // version 6: a placement, on top of version 4
			}
			e.wantSnapshot(a, "account.x", 6, 6)
			if got := a.Stats().Conflicts.Load(); got != 1 {
				t.Errorf("%d publishes refused, want 1: the capture at version 6 starts from the kept version 3", got)
			}
			if s := e.latestProbe("account.x"); s.N != 6 || s.SeqSum != 21 || s.Bad != 0 {
				t.Errorf("state at version 6: %+v; want n 6, seqSum 21, bad 0", s)
			}
		})
	}
}
