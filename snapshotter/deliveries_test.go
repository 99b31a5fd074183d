package snapshotter_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go/jetstream"
)

// These tests hand deliveries of one durable (ack mode each) to two
// Snapshotters, as two processes sharing it would get them, in an order
// chosen by the test. An event counted as the version after the one
// before it, when events between them went to the other process, makes
// the actor's placement acknowledged as not due, and its snapshot is
// never made (seen in TestFaultTwoProcesses).

// TestRedeliveryThenFirstDelivery: an event handed back comes again after
// a newer event of its actor went to the other process, and the next
// first delivery follows it in delivery sequence.
func TestRedeliveryThenFirstDelivery(t *testing.T) {
	e := newEnv(t)
	st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3}
	a, b := e.handler(st), e.handler(st)
	d := e.shared()

	e.publishOne("events.account.x") // seq 1
	e.publishOne("events.account.x") // seq 2
	first := d.next(1, 1)
	b.Handle(d.next(2, 1)) // version 2, at the other process
	if err := first.Nak(); err != nil {
		t.Fatal(err)
	}
	a.Handle(d.next(1, 2))           // version 1, redelivered
	e.publishOne("events.account.x") // seq 3
	a.Handle(d.next(3, 1))           // version 3: a placement

	e.wantSnapshot(a, "account.x", 3, 3)
}

// TestRecreatedDurableUnnoticed: the durable is deleted and created again
// without this process noticing (no Reset), and its delivery sequence
// starts again at 1. The delivery after the highest one this process saw
// before is not contiguous with the last one it saw.
func TestRecreatedDurableUnnoticed(t *testing.T) {
	e := newEnv(t)
	st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3}
	a, b := e.handler(st), e.handler(st)
	d := e.shared()

	e.publishOne("events.account.x") // seq 1
	e.publishOne("events.account.y") // seq 2
	e.publishOne("events.account.y") // seq 3
	first := d.next(1, 1)
	a.Handle(d.next(2, 1))
	a.Handle(d.next(3, 1))
	if err := first.Nak(); err != nil {
		t.Fatal(err)
	}
	a.Handle(d.next(1, 2)) // delivery 4: x at version 1

	stream, _ := e.js.Stream(context.Background(), "EVENTS")
	if err := stream.DeleteConsumer(context.Background(), "shared"); err != nil {
		t.Fatal(err)
	}
	d = e.shared()
	e.publishOne("events.account.x") // seq 4
	e.publishOne("events.account.x") // seq 5
	a.Handle(d.next(1, 1))           // delivery 1: x at version 1 again
	b.Handle(d.next(2, 1))
	b.Handle(d.next(3, 1))
	b.Handle(d.next(4, 1)) // x at version 2, at the other process
	a.Handle(d.next(5, 1)) // delivery 5: x at version 3, a placement

	e.wantSnapshot(a, "account.x", 3, 5)
}

// TestEventsBetweenWentElsewhere: between two deliveries of an actor to
// this process, the other process got a few of its events, or more than
// one read of them shows (countInOneRead); other actors' events lie
// between them. The next event is counted as its version either way.
func TestEventsBetweenWentElsewhere(t *testing.T) {
	for _, between := range []int{3, 40} {
		t.Run(fmt.Sprint(between), func(t *testing.T) {
			e := newEnv(t)
			version := uint64(between + 2)
			st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: version}
			a, b := e.handler(st), e.handler(st)
			d := e.shared()
			for range version {
				e.publishOne("events.account.x") // x at odd seqs
				e.publishOne("events.account.y")
			}
			last := 2*version - 1
			a.Handle(d.next(1, 1)) // x at version 1
			for seq := uint64(2); seq < last; seq++ {
				b.Handle(d.next(seq, 1)) // x at versions 2..between+1, and y
			}
			a.Handle(d.next(last, 1)) // x at its placement

			e.wantSnapshot(a, "account.x", version, last)
		})
	}
}

// TestRedeliveryToTheOnlyProcess: with every delivery of the durable coming
// to this process (Exclusive, as with batched acks), a redelivery is
// counted against the stream, and so is its actor's next event, but the
// other actors' next events still take the hot path; without Exclusive,
// every actor is counted again.
func TestRedeliveryToTheOnlyProcess(t *testing.T) {
	for _, c := range []struct {
		exclusive bool
		resyncs   uint64
	}{{true, 3}, {false, 4}} {
		t.Run(fmt.Sprint("exclusive=", c.exclusive), func(t *testing.T) {
			e := newEnv(t)
			st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3}
			a := e.handlerWith(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st, Exclusive: c.exclusive})
			d := e.shared()
			e.publishOne("events.account.x") // seq 1
			e.publishOne("events.account.y") // seq 2
			x1 := d.next(1, 1)
			a.Handle(d.next(2, 1)) // y at version 1: new, counted against the stream
			if err := x1.Nak(); err != nil {
				t.Fatal(err)
			}
			a.Handle(d.next(1, 2)) // x at version 1, redelivered: counted against the stream
			for _, subject := range []string{"x", "y", "x"} {
				e.publishOne("events.account." + subject) // seqs 3 to 5
			}
			a.Handle(d.next(3, 1)) // x at version 2: counted against the stream
			a.Handle(d.next(4, 1)) // y at version 2
			a.Handle(d.next(5, 1)) // x at version 3: a placement

			e.wantSnapshot(a, "account.x", 3, 5)
			if got := a.Stats().Resyncs.Load(); got != c.resyncs {
				t.Errorf("%d deliveries counted against the stream, want %d", got, c.resyncs)
			}
		})
	}
}

// handler is a Snapshotter whose workers run until the test ends, fed by
// the test rather than by a consumer.
func (e *env) handler(st snapshotter.Strategy) *snapshotter.Snapshotter {
	e.t.Helper()
	return e.handlerWith(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st})
}

func (e *env) handlerWith(cfg snapshotter.Config) *snapshotter.Snapshotter {
	e.t.Helper()
	snap, err := snapshotter.New(cfg, e.nc, e.js, mustLoad(e.t, e.scripts), testLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = snap.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return snap
}

func (e *env) publishOne(subject string) {
	e.t.Helper()
	if _, err := e.js.Publish(context.Background(), subject, []byte(`{"type":"Deposited"}`)); err != nil {
		e.t.Fatal(err)
	}
}

// sharedDurable fetches from the durable "shared" one message at a time.
type sharedDurable struct {
	t    *testing.T
	cons jetstream.Consumer
}

func (e *env) shared() sharedDurable {
	e.t.Helper()
	stream, _ := e.js.Stream(context.Background(), "EVENTS")
	cons, err := stream.CreateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: "shared", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		e.t.Fatal(err)
	}
	return sharedDurable{t: e.t, cons: cons}
}

// next fetches the next delivery and checks that it is event seq on its
// delivered-th delivery.
func (d sharedDurable) next(seq, delivered uint64) jetstream.Msg {
	d.t.Helper()
	batch, err := d.cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		d.t.Fatal(err)
	}
	m, ok := <-batch.Messages()
	if !ok {
		d.t.Fatalf("no delivery of seq %d: %v", seq, batch.Error())
	}
	md, err := m.Metadata()
	if err != nil {
		d.t.Fatal(err)
	}
	if md.Sequence.Stream != seq || md.NumDelivered != delivered {
		d.t.Fatalf("delivered seq %d (delivery #%d), want seq %d (delivery #%d)", md.Sequence.Stream, md.NumDelivered, seq, delivered)
	}
	return m
}

// wantSnapshot waits for s's captures and checks the actor's latest
// snapshot.
func (e *env) wantSnapshot(s *snapshotter.Snapshotter, actor string, version, lastSeq uint64) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, "deliveries counted and captures finished", func() bool {
		return s.Stats().Waiting.Load() == 0 && s.Stats().Queued.Load() == 0 && s.Stats().Ahead.Load() == 0
	})
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	snap, err := r.Latest(context.Background(), actor)
	switch {
	case errors.Is(err, snapshotter.ErrNoSnapshot):
		e.t.Fatalf("no snapshot of %s: its event at version %d was counted as an earlier version and acknowledged as not due", actor, version)
	case err != nil:
		e.t.Fatal(err)
	case snap.Version != version || snap.LastSeq != lastSeq:
		e.t.Fatalf("snapshot of %s: version %d at seq %d, want version %d at seq %d", actor, snap.Version, snap.LastSeq, version, lastSeq)
	}
}

// heldAck is a delivery whose acknowledgement is held back, as the batched
// acker holds back those behind a capture still running: the server
// delivers it again once the test naks it.
type heldAck struct {
	jetstream.Msg
	acked bool
}

func (m *heldAck) Ack() error { m.acked = true; return nil }

// TestRedeliveryOfACountedEvent: with every delivery of the durable coming
// to this process (Exclusive), an event counted after its actor's last
// placement and delivered again (its ack held back past AckWait) is
// acknowledged without reading the streams, not counted twice, and stays
// in the tail that the next capture folds from memory; one counted before
// the placement is counted against the streams, as any redelivery. Without
// Exclusive, every redelivery is counted against the streams.
func TestRedeliveryOfACountedEvent(t *testing.T) {
	for _, c := range []struct {
		exclusive   bool
		recounted   uint64 // resyncs for the redeliveries of seqs 4 and 5
		streamReads uint64 // events the capture at version 6 read back
	}{{true, 0, 0}, {false, 2, 3}} {
		t.Run(fmt.Sprint("exclusive=", c.exclusive), func(t *testing.T) {
			e := newEnv(t)
			st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3}
			a := e.handlerWith(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st, Exclusive: c.exclusive})
			d := e.shared()
			for range 5 {
				e.publishOne("events.account.x") // seqs 1 to 5
			}
			held := make([]*heldAck, 6)
			for seq := uint64(1); seq <= 5; seq++ {
				held[seq] = &heldAck{Msg: d.next(seq, 1)}
				a.Handle(held[seq]) // version 3 is a placement; 4 and 5 are in its tail
			}
			e.wantSnapshot(a, "account.x", 3, 3)
			nak := func(from, to int) {
				for seq := from; seq <= to; seq++ {
					if !held[seq].acked {
						t.Fatalf("seq %d not acknowledged after its first delivery", seq)
					}
					if err := held[seq].Nak(); err != nil { // the server delivers it again
						t.Fatal(err)
					}
				}
			}
			resyncs := a.Stats().Resyncs.Load() // 1: x is new
			nak(4, 5)
			for seq := uint64(4); seq <= 5; seq++ {
				again := &heldAck{Msg: d.next(seq, 2)}
				a.Handle(again)
				if !again.acked {
					t.Errorf("redelivery of seq %d not acknowledged", seq)
				}
			}
			if got := a.Stats().Resyncs.Load(); got != resyncs+c.recounted {
				t.Errorf("%d resyncs after the redeliveries of seqs 4 and 5, counted after the placement; want %d", got, resyncs+c.recounted)
			}
			e.publishOne("events.account.x") // seq 6: version 6, a placement
			a.Handle(d.next(6, 1))
			e.wantSnapshot(a, "account.x", 6, 6)
			if got := a.Stats().StreamReads.Load(); got != c.streamReads {
				t.Errorf("the capture at version 6 read %d events back from the stream, want %d", got, c.streamReads)
			}
			resyncs = a.Stats().Resyncs.Load()
			nak(1, 3)
			for seq := uint64(1); seq <= 3; seq++ {
				a.Handle(d.next(seq, 2)) // before the placement: counted against the streams
			}
			if got := a.Stats().Resyncs.Load(); got != resyncs+3 {
				t.Errorf("%d resyncs after the redeliveries of seqs 1 to 3, want %d", got, resyncs+3)
			}
			if got := a.Stats().Redelivered.Load(); got != 5 {
				t.Errorf("%d redeliveries counted, want 5", got)
			}
			e.wantSnapshot(a, "account.x", 6, 6)
		})
	}
}
