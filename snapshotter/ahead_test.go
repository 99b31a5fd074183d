package snapshotter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNewActorsInterleaved: the events of many new actors, interleaved,
// handed to Handle as fast as it returns. Each new actor's first reads are
// made ahead while the deliveries behind it wait; counted in order, every
// actor gets its snapshot at its third event, and each is counted from the
// streams once.
func TestNewActorsInterleaved(t *testing.T) {
	e := newEnv(t)
	a := e.handler(snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3})
	const actors = 300
	third := make(map[string]uint64)
	for round := range 3 {
		for i := range actors {
			ack, err := e.js.Publish(context.Background(), fmt.Sprintf("events.account.%d", i), []byte(`{"type":"Deposited"}`))
			if err != nil {
				t.Fatal(err)
			}
			if round == 2 {
				third[fmt.Sprintf("account.%d", i)] = ack.Sequence
			}
		}
	}
	stream, _ := e.js.Stream(context.Background(), "EVENTS")
	cons, err := stream.CreateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: "interleaved", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3*actors, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	handed := 0
	for m := range batch.Messages() {
		a.Handle(m)
		handed++
	}
	if handed != 3*actors {
		t.Fatalf("%d deliveries, want %d: %v", handed, 3*actors, batch.Error())
	}
	for key, seq := range third {
		e.wantSnapshot(a, key, 3, seq)
	}
	if got := a.Stats().Resyncs.Load(); got != actors {
		t.Fatalf("%d actors counted from the streams, want %d (once each)", got, actors)
	}
	waitFor(t, 10*time.Second, "every event acknowledged", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
}

// TestFlushCountsWaitingDeliveries: a consumer session ends while a
// delivery waits behind a new actor's reads. Flush, which the consumer
// calls then, counts it before returning, so that its ack belongs to the
// session that delivered it.
func TestFlushCountsWaitingDeliveries(t *testing.T) {
	e := newEnv(t)
	a := e.handler(snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 3})
	d := e.shared()
	e.publishOne("events.account.x")
	a.Handle(d.next(1, 1))
	a.Flush()
	if got, waiting := a.Stats().Tracked.Load(), a.Stats().Waiting.Load(); got != 1 || waiting != 0 {
		t.Fatalf("after Flush: %d actors tracked, %d deliveries waiting; want 1 and 0", got, waiting)
	}
}
