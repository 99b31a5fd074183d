package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// job is one due capture: the actor's state at version, ending at event seq.
type job struct {
	key, typ, id string
	version      uint64
	seq          uint64
	msg          jetstream.Msg // the triggering event, settled after the capture; nil when none is held
	queued       time.Time
	tail         *buffer // the events since the previous placement (or fold made ahead), when all came through the hot path
	gen          uint64  // the reset generation it was queued in
	ahead        bool    // a fold made ahead (foldahead.go), not a capture
}

var (
	// errUpToDate: a snapshot at or after the job's version already exists.
	errUpToDate = errors.New("snapshot already up to date")
	// ErrStreamMismatch: the EVENTS stream does not hold the events a
	// snapshot needs (deleted, purged or recreated).
	ErrStreamMismatch = errors.New("snapshotter: the EVENTS stream does not match")
	// ErrHistoryGone: a capture must fold from version 0 (the reducer
	// changed) but the stream no longer holds the actor's first events.
	ErrHistoryGone = errors.New("snapshotter: events needed for a rebuild are no longer in the stream")
	// ErrNoReducer: no script for the actor type.
	ErrNoReducer = errors.New("snapshotter: no reducer for actor type")
)

// ReducerError is a capture that failed in the reducer. It affects only its
// actor: it is logged, counted and its event acknowledged.
type ReducerError struct {
	Actor   string
	Version uint64
	Err     error
}

func (e *ReducerError) Error() string {
	return fmt.Sprintf("reducer failed for %s at version %d: %v", e.Actor, e.Version, e.Err)
}

func (e *ReducerError) Unwrap() error { return e.Err }

// work runs captures until the queue is closed and empty.
func (s *Snapshotter) work(ctx, stop context.Context, rt *scripting.Runtime) {
	for {
		j, ok := s.captures.take()
		if !ok {
			return
		}
		if j.ahead {
			s.runAhead(stop, rt, j)
		} else {
			s.runCapture(ctx, stop, rt, j)
		}
		s.captures.done(j.key)
	}
}

// runCapture runs one capture. A capture that fails for a passing reason
// (NATS unreachable, a timeout) is retried in place, so that its actor's
// captures stay in order; after stop (the end of Run's context) it is
// abandoned instead, unacknowledged, to be redelivered.
func (s *Snapshotter) runCapture(ctx, stop context.Context, rt *scripting.Runtime, j job) {
	if j.gen != s.gen.Load() {
		// Queued before a reset: its actor is counted again, and its
		// event, if any, belongs to a consumer that is gone.
		s.unqueue(j)
		return
	}
	s.stats.Running.Add(1)
	if j.msg != nil && time.Since(j.queued) > s.cfg.AckWait/2 {
		_ = j.msg.InProgress()
	}
	jctx, span := s.tel.startCapture(ctx, j)
	backoff := 50 * time.Millisecond
	for {
		// A deadline per attempt: streams reads and the publish have their
		// own, this one also covers the fold and the retries inside.
		actx, cancel := s.drops.bind(jctx, 3*requestTimeout+s.cfg.Limits.Timeout)
		snap, err := s.capture(actx, rt, j)
		if err != nil && dropped(actx) {
			err = fmt.Errorf("%w: %w", errDropped, err)
		}
		cancel()
		if !transient(err) || ctx.Err() != nil || stop.Err() != nil {
			s.settle(j, err)
			s.tel.settled(jctx, span, j, snap, err)
			if transient(err) {
				s.abandonLater(j)
			}
			break
		}
		s.stats.CaptureErrors.Add(1)
		s.tel.retry(span, err)
		s.log.Warn("capture failed; retrying", "actor", j.key, "version", j.version, "retry_in", backoff, "err", err)
		if j.msg != nil {
			_ = j.msg.InProgress()
		}
		select {
		case <-time.After(backoff):
		case <-stop.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	s.stats.Running.Add(-1)
	s.unqueue(j)
}

// unqueue accounts for the end of job j, run or dropped.
func (s *Snapshotter) unqueue(j job) {
	s.release(j.tail)
	if j.ahead {
		s.stats.Ahead.Add(-1)
	} else {
		s.stats.Queued.Add(-1)
	}
}

// abandonLater drops the queued captures of an actor whose capture j was
// abandoned at shutdown. A later one published now would make j's version
// look covered when its event comes again after the restart, and that
// snapshot would never be made. Their events, if held, are redelivered.
func (s *Snapshotter) abandonLater(j job) {
	later := s.captures.drop(j.key)
	for _, l := range later {
		s.unqueue(l)
	}
	if len(later) > 0 {
		s.log.Info("later captures of an abandoned actor left to be redelivered", "actor", j.key, "version", j.version, "later", len(later))
	}
}

// transient reports whether a capture error may pass by itself.
func transient(err error) bool {
	var rerr *ReducerError
	return err != nil && !errors.Is(err, errUpToDate) && !errors.As(err, &rerr) &&
		!errors.Is(err, ErrStreamMismatch) && !errors.Is(err, ErrNoReducer) && !errors.Is(err, ErrHistoryGone)
}

// settle maps the outcome of a capture to the triggering event's ack: the
// one place that decides acks for captures.
func (s *Snapshotter) settle(j job, err error) {
	var rerr *ReducerError
	s.failedMu.Lock()
	if f, ok := s.failed[j.key]; ok && (err == nil || errors.Is(err, errUpToDate)) && j.version >= f.version {
		delete(s.failed, j.key) // a newer snapshot stands
	}
	s.failedMu.Unlock()
	switch {
	case err == nil:
		s.stats.Published.Add(1)
		s.ack(j.msg)
	case errors.Is(err, errUpToDate):
		s.stats.UpToDate.Add(1)
		s.ack(j.msg)
	case errors.As(err, &rerr):
		s.stats.ReducerErrors.Add(1)
		s.failedMu.Lock()
		s.failed[j.key] = job{key: j.key, typ: j.typ, id: j.id, version: j.version, seq: j.seq}
		s.failedMu.Unlock()
		s.log.Error("reducer failed; no snapshot at this version, other actors go on", "actor", j.key, "version", j.version, "seq", j.seq, "err", rerr.Err)
		s.ack(j.msg)
	case errors.Is(err, ErrStreamMismatch):
		// The stream does not hold the events the tally counted: count
		// every actor again, checking each snapshot against the stream.
		s.stats.Mismatches.Add(1)
		s.resetAsked.Store(true)
		s.log.Error("capture failed: the stream does not hold the events counted; recounting", "actor", j.key, "version", j.version, "seq", j.seq, "err", err)
		s.ack(j.msg)
	case errors.Is(err, ErrNoReducer), errors.Is(err, ErrHistoryGone):
		s.stats.CaptureErrors.Add(1)
		s.log.Error("capture failed", "actor", j.key, "version", j.version, "seq", j.seq, "err", err)
		s.ack(j.msg)
	default:
		// Shutting down mid-capture: leave the event unacknowledged; it is
		// redelivered and captured after the restart.
		s.log.Info("capture abandoned at shutdown; its event will be redelivered", "actor", j.key, "version", j.version, "err", err)
	}
}

// capture builds the actor's snapshot at j.version from its last snapshot
// (when made by the current reducer) and the events after it, and publishes
// it. It never replaces a newer snapshot: the publish expects the subject's
// last sequence seen at the start, and a conflict re-reads and retries.
func (s *Snapshotter) capture(ctx context.Context, rt *scripting.Runtime, j job) (Snapshot, error) {
	script, ok := s.scripts.Lookup(j.typ)
	if !ok {
		return Snapshot{}, fmt.Errorf("%w %q: add %s.js to JETSNAP_SCRIPTS_DIR", ErrNoReducer, j.typ, j.typ)
	}
	subject := s.snapshotSubject(j.key)
	for range 5 {
		// The snapshot this process published last for the actor, if kept
		// (bases.go), else the latest in the stream.
		base, kept := s.takeBase(j.key, j.gen)
		if kept && base.Version >= j.version {
			// A capture of an older version (a redelivered trigger, a
			// MaxAge capture at a fold made ahead): read what the stream
			// holds, and leave the kept base to the next capture.
			s.keepBase(j.key, base, j.gen)
			kept = false
		}
		found, err := kept, error(nil)
		if !kept {
			s.stats.BaseReads.Add(1)
			base, err = s.store.latestSnapshot(ctx, subject)
			found = err == nil
		}
		if err != nil && !errors.Is(err, ErrNoSnapshot) {
			return Snapshot{}, err
		}
		if found && base.Version >= j.version {
			return base, errUpToDate
		}
		if !found {
			// A forgotten actor gets no snapshot until new events arrive.
			if forgotten, err := s.store.forgotten(ctx, s.cfg.SnapshotPrefix, j.key); err != nil {
				return Snapshot{}, err
			} else if j.seq <= forgotten {
				return Snapshot{}, errUpToDate
			}
		}
		snap, err := s.fold(ctx, rt, script, j, base, found)
		if rerr := (*ReducerError)(nil); err != nil && kept && ctx.Err() == nil && !errors.As(err, &rerr) {
			continue // perhaps not the latest (a mismatch): look at the one in the stream
		}
		if err != nil {
			return Snapshot{}, err
		}
		seq, err := publishSnapshot(ctx, s.js, s.store, subject, snap, base.Seq)
		if errors.Is(err, errConflict) {
			s.stats.Conflicts.Add(1)
			continue // someone else published on this subject: look again
		}
		if err != nil {
			return snap, err
		}
		snap.Seq = seq
		s.keepBase(j.key, snap, j.gen)
		return snap, nil
	}
	return Snapshot{}, fmt.Errorf("publish snapshot %s version %d: the subject kept changing", j.key, j.version)
}

// fold computes the snapshot of job j on top of base (if found and usable).
func (s *Snapshotter) fold(ctx context.Context, rt *scripting.Runtime, script *scripting.Script, j job, base Snapshot, found bool) (Snapshot, error) {
	var (
		state       []byte
		fromSeq     uint64
		fromVersion uint64
	)
	if found {
		switch {
		case base.Reducer != script.Reducer():
			s.stats.Invalidated.Add(1)
			s.log.Debug("reducer changed: rebuilding from version 0", "actor", j.key, "snapshot_reducer", base.Reducer, "reducer", script.Reducer())
		case base.LastSeq >= j.seq:
			return Snapshot{}, fmt.Errorf("%w: snapshot of %s at version %d covers seq %d, past seq %d of version %d",
				ErrStreamMismatch, j.key, base.Version, base.LastSeq, j.seq, j.version)
		default:
			state, fromSeq, fromVersion = base.State, base.LastSeq, base.Version
		}
	}
	rebuild := found && base.Reducer != script.Reducer()
	var events []scripting.Event
	if tail := j.tail; tail != nil && fromVersion+uint64(len(tail.events)) == j.version && len(tail.events) > 0 &&
		tail.events[0].seq > fromSeq && tail.events[len(tail.events)-1].seq == j.seq {
		// The base ends right where the buffered events begin.
		events = eventsFrom(j.key, tail.events, fromVersion)
	} else {
		var err error
		events, err = s.readEvents(ctx, j.key, j.typ, j.id, fromSeq, j.seq, j.version-fromVersion, fromVersion)
		if rebuild && errors.Is(err, ErrStreamMismatch) {
			// The stream is fine; it just no longer holds the whole history
			// a new reducer must fold (events aged out). Counting again
			// would not bring them back.
			return Snapshot{}, fmt.Errorf("%w: %s: the reducer changed (%s, was %s), and the stream no longer holds the %d events a rebuild from version 0 needs (aged out?); keep the old snapshots' identity with `var revision` if the change is compatible: %v",
				ErrHistoryGone, j.key, script.Reducer(), base.Reducer, j.version, err)
		}
		if err != nil {
			return Snapshot{}, err
		}
		s.stats.StreamReads.Add(uint64(len(events)))
	}
	asked := time.Now()
	select {
	case s.folding <- struct{}{}:
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
	s.tel.folding(ctx, time.Since(asked))
	out, err := rt.Fold(ctx, script, j.key, state, events)
	<-s.folding
	if err != nil {
		if ctx.Err() != nil {
			return Snapshot{}, ctx.Err()
		}
		return Snapshot{}, &ReducerError{Actor: j.key, Version: j.version, Err: err}
	}
	s.stats.ReplayEvents.Add(uint64(len(events)))
	if !j.ahead {
		s.tel.folded(ctx, events)
	}
	last := events[len(events)-1]
	return Snapshot{
		Actor:     j.key,
		State:     out,
		Version:   j.version,
		LastSeq:   j.seq,
		Reducer:   script.Reducer(),
		EventTime: last.Time,
	}, nil
}

// readEvents reads the want events of actor after afterSeq up to and
// including upTo, numbering them from fromVersion+1. The stream must hold
// exactly want of them, the last at upTo: that is what makes the version of
// a snapshot the count of the events folded into it.
func (s *Snapshotter) readEvents(ctx context.Context, key, typ, id string, afterSeq, upTo, want, fromVersion uint64) ([]scripting.Event, error) {
	events := make([]scripting.Event, 0, want)
	_, err := s.store.scan(ctx, s.cfg.Pattern.ActorFilter(typ, id), afterSeq+1, upTo, int(want), func(sm storedMsg) error {
		events = append(events, toEvent(key, s.token(sm.Subject), fromVersion+uint64(len(events))+1, sm))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(events)) != want || events[len(events)-1].Seq != upTo {
		return nil, fmt.Errorf("%w: %s has %d events in seq %d..%d of stream %s, version %d needs %d ending at seq %d; were events deleted or the stream recreated?",
			ErrStreamMismatch, key, len(events), afterSeq+1, upTo, s.cfg.EventStream, fromVersion+want, want, upTo)
	}
	return events, nil
}

func toEvent(key, token string, version uint64, sm storedMsg) scripting.Event {
	typ := givenType(token, sm.Header)
	return scripting.Event{
		Actor:        key,
		Type:         typ,
		TypeFromData: typ == "",
		Subject:      sm.Subject,
		Data:         sm.Data,
		Seq:          sm.Seq,
		Version:      version,
		Time:         sm.Time.UTC(),
		Headers:      sm.Header,
	}
}

// eventType finds an event's type: the {event} token, else the Event-Type
// header, else the payload's top-level "type" string, else "".
func eventType(token string, h nats.Header, data []byte) string {
	if t := givenType(token, h); t != "" {
		return t
	}
	return scripting.PayloadType(data)
}

// givenType is the type that an event's subject or headers give, or "":
// then the type is the payload's, which a fold finds as it decodes the
// payload (scripting.Event.TypeFromData) rather than in a pass of its own.
func givenType(token string, h nats.Header) string {
	if token != "" {
		return token
	}
	return h.Get("Event-Type")
}

// errConflict: the snapshot subject's last message is not the one the
// capture started from.
var errConflict = errors.New("snapshot subject changed")

// publishSnapshot stores snap on subject if the subject's last message is
// still expect (0: none). It returns errConflict when it is not, and
// errUpToDate when the snapshot is already stored.
//
// Nats-Msg-Id deduplicates a retried publish. But an id seen within the
// stream's duplicate window may belong to a snapshot purged since (forget,
// a recreated stream): then the publish is repeated without the id, and
// the expected last sequence alone keeps versions from going back.
func publishSnapshot(ctx context.Context, js jetstream.JetStream, st *store, subject string, snap Snapshot, expect uint64) (uint64, error) {
	msg := &nats.Msg{Subject: subject, Data: snap.State, Header: snap.header()}
	for range 2 {
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(expect))
		switch {
		case isWrongLastSeq(err):
			return 0, errConflict
		case err != nil:
			return 0, fmt.Errorf("publish snapshot %s version %d: %w", snap.Actor, snap.Version, err)
		case !ack.Duplicate:
			return ack.Sequence, nil
		}
		latest, err := st.latestSnapshot(ctx, subject)
		if err == nil && latest.Version >= snap.Version {
			return latest.Seq, errUpToDate
		}
		if err != nil && !errors.Is(err, ErrNoSnapshot) {
			return 0, err
		}
		msg.Header.Del(nats.MsgIdHdr)
	}
	return 0, fmt.Errorf("publish snapshot %s version %d: taken for a duplicate twice", snap.Actor, snap.Version)
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// latestSnapshot returns the last snapshot on subject, or ErrNoSnapshot.
func (st *store) latestSnapshot(ctx context.Context, subject string) (Snapshot, error) {
	sm, err := st.last(ctx, subject)
	if errors.Is(err, errNotFound) {
		return Snapshot{}, ErrNoSnapshot
	}
	if err != nil {
		return Snapshot{}, err
	}
	return parseSnapshot(sm)
}
