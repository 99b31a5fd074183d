package snapshotter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRedeliveryThenFirstDelivery: two processes share a durable (ack mode
// each). An event handed back comes again after newer events went to the
// other process, and the next first delivery follows it in delivery
// sequence. That next event must be counted against the stream, not as
// the version after the redelivered one: the events between them went
// elsewhere. Counted wrong, the actor's placement is acknowledged as not
// due and its snapshot never made (seen in TestFaultTwoProcesses).
func TestRedeliveryThenFirstDelivery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3}
	a, b := e.handler(st), e.handler(st)

	stream, _ := e.js.Stream(ctx, "EVENTS")
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "shared", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	next := func(want uint64, delivered uint64) jetstream.Msg {
		t.Helper()
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		m, ok := <-batch.Messages()
		if !ok {
			t.Fatalf("no delivery of seq %d: %v", want, batch.Error())
		}
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.Sequence.Stream != want || md.NumDelivered != delivered {
			t.Fatalf("delivered seq %d (delivery #%d), want seq %d (delivery #%d)", md.Sequence.Stream, md.NumDelivered, want, delivered)
		}
		return m
	}

	for range 2 {
		if _, err := e.js.Publish(ctx, "events.account.x", []byte(`{"type":"Deposited"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := next(1, 1).NakWithDelay(200 * time.Millisecond); err != nil { // handed back
		t.Fatal(err)
	}
	b.Handle(next(2, 1)) // version 2, at the other process
	a.Handle(next(1, 2)) // version 1 again, redelivered
	if _, err := e.js.Publish(ctx, "events.account.x", []byte(`{"type":"Deposited"}`)); err != nil {
		t.Fatal(err)
	}
	a.Handle(next(3, 1)) // version 3: a placement

	waitFor(t, 10*time.Second, "captures to finish", func() bool { return a.Stats().Queued.Load() == 0 })
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	snap, err := r.Latest(ctx, "account.x")
	switch {
	case errors.Is(err, snapshotter.ErrNoSnapshot):
		t.Fatal("no snapshot of account.x: the event at version 3 was taken for version 2 and acknowledged as not due")
	case err != nil:
		t.Fatal(err)
	case snap.Version != 3 || snap.LastSeq != 3:
		t.Fatalf("snapshot version %d at seq %d, want version 3 at seq 3", snap.Version, snap.LastSeq)
	}
}

// handler is a Snapshotter whose workers run until the test ends, fed by
// the test rather than by a consumer.
func (e *env) handler(st snapshotter.Strategy) *snapshotter.Snapshotter {
	e.t.Helper()
	snap, err := snapshotter.New(snapshotter.Config{Pattern: snapshotter.MustPattern("events.{type}.{id}"), Strategy: st},
		e.nc, e.js, mustLoad(e.t, e.scripts), testLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = snap.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return snap
}
