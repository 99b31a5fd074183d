package consumer_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// batchEnv is a server with an EVENTS stream holding n events.
func batchEnv(t *testing.T, n int) (jetstream.JetStream, func() *nats.Conn) {
	t.Helper()
	srv := runServer(t, -1, t.TempDir())
	t.Cleanup(srv.Shutdown)
	dial := func() *nats.Conn {
		nc, err := consumer.Connect(consumer.ConnConfig{URL: srv.ClientURL()}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	js, _ := jetstream.New(dial())
	ctx := context.Background()
	if err := consumer.EnsureEventStream(ctx, js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, n)
	return js, dial
}

func publish(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := js.PublishAsync("events.account."+strconv.Itoa(i%7), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("publishes not acknowledged")
	}
}

func ackFloor(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	cons, err := js.Consumer(context.Background(), "EVENTS", "jetsnap")
	if err != nil {
		return 0
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		return 0
	}
	return info.AckFloor.Stream
}

// seqs records the stream sequences a handler saw.
type seqs struct {
	mu   sync.Mutex
	seen map[uint64]int
}

func (s *seqs) add(m jetstream.Msg) uint64 {
	r, _ := consumer.ParseReply(m.Reply())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[uint64]int)
	}
	s.seen[r.StreamSeq]++
	return r.StreamSeq
}

func (s *seqs) count(seq uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[seq]
}

func (s *seqs) all(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		if s.seen[seq] == 0 {
			return false
		}
	}
	return true
}

// start runs a consumer in the background until the returned stop.
func start(t *testing.T, nc *nats.Conn, cfg consumer.Config, handle func(jetstream.Msg)) (stop func()) {
	t.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := consumer.New(cfg, js, quiet).Run(ctx, handle); err != nil {
			t.Error(err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func batchConfig() consumer.Config {
	return consumer.Config{Stream: "EVENTS", Durable: "jetsnap", Filter: "events.>", AckMode: consumer.AckBatch,
		PinnedTTL: 3 * time.Second, AckWait: 2 * time.Second, InfoInterval: 200 * time.Millisecond}
}

// TestBatchAcks: with AckBatch, the ack floor stops below a message not
// done yet, whatever follows it is done, and moves past it once it is.
func TestBatchAcks(t *testing.T) {
	const n = 2000
	js, dial := batchEnv(t, n)
	var got seqs
	held := make(chan jetstream.Msg, 1)
	start(t, dial(), batchConfig(), func(m jetstream.Msg) {
		if got.add(m) == 700 && got.count(700) == 1 {
			held <- m
			return
		}
		_ = m.Ack()
	})
	waitFor(t, 10*time.Second, "every event delivered", func() bool { return got.all(n) })
	waitFor(t, 5*time.Second, "ack floor at 699", func() bool { return ackFloor(t, js) == 699 })
	m := <-held
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "ack floor at the end", func() bool { return ackFloor(t, js) == n })
	for seq := uint64(1); seq <= n; seq++ {
		if c := got.count(seq); c != 1 {
			t.Fatalf("seq %d handled %d times, want once", seq, c)
		}
	}
}

// TestBatchNak: a message handed back is delivered again, nothing at or
// above it is acknowledged before, and everything is after.
func TestBatchNak(t *testing.T) {
	const n = 500
	js, dial := batchEnv(t, n)
	var got seqs
	start(t, dial(), batchConfig(), func(m jetstream.Msg) {
		if got.add(m) == 100 && got.count(100) == 1 {
			_ = m.NakWithDelay(200 * time.Millisecond)
			return
		}
		_ = m.Ack()
	})
	waitFor(t, 10*time.Second, "ack floor at the end", func() bool { return ackFloor(t, js) == n })
	if c := got.count(100); c != 2 {
		t.Fatalf("seq 100 handled %d times, want 2 (nak, then ack)", c)
	}
}

// TestBatchReset: when a delivery goes elsewhere (here the consumer is
// reset from outside, so the delivery sequence starts again), Run resets
// the consumer to its ack floor, calls OnReset, and every event is still
// handled and acknowledged.
func TestBatchReset(t *testing.T) {
	const n = 3000
	js, dial := batchEnv(t, n)
	var got seqs
	var resets atomic.Int32
	cfg := batchConfig()
	cfg.OnReset = func() { resets.Add(1) }
	gate := make(chan struct{})
	start(t, dial(), cfg, func(m jetstream.Msg) {
		if got.add(m) == 1000 && got.count(1000) == 1 {
			<-gate // hold the handler while the consumer is reset from outside
		}
		_ = m.Ack()
	})
	waitFor(t, 10*time.Second, "seq 1000 delivered", func() bool { return got.count(1000) == 1 })
	if _, err := js.ResetConsumerToSequence(context.Background(), "EVENTS", "jetsnap", 1); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, 10*time.Second, "ack floor at the end", func() bool { return ackFloor(t, js) == n && got.all(n) })
	if r := resets.Load(); r < 2 {
		t.Fatalf("OnReset called %d times, want at start and after the outside reset", r)
	}
}

// TestBatchPinChange: when the durable's pin moves (here the test unpins
// it; in production another process held it in between), the deliveries
// that follow may continue the delivery sequence exactly where this
// process left it, so the pin itself must end the session: Run resets
// before it handles them. Found by a review: without the pin check, a
// process could ack events another process had been delivered and not
// finished.
func TestBatchPinChange(t *testing.T) {
	js, dial := batchEnv(t, 100)
	var got seqs
	var resets atomic.Int32
	cfg := batchConfig()
	cfg.OnReset = func() { resets.Add(1) }
	start(t, dial(), cfg, func(m jetstream.Msg) { got.add(m); _ = m.Ack() })
	waitFor(t, 10*time.Second, "events 1..100 acknowledged", func() bool { return ackFloor(t, js) == 100 })
	stream, err := js.Stream(context.Background(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	before := resets.Load()
	if err := stream.UnpinConsumer(context.Background(), "jetsnap", consumer.PinGroup); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 100, 200)
	waitFor(t, 10*time.Second, "events 101..200 acknowledged", func() bool { return ackFloor(t, js) == 200 && got.all(200) })
	if r := resets.Load(); r <= before {
		t.Fatalf("OnReset called %d times before the pin moved and %d after: the new pin did not end the session", before, r)
	}
}

// TestBatchTakeOver: with several processes on the durable, one consumes
// at a time and the others stand by. When it stops, a standby takes over:
// at once after a graceful stop, after PinnedTTL when its connection just
// dies. No event is left unacknowledged.
func TestBatchTakeOver(t *testing.T) {
	js, dial := batchEnv(t, 100)
	type process struct {
		got  seqs
		nc   *nats.Conn
		stop func()
	}
	spawn := func() *process {
		p := &process{nc: dial()}
		p.stop = start(t, p.nc, batchConfig(), func(m jetstream.Msg) { p.got.add(m); _ = m.Ack() })
		return p
	}
	// holder publishes events one by one until one of them is handled by
	// one of ps only (while processes take over, an event may be handled
	// twice: at least once), and returns that process and the others.
	next := 100
	holder := func(ps ...*process) (active *process, others []*process) {
		t.Helper()
		waitFor(t, 20*time.Second, "one process holding the durable", func() bool {
			publish(t, js, next, next+1)
			next++
			deadline := time.Now().Add(20 * time.Second)
			for ackFloor(t, js) != uint64(next) {
				if time.Now().After(deadline) {
					c, _ := js.Consumer(context.Background(), "EVENTS", "jetsnap")
					info, _ := c.Info(context.Background())
					t.Fatalf("seq %d not acknowledged within 20s; consumer: %+v delivered %+v ackfloor %+v waiting %d pending %d ackpending %d redelivered %d", next, info.PriorityGroups, info.Delivered, info.AckFloor, info.NumWaiting, info.NumPending, info.NumAckPending, info.NumRedelivered)
				}
				time.Sleep(20 * time.Millisecond)
			}
			active, others = nil, nil
			for _, p := range ps {
				if p.got.count(uint64(next)) > 0 {
					if active != nil {
						return false
					}
					active = p
				} else {
					others = append(others, p)
				}
			}
			return active != nil
		})
		return active, others
	}
	p1 := spawn()
	waitFor(t, 10*time.Second, "first process consumes", func() bool { return ackFloor(t, js) == 100 })
	p2 := spawn()
	active, others := holder(p1, p2)

	active.stop() // graceful: unpins
	begin := time.Now()
	holder(others...)
	// Handed over, not waited out: the pin of a process that stops is
	// released at once, not after PinnedTTL.
	if d, ttl := time.Since(begin), batchConfig().PinnedTTL; d >= ttl {
		t.Errorf("take-over after a graceful stop took %v, as long as PinnedTTL (%v): the stopping process did not unpin", d, ttl)
	}

	p3 := spawn()
	active, others = holder(others[0], p3)
	active.nc.Close() // dies: no unpin; what it was delivered comes again after AckWait
	holder(others...)
}

// TestBatchOnExplicitDurable: a durable made with AckEach cannot be used
// with AckBatch; the error says what to set.
func TestBatchOnExplicitDurable(t *testing.T) {
	js, _ := batchEnv(t, 0)
	each := consumer.Config{Stream: "EVENTS", Durable: "jetsnap", Filter: "events.>", AckMode: consumer.AckEach}
	if _, err := consumer.New(each, js, quiet).Bind(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := consumer.New(batchConfig(), js, quiet).Bind(context.Background())
	if err == nil || !strings.Contains(err.Error(), "JETSNAP_ACK_MODE=each") {
		t.Fatalf("Bind = %v, want an error naming JETSNAP_ACK_MODE=each", err)
	}
}
