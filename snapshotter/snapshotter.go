// Package snapshotter owns jetsnap's core: per-actor tallies, the snapshot
// strategy, the capture workers that fold events through reducers, the
// publishing of snapshots, and the reader API.
//
// Data flows one way. The consumer hands every event to Handle, which runs
// on one goroutine: it counts the event into its actor's tally and, when the
// strategy says the actor is due, queues a capture. A fixed pool of workers,
// one scripting.Runtime each, runs the captures, an actor's one at a time
// and in order (captureQueue): take the actor's last snapshot (kept from
// its previous capture, bases.go, or read from the stream) and the events
// after it (buffered, or read), fold, publish. While the consumer keeps
// up, an actor's buffered events are also folded ahead of its placement, 32
// at a time, in the same queue (foldahead.go), so that its capture folds
// only the last few. An event is acknowledged once tallied, except an event
// that makes its actor due: that one is acknowledged after its snapshot is
// published, so a crash never loses a due snapshot.
//
// Tallies are soft state. An actor seen for the first time, or after the
// consumer's deliveries stopped being contiguous (a restart, a redelivery,
// another jetsnap on the same durable), is counted again from its last
// snapshot and the EVENTS stream, so snapshot versions and placement depend
// only on the stream's content. With batched acks (Config.Exclusive) a
// redelivery is counted so, with its actor's next event, but leaves the
// other actors' tallies current; and the redelivery of an event still in
// its actor's tail (counted after the last placement, its ack held back)
// is acknowledged from memory. The first reads for new actors are made
// ahead, many at once, while the deliveries behind them wait in order.
// After a restart, new actors take their events since their snapshot from
// one read of the stream around the first such delivery (window.go),
// instead of one read per actor.
package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config holds the snapshotter's tunables.
type Config struct {
	Pattern        Pattern  // event subjects, e.g. events.{type}.{id}
	Strategy       Strategy // when actors are due
	EventStream    string   // default EVENTS
	SnapshotStream string   // default SNAPSHOTS
	SnapshotPrefix string   // default snapshots
	// Workers are the captures in flight: reading, folding, publishing;
	// default 16. At most Folds of them fold at once (default
	// runtime.GOMAXPROCS(0), at most Workers): a fold only uses the CPU,
	// and more folds than CPUs take it from the consumer and the server,
	// while the workers beyond them wait on reads and publishes, so that
	// a wave of captures does not queue behind round trips.
	Workers         int
	Folds           int
	QueueSize       int // captures queued before Handle blocks, whatever Workers is; default 1024
	AckWait         time.Duration
	ShutdownTimeout time.Duration // how long Run waits for queued captures at the end, default 10s
	BufferBytes     int64         // memory for events buffered for captures, up to a quarter of it for kept bases and half for a catch-up window; default 64 MiB; 0 in the zero Config
	Limits          scripting.Limits
	// Exclusive: every delivery of the durable comes to this process
	// until the next Rewind, as with consumer.AckBatch, whose acker ends
	// a session at the first delivery that went elsewhere. A redelivery
	// then does not mean that newer events went to another process.
	Exclusive bool
}

// WithDefaults returns c with the defaults New applies to its zero fields.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.EventStream == "" {
		c.EventStream = "EVENTS"
	}
	if c.SnapshotStream == "" {
		c.SnapshotStream = "SNAPSHOTS"
	}
	if c.SnapshotPrefix == "" {
		c.SnapshotPrefix = "snapshots"
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Folds <= 0 {
		c.Folds = runtime.GOMAXPROCS(0)
	}
	c.Folds = min(c.Folds, c.Workers)
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = 64 << 20
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Pattern.tokens == nil {
		return errors.New("snapshotter: no subject pattern")
	}
	return c.Strategy.Validate()
}

// Stats counts what the snapshotter did. All fields are safe to read
// concurrently.
type Stats struct {
	Consumed      atomic.Uint64 // events handed to Handle
	Unmatched     atomic.Uint64 // events whose subject does not fit the pattern
	Redelivered   atomic.Uint64 // deliveries that were not an event's first
	NoScript      atomic.Uint64 // due captures skipped: no reducer for the actor type
	Published     atomic.Uint64 // snapshots stored
	UpToDate      atomic.Uint64 // captures that found a snapshot at or after their version
	ReducerErrors atomic.Uint64 // captures whose fold failed
	CaptureErrors atomic.Uint64 // captures that failed for another reason
	Invalidated   atomic.Uint64 // bases ignored because the reducer changed
	Resyncs       atomic.Uint64 // tallies counted again from the streams
	Conflicts     atomic.Uint64 // publishes refused because the subject changed since the capture took its base (a newer snapshot, a purge)
	ReplayEvents  atomic.Uint64 // events folded by captures and folds made ahead
	StreamReads   atomic.Uint64 // events captures read back from the stream (not from memory)
	WindowReads   atomic.Uint64 // events read into catch-up windows (window.go)
	BaseReads     atomic.Uint64 // captures and folds made ahead that read their base from the stream (none kept, bases.go)
	FoldsAhead    atomic.Uint64 // folds made ahead of a placement, kept as the next capture's base (foldahead.go)
	Evictions     atomic.Uint64 // actor buffers dropped to stay within BufferBytes
	Buffered      atomic.Int64  // bytes of events buffered for captures and of kept bases
	Tracked       atomic.Int64  // actors with a tally
	Queued        atomic.Int64  // captures queued or running
	Waiting       atomic.Int64  // deliveries waiting behind reads made ahead for new actors
	Running       atomic.Int64  // captures running
	Ahead         atomic.Int64  // folds made ahead queued or running (not in Queued)
	Mismatches    atomic.Uint64 // snapshots found not to match the EVENTS stream (recreated stream)
	Resets        atomic.Uint64 // times every tally was dropped (consumer re-bound, stream mismatch)
}

// Snapshotter tallies events and captures snapshots. Handle must be called
// from one goroutine at a time; Run runs the capture workers.
type Snapshotter struct {
	cfg     Config
	js      jetstream.JetStream
	store   *store
	drops   *drops // ends reads and publishes in flight when the connection drops
	scripts *scripting.Registry
	log     *slog.Logger
	stats   Stats
	tel     *telemetry

	mu         sync.Mutex // guards the fields below; Handle and the age sweep hold it
	tallies    map[string]*tally
	lastDseq   uint64 // consumer delivery sequence of the last delivery
	redelivery bool   // the last delivery was a redelivery
	epoch      uint32 // bumped whenever deliveries stop being contiguous
	keyBuf     []byte
	closed     bool
	noScript   map[string]bool // actor types already reported without a reducer
	captures   *captureQueue
	folding    chan struct{} // a token per fold running (Config.Folds)
	waiting    []delivery    // deliveries waiting behind reads made ahead (ahead.go), from waitHead on
	waitHead   int
	reading    map[string]bool // actors with reads made ahead, not handled yet

	readers     sync.WaitGroup  // reads made ahead
	readCtx     context.Context // ends them at close
	cancelReads context.CancelFunc

	gen        atomic.Uint64 // bumped by a reset; older jobs are dropped
	resetAsked atomic.Bool   // a worker found the stream changed: reset at the next event

	bases bases // the last snapshot of actors, for their next capture (bases.go)

	window    *window // events around the first deliveries after a restart (window.go)
	windowGen uint64  // 1 + s.gen when a window was last tried

	failedMu sync.Mutex
	failed   map[string]job // the last capture of each actor whose reducer failed
}

// tally is the soft state of one actor.
type tally struct {
	lastSeq uint64 // EVENTS sequence of the last event counted
	version uint64 // the actor's version after that event
	snap    uint64 // version of the last placement (snapshot due)
	oldest  int64  // unix ns of the oldest event after snap (MaxAge only)
	epoch   uint32 // delivery epoch of the last update
	// tail holds the events after snap, in order, while every one of them
	// came through the hot path; nil when they must be read from the stream.
	tail *buffer
}

// New builds a Snapshotter. It starts nothing: call Run, then feed Handle.
// Options add telemetry (WithMeterProvider, WithTracerProvider).
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, scripts *scripting.Registry, log *slog.Logger, opts ...Option) (*Snapshotter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Snapshotter{
		cfg:      cfg,
		js:       js,
		store:    &store{nc: nc, events: cfg.EventStream, snaps: cfg.SnapshotStream},
		drops:    newDrops(),
		scripts:  scripts,
		log:      log,
		tallies:  make(map[string]*tally),
		noScript: make(map[string]bool),
		reading:  make(map[string]bool),
	}
	s.readCtx, s.cancelReads = context.WithCancel(context.Background())
	var err error
	if s.tel, err = newTelemetry(o, &s.stats); err != nil {
		return nil, fmt.Errorf("snapshotter: metrics: %w", err)
	}
	s.captures = newCaptureQueue(cfg.QueueSize)
	s.folding = make(chan struct{}, cfg.Folds)
	s.failed = make(map[string]job)
	scripts.OnChange(s.reducerChanged)
	return s, nil
}

// Stats returns the snapshotter's counters.
func (s *Snapshotter) Stats() *Stats { return &s.stats }

// Run runs the capture workers (and the MaxAge sweep) until ctx ends. Then it
// stops taking events, finishes the queued captures within
// Config.ShutdownTimeout, abandons the rest (their events are not
// acknowledged, so they are redelivered) and returns.
func (s *Snapshotter) Run(ctx context.Context) error {
	jobCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	defer s.drops.watch(s.store.nc)()
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		rt := scripting.NewRuntime(s.cfg.Limits)
		wg.Go(func() { s.work(jobCtx, ctx, rt) })
	}
	if s.cfg.Strategy.UsesAge() {
		wg.Go(func() { s.sweep(ctx) })
	}
	<-ctx.Done()

	s.mu.Lock()
	s.closed = true
	s.captures.close()
	s.drain(false) // drops the deliveries waiting behind reads: delivered again
	s.mu.Unlock()
	s.cancelReads()
	s.readers.Wait()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.log.Warn("shutdown timeout: abandoning queued captures; their events will be redelivered",
			"queued", s.stats.Queued.Load(), "timeout", s.cfg.ShutdownTimeout)
		abandon()
		<-done
	}
	return nil
}

// event is what Handle needs of one delivered message.
type event struct {
	msg     jetstream.Msg
	typ, id string
	token   string // the {event} token, if the pattern has one
	seq     uint64
	time    int64  // unix ns
	pending uint64 // events of the stream not yet delivered to the consumer
}

// Handle counts one delivered event and acknowledges it, or queues its
// actor's capture and leaves the acknowledgement to the capture. It must not
// be called concurrently; it blocks while the capture queues are full. An
// event of an actor new to this process, and those delivered after it, may
// be counted after Handle returns, in order, once that actor's first reads
// of the streams are back (ahead.go).
func (s *Snapshotter) Handle(msg jetstream.Msg) {
	s.stats.Consumed.Add(1)
	r, ok := consumer.ParseReply(msg.Reply())
	if !ok {
		s.log.Error("message is not a JetStream delivery; ignored", "subject", msg.Subject(), "reply", msg.Reply())
		return
	}
	if r.Delivered > 1 {
		s.stats.Redelivered.Add(1)
	}
	typ, id, token, ok := s.cfg.Pattern.Match(msg.Subject())
	if !ok {
		if n := s.stats.Unmatched.Add(1); n&(n-1) == 0 { // 1, 2, 4, 8, ...: rate-limited
			s.log.Warn("event subject does not fit JETSNAP_SUBJECT_PATTERN; acknowledged without a snapshot",
				"subject", msg.Subject(), "pattern", s.cfg.Pattern.String(), "seq", r.StreamSeq, "count", n)
		}
		s.ack(msg)
		return
	}
	d := delivery{
		ev:   event{msg: msg, typ: typ, id: id, token: token, seq: r.StreamSeq, time: r.Timestamp, pending: r.Pending},
		dseq: r.ConsumerSeq, delivered: r.Delivered,
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return // not tallied, not acknowledged: redelivered after a restart
	}
	s.keyBuf = append(append(append(s.keyBuf[:0], typ...), '.'), id...)
	if s.waitHead == len(s.waiting) {
		if t := s.tallies[string(s.keyBuf)]; t != nil {
			s.handle(d, t)
			return
		}
	}
	s.wait(d)
}

// handle counts delivery d, in the order deliveries came; t is its actor's
// tally, nil if none, and s.keyBuf its key. The caller holds s.mu.
func (s *Snapshotter) handle(d delivery, t *tally) {
	ev := d.ev
	if s.resetAsked.Load() && s.resetAsked.CompareAndSwap(true, false) {
		s.resetLocked("the EVENTS stream no longer matches a snapshot")
		t = nil
	}
	// First deliveries come in stream order, so two of them with
	// consecutive delivery sequences have no event of the stream between
	// them that went elsewhere. A redelivery is an older event: newer ones
	// may have gone elsewhere before it, so it ends the epoch for itself
	// and for the delivery after it; not when the durable's deliveries are
	// all this process's (Exclusive), where a redelivery only comes back
	// here. lastDseq is the last sequence, not the highest: a durable
	// deleted and created again, unnoticed, numbers its deliveries from 1
	// again.
	contiguous := d.dseq == s.lastDseq+1 && (s.cfg.Exclusive || d.delivered == 1 && !s.redelivery)
	s.lastDseq, s.redelivery = d.dseq, d.delivered > 1
	if !contiguous {
		s.epoch++
	}
	if s.window != nil {
		s.passWindow(ev.seq)
	}
	if t != nil && t.epoch == s.epoch && ev.seq > t.lastSeq && d.delivered == 1 {
		// Hot path: every event of this actor since its last update was
		// delivered to us, in order, so this one is the next version. (A
		// redelivery is counted against the stream, unless its actor's
		// tail holds it (below): events of its actor handed back before
		// it may come again after it.)
		t.version++
		t.lastSeq = ev.seq
		s.buffer(t, ev)
		s.evaluate(t, ev, nil)
		return
	}
	if t != nil && t.epoch == s.epoch && d.delivered > 1 && t.tail.holds(ev.seq, t.lastSeq) {
		// A redelivery of an event counted in this epoch after its actor's
		// last placement (its acknowledgement was held back, by a slow
		// capture before it, past AckWait): it is not a placement, and
		// nothing is left to do but acknowledge it. redelivered would
		// read the streams to find that out.
		s.ack(ev.msg)
		return
	}
	key := d.key
	if key == "" {
		key = string(s.keyBuf)
	}
	if err := s.resync(key, t, ev, d.ahead, d.delivered == 1); err != nil {
		s.log.Warn("could not count event against the streams; it will be redelivered",
			"actor", key, "seq", ev.seq, "err", err)
		s.nak(ev.msg)
		if s.window != nil {
			// A delivery not counted: the ones after it no longer show
			// every event past the window's end (window.go).
			s.window.extend = false
		}
	}
}

// evaluate applies the strategy after t counted ev, and either acknowledges
// ev or queues a capture. key is the actor key when already built.
func (s *Snapshotter) evaluate(t *tally, ev event, key *string) {
	st := &s.cfg.Strategy
	var evType string
	if st.UsesTypes() {
		evType = eventType(ev.token, ev.msg.Headers(), ev.msg.Data())
	}
	aged := false
	if st.UsesAge() {
		if t.oldest == 0 {
			t.oldest = ev.time
		}
		aged = time.Now().UnixNano()-t.oldest >= int64(st.MaxAge)
	}
	if !st.Due(t.version, t.snap, evType, aged) {
		s.ack(ev.msg)
		s.foldAhead(t, ev, key)
		return
	}
	t.snap, t.oldest = t.version, 0
	k := ""
	if key != nil {
		k = *key
	} else {
		k = string(s.keyBuf)
	}
	tail := t.tail
	t.tail = emptyTail
	s.queue(job{key: k, typ: ev.typ, id: ev.id, version: t.version, seq: ev.seq, msg: ev.msg, tail: tail})
}

// queue hands a capture to the workers; one actor's captures run in order
// (captureQueue). The caller holds s.mu, and has checked s.closed.
func (s *Snapshotter) queue(j job) {
	if _, ok := s.scripts.Lookup(j.typ); !ok {
		s.stats.NoScript.Add(1)
		if !s.noScript[j.typ] {
			s.noScript[j.typ] = true
			s.log.Warn("no reducer for actor type: events are counted but not snapshotted; add the script to JETSNAP_SCRIPTS_DIR",
				"type", j.typ, "file", j.typ+".js")
		}
		s.release(j.tail)
		s.ack(j.msg)
		return
	}
	j.queued = time.Now()
	j.gen = s.gen.Load()
	s.stats.Queued.Add(1)
	if !s.captures.put(j) { // not after Run closed it, as the caller checked
		s.stats.Queued.Add(-1)
		s.release(j.tail)
	}
}

func (s *Snapshotter) ack(msg jetstream.Msg) {
	if msg == nil {
		return
	}
	if err := msg.Ack(); err != nil {
		s.log.Debug("ack failed; the event will be redelivered", "subject", msg.Subject(), "err", err)
	}
}

func (s *Snapshotter) nak(msg jetstream.Msg) {
	if msg == nil {
		return
	}
	if err := msg.NakWithDelay(time.Second); err != nil {
		s.log.Debug("nak failed; the event will be redelivered after AckWait", "subject", msg.Subject(), "err", err)
	}
}

// ioTimeout bounds the stream reads that Handle makes while it holds the lock.
const ioTimeout = 10 * time.Second

// resync counts ev against the streams when the tally cannot be trusted to
// be up to date: the actor is new to this process (t == nil), or deliveries
// were not contiguous since its last update, or ev is a redelivery. It
// installs the tally; firstDelivery: ev is not a redelivery (see install).
func (s *Snapshotter) resync(key string, t *tally, ev event, ahead *readAhead, firstDelivery bool) error {
	ctx, cancel := s.drops.bind(context.Background(), ioTimeout)
	defer cancel()
	s.stats.Resyncs.Add(1)
	filter := s.cfg.Pattern.ActorFilter(ev.typ, ev.id)
	fresh := t == nil
	var first *nextResult
	if fresh {
		t = &tally{}
		a := s.firstReads(ctx, ahead, key, filter)
		switch {
		case a.snapErr == nil:
			if err := s.checkAnchor(ctx, key, a.snap, a.anchor); errors.Is(err, ErrStreamMismatch) {
				break // counted and purged: count the actor from what the stream holds
			} else if err != nil {
				return err
			}
			t.lastSeq, t.version, t.snap = a.snap.LastSeq, a.snap.Version, a.snap.Version
			s.keepBase(key, a.snap, s.gen.Load()) // read already: the base of its next capture
		case !errors.Is(a.snapErr, ErrNoSnapshot):
			return a.snapErr
		}
		if a.nextFrom == t.lastSeq+1 {
			first = &a.next
		}
	}
	// The events after the last placement did not all come through the hot
	// path: captures read them from the stream until the next placement.
	s.release(t.tail)
	t.tail = nil
	if ev.seq <= t.lastSeq {
		if err := s.redelivered(ctx, key, filter, t, ev); err != nil {
			return err
		}
		s.install(key, t, fresh, firstDelivery)
		return nil
	}
	if fresh && first != nil && first.err == nil && first.msg.Seq < ev.seq {
		// Events since the snapshot, delivered before this process: the
		// first capture needs them back, and so may every actor's.
		s.openWindow(ev.seq, firstDelivery)
		if evs, ok := s.fromWindow(key, first.msg.Seq, ev.seq-1, firstDelivery); ok && len(evs) > 0 && evs[0].Seq == first.msg.Seq {
			s.countWindowed(key, t, ev, evs)
			s.install(key, t, fresh, firstDelivery)
			s.evaluate(t, ev, &key)
			return nil
		}
	}
	k, err := s.countUpTo(ctx, filter, t.lastSeq+1, ev.seq, first)
	if err != nil {
		return err
	}
	if k == 0 {
		return fmt.Errorf("event seq %d of %s is no longer in stream %s", ev.seq, key, s.cfg.EventStream)
	}
	if skipped := k - 1; skipped > 0 {
		// Events delivered elsewhere, or before a restart: find the
		// placements among them and capture those not yet published.
		st := &s.cfg.Strategy
		if st.UsesTypes() || st.Next(t.snap) <= t.version+skipped {
			// Work on a copy: the tally changes, and the captures are
			// queued, only once the read matched the count.
			var seen uint64
			snap := t.snap
			var due []job
			_, err := s.store.scan(ctx, filter, t.lastSeq+1, ev.seq-1, int(skipped), func(sm storedMsg) error {
				seen++
				v := t.version + seen
				if st.Due(v, snap, eventType(s.token(sm.Subject), sm.Header, sm.Data), false) {
					snap = v
					due = append(due, job{key: key, typ: ev.typ, id: ev.id, version: v, seq: sm.Seq})
				}
				return nil
			})
			if err != nil {
				return err
			}
			if seen != skipped {
				return fmt.Errorf("stream %s changed while counting %s: %d events expected before seq %d, %d read", s.cfg.EventStream, key, skipped, ev.seq, seen)
			}
			t.snap = snap
			for _, j := range due {
				s.queue(j)
			}
		}
		t.version += skipped
	}
	// With nothing between the last placement and this event (a new actor,
	// or the first event after a snapshot), the tail can start here.
	startTail := k == 1 && t.version == t.snap
	t.version++
	t.lastSeq = ev.seq
	if startTail {
		t.tail = emptyTail
		s.buffer(t, ev)
	}
	s.install(key, t, fresh, firstDelivery)
	s.evaluate(t, ev, &key)
	return nil
}

// countUpTo counts the actor's events in [from, to], where to is the event
// being handled. Mostly there are few: none before it (a new actor, or the
// first event after its snapshot), or the handful that went to another
// process sharing the durable. One read shows them, up to countInOneRead;
// counting more costs three. early, if not nil, is a read of the first
// event at or after from, made already.
func (s *Snapshotter) countUpTo(ctx context.Context, filter string, from, to uint64, early *nextResult) (uint64, error) {
	if early != nil {
		first, err := early.msg, early.err
		switch {
		case errors.Is(err, errNotFound):
			return 0, nil
		case err != nil:
			return 0, err
		case first.Seq == to:
			return 1, nil
		case first.Seq > to:
			return 0, nil
		}
	} else {
		var last uint64
		n, err := s.store.scan(ctx, filter, from, to, countInOneRead, func(sm storedMsg) error {
			last = sm.Seq
			return nil
		})
		if err != nil {
			return 0, err
		}
		if last == to || n < countInOneRead {
			// Every event in [from, to] was read: the stream only grows
			// at its end, after to.
			return uint64(n), nil
		}
	}
	return s.store.count(ctx, filter, from, to)
}

// countInOneRead is how many events countUpTo reads to count them.
const countInOneRead = 16

// reducerChanged re-queues the failed captures of an actor type whose
// reducer was just added or changed, so that once a broken reducer is fixed
// its actors catch up without waiting for new events.
func (s *Snapshotter) reducerChanged(actorType string, _, script *scripting.Script) {
	if script == nil {
		return
	}
	s.failedMu.Lock()
	var retry []job
	for key, j := range s.failed {
		if j.typ == actorType {
			retry = append(retry, j)
			delete(s.failed, key)
		}
	}
	s.failedMu.Unlock()
	if len(retry) == 0 {
		return
	}
	s.log.Info("reducer changed: capturing again the actors it failed on", "type", actorType, "reducer", script.Reducer(), "actors", len(retry))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, j := range retry {
		j.msg, j.tail = nil, nil
		s.queue(j)
	}
}

// Reset drops every tally and every queued capture, so that each actor is
// counted again from its last snapshot and the stream. The consumer calls it
// when it had to bind the durable consumer again (the stream was deleted
// and recreated, or the consumer was deleted). Safe to call while Handle
// is not running.
func (s *Snapshotter) Reset(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWaiting() // none if the consumer flushed at its session's end: else delivered again after the reset
	s.resetLocked(reason)
}

// Flush handles every delivery waiting behind reads made ahead, waiting
// for those reads. The consumer calls it when a session ends, before the
// session's last acks.
func (s *Snapshotter) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drainAll()
}

// Rewind tells Handle that the consumer's delivery sequence starts again at
// 1 (the consumer was reset to its ack floor): events from there on may
// repeat ones already counted, so every actor is checked against the
// stream at its next event, but no tally is dropped. Safe to call while
// Handle is not running.
func (s *Snapshotter) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWaiting() // none if the consumer flushed at its session's end: else delivered again after the reset
	s.lastDseq = 0
	s.epoch++
}

func (s *Snapshotter) resetLocked(reason string) {
	for _, t := range s.tallies {
		s.release(t.tail)
	}
	clear(s.tallies)
	s.dropBases()
	s.dropWindow()
	s.stats.Tracked.Store(0)
	s.stats.Resets.Add(1)
	s.gen.Add(1)
	s.lastDseq = 0
	s.epoch++
	s.log.Warn("every tally dropped; actors are counted again from their snapshots and the stream; captures queued before are dropped unstarted, their events come again",
		"reason", reason, "captures_queued_or_running", s.stats.Queued.Load())
}

// checkAnchor checks that the stream still holds the event a snapshot ends
// at. A snapshot whose event has aged out of the stream (its sequence is
// below the stream's first) is still a valid base: that is what snapshots
// are for. One whose sequence is past the stream's last, or whose
// sequence holds another actor's event, belongs to a stream that was
// deleted and recreated: it is counted, logged and purged, and the actor
// is rebuilt from what the stream holds.
// anchor is the read of the actor's first event at or after snap.LastSeq.
func (s *Snapshotter) checkAnchor(ctx context.Context, key string, snap Snapshot, anchor nextResult) error {
	if snap.LastSeq == 0 {
		return nil
	}
	first, err := anchor.msg, anchor.err
	if err == nil && first.Seq == snap.LastSeq {
		return nil
	}
	if err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	stream, err := s.js.Stream(ctx, s.cfg.EventStream)
	if err != nil {
		return err
	}
	state := stream.CachedInfo().State
	if snap.LastSeq < state.FirstSeq {
		return nil // aged out: a valid base
	}
	s.stats.Mismatches.Add(1)
	s.log.Error("snapshot does not match the EVENTS stream (was it deleted and recreated?): purging the actor's snapshots and rebuilding it from the stream",
		"actor", key, "version", snap.Version, "last_seq", snap.LastSeq, "stream_first_seq", state.FirstSeq, "stream_last_seq", state.LastSeq)
	snaps, err := s.js.Stream(ctx, s.cfg.SnapshotStream)
	if err != nil {
		return err
	}
	if err := snaps.Purge(ctx, jetstream.WithPurgeSubject(s.snapshotSubject(key))); err != nil {
		return fmt.Errorf("purge stale snapshots of %s: %w", key, err)
	}
	return ErrStreamMismatch
}

// install records t as key's tally. After a first delivery it is current:
// it has counted every event of its actor up to the last one delivered.
// After a redelivery it may not be: a newer event of the actor handed back
// (nak) before it is not counted yet, and must not be skipped by the hot
// path; a tally that was current stays so.
func (s *Snapshotter) install(key string, t *tally, fresh, firstDelivery bool) {
	switch {
	case firstDelivery:
		t.epoch = s.epoch
	case fresh:
		t.epoch = s.epoch - 1
	}
	if fresh {
		s.tallies[key] = t
		s.stats.Tracked.Add(1)
	}
}

// redelivered handles an event the tally already counted: a redelivery, or
// a delivery after its actor's snapshot. If it triggers a snapshot that is
// not published yet, the capture is queued again; otherwise it is acked.
func (s *Snapshotter) redelivered(ctx context.Context, key, filter string, t *tally, ev event) error {
	snap, err := s.store.latestSnapshot(ctx, s.snapshotSubject(key))
	if err != nil && !errors.Is(err, ErrNoSnapshot) {
		return err
	}
	if snap.LastSeq >= ev.seq {
		s.ack(ev.msg)
		return nil
	}
	after, err := s.store.count(ctx, filter, ev.seq+1, t.lastSeq)
	if err != nil {
		return err
	}
	if after >= t.version {
		return fmt.Errorf("stream %s does not match the tally of %s", s.cfg.EventStream, key)
	}
	v := t.version - after
	if v <= snap.Version {
		s.ack(ev.msg)
		return nil
	}
	st := &s.cfg.Strategy
	placement := false
	if !st.UsesTypes() {
		p := snap.Version
		for p < v {
			p = st.Next(p)
		}
		placement = p == v
	} else {
		p, seen := snap.Version, snap.Version
		_, err := s.store.scan(ctx, filter, snap.LastSeq+1, ev.seq, int(v-snap.Version), func(sm storedMsg) error {
			seen++
			if st.Due(seen, p, eventType(s.token(sm.Subject), sm.Header, sm.Data), false) {
				p = seen
			}
			return nil
		})
		if err != nil {
			return err
		}
		placement = seen == v && p == v
	}
	if !placement {
		s.ack(ev.msg)
		return nil
	}
	s.queue(job{key: key, typ: ev.typ, id: ev.id, version: v, seq: ev.seq, msg: ev.msg})
	return nil
}

// token returns the {event} token of a subject, if the pattern has one.
func (s *Snapshotter) token(subject string) string {
	_, _, tok, _ := s.cfg.Pattern.Match(subject)
	return tok
}

func (s *Snapshotter) snapshotSubject(key string) string {
	return s.cfg.SnapshotPrefix + "." + key
}

// sweep makes actors due whose oldest unsnapshotted event is MaxAge old,
// checking often enough for a tenth of MaxAge of lateness, with a per-actor
// jitter of up to a tenth of MaxAge so that actors do not all fire at once.
func (s *Snapshotter) sweep(ctx context.Context) {
	maxAge := s.cfg.Strategy.MaxAge
	every := max(maxAge/10, 100*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		for key, t := range s.tallies {
			if t.oldest == 0 || t.version-t.snap < s.cfg.Strategy.MinEvents {
				continue
			}
			h := fnv.New32a()
			_, _ = h.Write([]byte(key))
			jitter := int64(h.Sum32()) % max(int64(maxAge/10), 1)
			if now-t.oldest < int64(maxAge)+jitter {
				continue
			}
			typ, id, _ := SplitActor(key)
			t.snap, t.oldest = t.version, 0
			tail := t.tail
			t.tail = emptyTail
			s.queue(job{key: key, typ: typ, id: id, version: t.version, seq: t.lastSeq, tail: tail})
		}
		s.mu.Unlock()
	}
}
