package snapshotter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Benchmarks of the hot paths: the strategy, Handle (the tally), and
// captures with their publish. Handle gets fake deliveries (acks cost
// nothing), so these measure jetsnap's own work; captures and the reads a
// new actor costs go to a real in-process nats-server. `jetsnap bench`
// measures the whole pipeline against its ceilings.

func BenchmarkStrategyDue(b *testing.B) {
	for _, st := range []snapshotter.Strategy{
		{Kind: snapshotter.KindInterval, Every: 100},
		{Kind: snapshotter.KindVersion, Every: 100},
		{Kind: snapshotter.KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500},
		{Kind: snapshotter.KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500, OnTypes: []string{"Closed", "Opened"}},
	} {
		name := st.Kind
		if len(st.OnTypes) > 0 {
			name += "+types"
		}
		b.Run(name, func(b *testing.B) {
			var s, v uint64
			due := 0
			for b.Loop() {
				v++
				if st.Due(v, s, "Deposited", false) {
					s = v
					due++
				}
			}
			if v >= 100 && due == 0 {
				b.Fatal("never due")
			}
		})
	}
}

// BenchmarkHandle is the per-event cost of Snapshotter.Handle on actors it
// already tracks:
//
//   - tally: 10,000 actors, never due, no events kept for captures:
//     matching the subject, reading the delivery's reply subject, the tally,
//     the strategy, the ack;
//   - every=100: 1,000 actors, the default strategy with the capture workers
//     running and tails kept in memory; ns/op includes the captures (fold
//     and publish), and Handle blocks when they fall behind, as in the
//     pipeline. The events are published first (untimed), so that captures
//     find them in the stream.
func BenchmarkHandle(b *testing.B) {
	for _, c := range []struct {
		name    string
		actors  int
		st      snapshotter.Strategy
		buffer  int64
		workers bool
	}{
		{"tally", 10_000, snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 1 << 62}, 1, false},
		{"every=100", 1_000, snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500}, 0, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newBenchEnv(b)
			s := e.snapshotter(b, c.st, c.buffer)
			if c.workers {
				e.run(b, s)
			}
			actors := c.actors
			d := e.prime(b, s, actors, c.workers)
			b.ReportAllocs()
			b.ResetTimer()
			d.handle(b, s, b.N)
			if c.workers {
				waitIdle(b, s)
			}
			b.StopTimer()
			if st := s.Stats(); st.Resyncs.Load() != uint64(actors) || st.StreamReads.Load() != 0 {
				b.Fatalf("%d resyncs (want %d), %d events read back (want 0): the hot path was not taken",
					st.Resyncs.Load(), actors, st.StreamReads.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

var benchPayload = []byte(`{"type":"Deposited","amount":12,"ref":"tx-000000012","note":"monthly transfer","tags":["auto","sepa"],"currency":"EUR","account":"account.42","ok":true}`)

// BenchmarkHandleNewActors is an event of each of b.N actors new to this
// process, as at a start or a restart: each is counted against the
// streams (its last snapshot, its first events) before it is tracked.
// ns/op is per actor, until every one is tracked; the events are published
// first, untimed.
//   - first-event: actors without a snapshot, at their first event;
//   - after-snapshot: actors at their second event, with a snapshot of the
//     first (a restart).
func BenchmarkHandleNewActors(b *testing.B) {
	never := snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 1 << 62}
	for _, restart := range []bool{false, true} {
		name := "first-event"
		if restart {
			name = "after-snapshot"
		}
		b.Run(name, func(b *testing.B) {
			e := newBenchEnv(b)
			d := &deliveries{js: e.js, pattern: e.pattern, actors: b.N, data: benchPayload}
			for a := range b.N {
				d.subjects = append(d.subjects, e.pattern.Subject("account", strconv.Itoa(a), ""))
			}
			if restart {
				before := e.snapshotter(b, snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 1}, 0)
				e.run(b, before)
				d.make(b, b.N)
				handleAll(b, before, d.msgs)
				waitIdle(b, before)
				if got := before.Stats().Published.Load(); got != uint64(b.N) {
					b.Fatalf("%d snapshots before the restart, want %d", got, b.N)
				}
			}
			s := e.snapshotter(b, never, 1)
			e.run(b, s)
			d.make(b, b.N)
			b.ResetTimer()
			handleAll(b, s, d.msgs)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actors/s")
		})
	}
}

// handleAll hands msgs, one per actor, to Handle and waits until s tracks
// every actor.
func handleAll(b *testing.B, s *snapshotter.Snapshotter, msgs []benchMsg) {
	tracked := s.Stats().Tracked.Load()
	for i := range msgs {
		s.Handle(&msgs[i])
	}
	want := tracked + int64(len(msgs))
	waitFor(b, time.Minute, "every actor tracked", func() bool { return s.Stats().Tracked.Load() == want })
}

// BenchmarkCapture is a capture per event (interval, EVERY=1): read the
// base snapshot, fold the one event kept in memory, publish the snapshot
// with its expected last subject sequence, ack. ns/op is per capture, with
// the default workers (16, one fold per CPU at a time).
func BenchmarkCapture(b *testing.B) {
	const actors = 100
	e := newBenchEnv(b)
	s := e.snapshotter(b, snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 1}, 0)
	e.run(b, s)
	d := e.prime(b, s, actors, true)
	waitIdle(b, s)
	published := s.Stats().Published.Load()
	b.ResetTimer()
	d.handle(b, s, b.N)
	waitIdle(b, s)
	b.StopTimer()
	if got := s.Stats().Published.Load() - published; got != uint64(b.N) {
		b.Fatalf("%d snapshots published, want %d (stream reads %d)", got, b.N, s.Stats().StreamReads.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "captures/s")
}

type benchEnv struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	scripts *scripting.Registry
	pattern snapshotter.Pattern
	log     *slog.Logger
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, b.TempDir()
	srv := natstest.RunServer(&opts)
	b.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := consumer.EnsureEventStream(ctx, js, "EVENTS", "events.>"); err != nil {
		b.Fatal(err)
	}
	if err := snapshotter.EnsureSnapshotStream(ctx, js, snapshotter.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	src, err := os.ReadFile("../scripts/account.js")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "account.js"), src, 0o644); err != nil {
		b.Fatal(err)
	}
	var logw io.Writer = io.Discard
	if os.Getenv("BENCH_LOG") != "" {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	scripts, err := scripting.Load(dir, log)
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{nc: nc, js: js, scripts: scripts, pattern: snapshotter.MustPattern("events.{type}.{id}"), log: log}
}

func (e *benchEnv) snapshotter(b *testing.B, st snapshotter.Strategy, buffer int64) *snapshotter.Snapshotter {
	b.Helper()
	s, err := snapshotter.New(snapshotter.Config{Pattern: e.pattern, Strategy: st, BufferBytes: buffer}, e.nc, e.js, e.scripts, e.log)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// run runs the capture workers until the benchmark ends.
func (e *benchEnv) run(b *testing.B, s *snapshotter.Snapshotter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
}

// deliveries makes fake deliveries of the durable consumer "bench": stream
// and delivery sequences that go up by one, as a consumer that owns the
// stream delivers them. With js set, each event is published first, so that
// the stream holds what the deliveries say.
type deliveries struct {
	js            jetstream.JetStream
	pattern       snapshotter.Pattern
	actors        int
	sseq, dseq    uint64
	data          []byte
	subjects      []string
	msgs          []benchMsg
	next, handled int
}

// prime publishes one event per actor, hands them to Handle (each new
// actor is counted against the stream once) and returns the deliveries
// that follow, all on the hot path.
func (e *benchEnv) prime(b *testing.B, s *snapshotter.Snapshotter, actors int, publish bool) *deliveries {
	b.Helper()
	d := &deliveries{pattern: e.pattern, actors: actors}
	if publish {
		d.js = e.js
	}
	d.data = benchPayload
	for a := range actors {
		d.subjects = append(d.subjects, e.pattern.Subject("account", strconv.Itoa(a), ""))
	}
	ctx := context.Background()
	for a := range actors {
		ack, err := e.js.Publish(ctx, d.subjects[a], d.data)
		if err != nil {
			b.Fatal(err)
		}
		d.sseq = ack.Sequence
		d.dseq++
		m := d.msg(a)
		s.Handle(&m)
	}
	// A new actor is counted once its reads, made ahead, are back.
	waitFor(b, time.Minute, fmt.Sprintf("%d actors tracked after priming", actors), func() bool {
		return s.Stats().Tracked.Load() == int64(actors)
	})
	return d
}

func (d *deliveries) msg(actor int) benchMsg {
	reply := make([]byte, 0, 64)
	reply = append(reply, "$JS.ACK.EVENTS.bench.1."...)
	reply = strconv.AppendUint(reply, d.sseq, 10)
	reply = append(reply, '.')
	reply = strconv.AppendUint(reply, d.dseq, 10)
	reply = append(reply, '.')
	reply = strconv.AppendInt(reply, time.Now().UnixNano(), 10)
	reply = append(reply, ".0"...)
	return benchMsg{subject: d.subjects[actor], reply: string(reply), data: d.data}
}

// handle hands n more deliveries to Handle, round robin over the actors.
// The deliveries are made (and published) ahead, with the timer stopped.
func (d *deliveries) handle(b *testing.B, s *snapshotter.Snapshotter, n int) {
	for i := range n {
		if d.next == len(d.msgs) {
			b.StopTimer()
			d.make(b, min(n-i, 1<<16))
			b.StartTimer()
		}
		s.Handle(&d.msgs[d.next])
		d.next++
	}
}

func (d *deliveries) make(b *testing.B, k int) {
	d.msgs, d.next = d.msgs[:0], 0
	var futures []jetstream.PubAckFuture
	for j := range k {
		if d.js == nil {
			continue
		}
		f, err := d.js.PublishAsync(d.subjects[(d.handled+j)%d.actors], d.data)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	for j := range k {
		if d.js == nil {
			d.sseq++
		} else {
			select {
			case ack := <-futures[j].Ok():
				d.sseq = ack.Sequence
			case err := <-futures[j].Err():
				b.Fatal(err)
			}
		}
		d.dseq++
		d.msgs = append(d.msgs, d.msg(d.handled%d.actors))
		d.handled++
	}
}

func waitIdle(b *testing.B, s *snapshotter.Snapshotter) {
	deadline := time.Now().Add(time.Minute)
	for s.Stats().Queued.Load() > 0 {
		if time.Now().After(deadline) {
			b.Fatal("captures still queued after a minute")
		}
		time.Sleep(time.Millisecond)
	}
}

// benchMsg is a delivery whose acknowledgements do nothing.
type benchMsg struct {
	subject, reply string
	data           []byte
}

var errNoMetadata = errors.New("benchMsg: no metadata")

func (m *benchMsg) Metadata() (*jetstream.MsgMetadata, error) { return nil, errNoMetadata }
func (m *benchMsg) Data() []byte                              { return m.data }
func (m *benchMsg) Headers() nats.Header                      { return nil }
func (m *benchMsg) Subject() string                           { return m.subject }
func (m *benchMsg) Reply() string                             { return m.reply }
func (m *benchMsg) Ack() error                                { return nil }
func (m *benchMsg) DoubleAck(context.Context) error           { return nil }
func (m *benchMsg) Nak() error                                { return nil }
func (m *benchMsg) NakWithDelay(time.Duration) error          { return nil }
func (m *benchMsg) InProgress() error                         { return nil }
func (m *benchMsg) Term() error                               { return nil }
func (m *benchMsg) TermWithReason(string) error               { return nil }

// TestTallyMemory checks that TallyMemory measures something sensible: a
// tally, a key and a map slot cost more than 48 bytes and far less than a
// kilobyte.
func TestTallyMemory(t *testing.T) {
	got := snapshotter.TallyMemory(200_000, func(i int) string { return fmt.Sprintf("account.%d", i) })
	if got < 48 || got > 1024 {
		t.Fatalf("TallyMemory = %.1f bytes per actor, want 48..1024", got)
	}
	t.Logf("%.1f bytes per tracked actor", got)
}
