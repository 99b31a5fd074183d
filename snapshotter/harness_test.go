package snapshotter_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// env is a real nats-server with the EVENTS and SNAPSHOTS streams.
type env struct {
	t        *testing.T
	srv      *server.Server
	storeDir string
	port     int
	nc       *nats.Conn
	js       jetstream.JetStream
	scripts  string // directory of reducers
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, storeDir: t.TempDir(), port: -1, scripts: t.TempDir()}
	e.start()
	t.Cleanup(func() { e.nc.Close(); e.srv.Shutdown() })
	ctx := context.Background()
	if err := consumer.EnsureEventStream(ctx, e.js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	if err := snapshotter.EnsureSnapshotStream(ctx, e.js, snapshotter.StreamConfig{Keep: 100000}); err != nil {
		t.Fatal(err)
	}
	e.script("account", "testdata/probe.js")
	return e
}

func (e *env) start() {
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = e.port, true, e.storeDir
	e.srv = natstest.RunServer(&opts)
	e.port = e.srv.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(e.srv.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		e.t.Fatal(err)
	}
	e.nc = nc
	e.js, _ = jetstream.New(nc)
}

// script copies a reducer file into the scripts directory as <typ>.js.
func (e *env) script(typ, file string) {
	e.t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.scripts, typ+".js"), src, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// publish publishes events; each is subject and type. It waits for all acks.
func (e *env) publish(subjects []string, types []string) {
	e.t.Helper()
	if err := e.tryPublish(subjects, types); err != nil {
		e.t.Fatal(err)
	}
}

// tryPublish is publish for other goroutines than the test's.
func (e *env) tryPublish(subjects []string, types []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const window = 2000
	for start := 0; start < len(subjects); start += window {
		end := min(start+window, len(subjects))
		futures := make([]jetstream.PubAckFuture, 0, end-start)
		for i := start; i < end; i++ {
			data, _ := json.Marshal(map[string]any{"type": types[i], "i": i})
			msg := &nats.Msg{Subject: subjects[i], Data: data, Header: nats.Header{"Trace-Id": {strconv.Itoa(i)}}}
			f, err := e.js.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return fmt.Errorf("publish timed out")
			}
		}
	}
	return nil
}

// jetsnap is one running jetsnap pipeline, in process.
type jetsnap struct {
	cancel  context.CancelFunc
	done    chan struct{}
	nc      *nats.Conn
	snap    *snapshotter.Snapshotter
	scripts *scripting.Registry
	stopped bool
}

type options struct {
	strategy snapshotter.Strategy
	workers  int
	ackWait  time.Duration
	buffer   int64 // Config.BufferBytes
	limits   scripting.Limits
	extra    []snapshotter.Option
	shutdown time.Duration // Config.ShutdownTimeout, default 5s
	ackMode  consumer.AckMode
}

func defaults() options {
	return options{strategy: snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500}}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// run starts jetsnap on its own connection, as a separate process would.
func (e *env) run(o options) *jetsnap {
	e.t.Helper()
	log := testLogger(e.t)
	nc, err := nats.Connect(e.srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	scripts, err := scripting.Load(e.scripts, log)
	if err != nil {
		e.t.Fatal(err)
	}
	pattern := snapshotter.MustPattern("events.{type}.{id}")
	snap, err := snapshotter.New(snapshotter.Config{
		Pattern:         pattern,
		Strategy:        o.strategy,
		Workers:         max(o.workers, 2),
		AckWait:         o.ackWait,
		BufferBytes:     o.buffer,
		Limits:          o.limits,
		ShutdownTimeout: cmp.Or(o.shutdown, 5*time.Second),
	}, nc, js, scripts, log, o.extra...)
	if err != nil {
		e.t.Fatal(err)
	}
	cons := consumer.New(consumer.Config{Stream: "EVENTS", Durable: "jetsnap", Filter: pattern.Filter(), AckWait: o.ackWait,
		AckMode: o.ackMode, InfoInterval: 500 * time.Millisecond, OnRebind: func() { snap.Reset("rebound") }, OnReset: snap.Rewind, OnSessionEnd: snap.Flush}, js, log)
	ctx, cancel := context.WithCancel(context.Background())
	j := &jetsnap{cancel: cancel, done: make(chan struct{}), nc: nc, snap: snap, scripts: scripts}
	var wg sync.WaitGroup
	wg.Go(func() { _ = scripts.Watch(ctx) })
	wg.Go(func() { _ = snap.Run(ctx) })
	wg.Go(func() {
		if err := cons.Run(ctx, snap.Handle); err != nil {
			e.t.Error(err)
		}
	})
	go func() { wg.Wait(); close(j.done) }()
	e.t.Cleanup(j.stop)
	return j
}

// stop shuts jetsnap down gracefully.
func (j *jetsnap) stop() {
	if j.stopped {
		return
	}
	j.stopped = true
	j.cancel()
	<-j.done
	_ = j.nc.Drain()
}

// kill stops jetsnap abruptly: the connection goes first, so nothing in
// flight is acknowledged, as with kill -9.
func (j *jetsnap) kill() {
	if j.stopped {
		return
	}
	j.stopped = true
	j.nc.Close()
	j.cancel()
	<-j.done
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedEvent is an event as the reference fold sees it.
type storedEvent struct {
	seq uint64
	typ string
}

// allEvents reads the EVENTS stream, grouped by actor in sequence order.
func (e *env) allEvents() map[string][]storedEvent {
	e.t.Helper()
	out := make(map[string][]storedEvent)
	e.readAll("EVENTS", "events.>", func(m jetstream.Msg, seq uint64) {
		p := snapshotter.MustPattern("events.{type}.{id}")
		typ, id, _, ok := p.Match(m.Subject())
		if !ok {
			return
		}
		var body struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(m.Data(), &body)
		out[typ+"."+id] = append(out[typ+"."+id], storedEvent{seq: seq, typ: body.Type})
	})
	return out
}

// allSnapshots reads every snapshot kept, grouped by actor in stream order.
func (e *env) allSnapshots() map[string][]snapshotter.Snapshot {
	e.t.Helper()
	out := make(map[string][]snapshotter.Snapshot)
	e.readAll("SNAPSHOTS", "snapshots.>", func(m jetstream.Msg, seq uint64) {
		h := m.Headers()
		v, _ := strconv.ParseUint(h.Get(snapshotter.HeaderVersion), 10, 64)
		l, _ := strconv.ParseUint(h.Get(snapshotter.HeaderLastSeq), 10, 64)
		actor := h.Get(snapshotter.HeaderActor)
		if actor == "" {
			return // a forget marker
		}
		out[actor] = append(out[actor], snapshotter.Snapshot{
			Actor: actor, State: slices.Clone(m.Data()), Version: v, LastSeq: l,
			Reducer: h.Get(snapshotter.HeaderReducer), Seq: seq,
		})
	})
	return out
}

func (e *env) readAll(stream, filter string, fn func(jetstream.Msg, uint64)) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = s.DeleteConsumer(context.Background(), c.CachedInfo().Name) }()
	for {
		batch, err := c.FetchNoWait(5000)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		var last uint64
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			fn(m, md.Sequence.Stream)
			last = md.Sequence.Stream
			n++
		}
		if batch.Error() != nil {
			e.t.Fatal(batch.Error())
		}
		if last >= info.State.LastSeq || n == 0 {
			info, _ = s.Info(ctx)
			if last >= info.State.LastSeq {
				return
			}
		}
	}
}

// probeState is the state of testdata/probe.js.
type probeState struct {
	Actor  string         `json:"actor"`
	Gen    int            `json:"gen"` // 2 from probe2.js
	N      uint64         `json:"n"`
	SeqSum uint64         `json:"seqSum"`
	Last   uint64         `json:"last"`
	Bad    int            `json:"bad"`
	Types  map[string]int `json:"types"`
}

// latestProbe returns the state of actor's latest snapshot, made by probe.js.
func (e *env) latestProbe(actor string) probeState {
	e.t.Helper()
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	snap, err := r.Latest(context.Background(), actor)
	if err != nil {
		e.t.Fatal(err)
	}
	var s probeState
	if err := json.Unmarshal(snap.State, &s); err != nil {
		e.t.Fatalf("%s version %d: %v", actor, snap.Version, err)
	}
	return s
}

// referenceFold is probe.js in Go.
func referenceFold(actor string, events []storedEvent) probeState {
	s := probeState{Actor: actor, Types: map[string]int{}}
	for _, e := range events {
		s.N++
		s.SeqSum += e.seq
		s.Last = e.seq
		s.Types[e.typ]++
	}
	return s
}

// placements is the list of versions at which an actor with these events
// gets snapshots under st (no MaxAge).
func placements(st snapshotter.Strategy, events []storedEvent) []uint64 {
	var out []uint64
	var s uint64
	for i, e := range events {
		v := uint64(i + 1)
		if st.Due(v, s, e.typ, false) {
			out = append(out, v)
			s = v
		}
	}
	return out
}

// check is the invariant checker: every snapshot equals the reference fold
// of exactly its actor's events up to its Jetsnap-Last-Seq, its version is
// their count, versions strictly increase, and each actor has exactly the
// snapshots the strategy gives. It returns the number of snapshots checked.
func (e *env) check(st snapshotter.Strategy) int {
	e.t.Helper()
	return e.checkWith(st, true, 0)
}

// checkWith is check; exact=false leaves out the placement check (for
// captures on request), and gen > 0 says snapshots by probe2.js or
// probe3.js (Jetsnap-Reducer account@r2, @r3) carry their revision in gen.
func (e *env) checkWith(st snapshotter.Strategy, exact bool, gen int) int {
	e.t.Helper()
	events := e.allEvents()
	snaps := e.allSnapshots()
	checked := 0
	for actor, evs := range events {
		want := placements(st, evs)
		var got []uint64
		for _, snap := range snaps[actor] {
			got = append(got, snap.Version)
			i, found := slices.BinarySearchFunc(evs, snap.LastSeq, func(e storedEvent, seq uint64) int { return int(e.seq) - int(seq) })
			if !found {
				e.t.Errorf("%s: snapshot v%d has Last-Seq %d, not an event of the actor", actor, snap.Version, snap.LastSeq)
				continue
			}
			if uint64(i+1) != snap.Version {
				e.t.Errorf("%s: snapshot v%d ends at seq %d, which is the actor's event #%d", actor, snap.Version, snap.LastSeq, i+1)
			}
			var got probeState
			if err := json.Unmarshal(snap.State, &got); err != nil {
				e.t.Errorf("%s: snapshot v%d: %v", actor, snap.Version, err)
				continue
			}
			ref := referenceFold(actor, evs[:i+1])
			if _, rev, ok := strings.Cut(snap.Reducer, "@r"); ok && gen > 0 {
				ref.Gen, _ = strconv.Atoi(rev) // probe2.js and probe3.js keep their revision in gen
			}
			if fmt.Sprint(got) != fmt.Sprint(ref) {
				e.t.Errorf("%s: snapshot v%d = %+v, reference fold = %+v", actor, snap.Version, got, ref)
			}
			checked++
		}
		if exact && !slices.Equal(got, want) {
			e.t.Errorf("%s: snapshot versions %v, strategy gives %v", actor, got, want)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				e.t.Errorf("%s: snapshot versions do not strictly increase: %v", actor, got)
				break
			}
		}
	}
	for actor := range snaps {
		if _, ok := events[actor]; !ok {
			e.t.Errorf("%s: snapshots of an actor with no events", actor)
		}
	}
	return checked
}

// settled reports whether every actor's latest snapshot is its last
// placement, so the pipeline has caught up.
func (e *env) settled(st snapshotter.Strategy, events map[string][]storedEvent) func() bool {
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	want := make(map[string]uint64)
	for actor, evs := range events {
		if p := placements(st, evs); len(p) > 0 {
			want[actor] = p[len(p)-1]
		}
	}
	var mu sync.Mutex // the cleanup may run while a waitFor still calls
	e.t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if !e.t.Failed() || len(want) == 0 {
			return
		}
		behind := slices.Sorted(maps.Keys(want))
		e.t.Logf("%d actors not caught up; the first of them:", len(behind))
		for _, actor := range behind[:min(len(behind), 5)] {
			snap, err := r.Latest(context.Background(), actor)
			e.t.Logf("  %s: want version %d, latest snapshot version %d (err %v), %d events in the stream",
				actor, want[actor], snap.Version, err, len(events[actor]))
		}
	})
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		for actor, v := range want {
			snap, err := r.Latest(context.Background(), actor)
			if err != nil || snap.Version < v {
				return false
			}
			delete(want, actor)
		}
		return true
	}
}

// idle waits until every event is acknowledged and the snapshots have
// caught up with the stream.
func (e *env) idle(st snapshotter.Strategy, d time.Duration) {
	e.t.Helper()
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("consumer: %s", e.consumerState())
		}
	})
	waitFor(e.t, d, "snapshots to catch up", e.settled(st, e.allEvents()))
	cons, err := e.js.Consumer(context.Background(), "EVENTS", "jetsnap")
	if err != nil {
		e.t.Fatal(err)
	}
	waitFor(e.t, d, "every event acknowledged", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// consumerState describes the durable consumer, for failure messages.
func (e *env) consumerState() string {
	cons, err := e.js.Consumer(context.Background(), "EVENTS", "jetsnap")
	if err != nil {
		return err.Error()
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("pending %d, ack pending %d, redelivered %d, delivered %+v, ack floor %+v, waiting pulls %d",
		info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered, info.AckFloor, info.NumWaiting)
}

// workload makes n events over actors, interleaved, with random types.
func workload(actors, perActor int, types []string, seed int) ([]string, []string) {
	subjects := make([]string, 0, actors*perActor)
	kinds := make([]string, 0, actors*perActor)
	x := uint32(seed*2654435761 + 1)
	for i := 0; i < perActor; i++ {
		for a := 0; a < actors; a++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			subjects = append(subjects, fmt.Sprintf("events.account.%d", a))
			kinds = append(kinds, types[int(x)%len(types)])
		}
	}
	return subjects, kinds
}
