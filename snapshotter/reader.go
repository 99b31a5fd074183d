package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReaderConfig names the streams and subjects a Reader reads.
type ReaderConfig struct {
	Pattern        Pattern
	EventStream    string // default EVENTS
	SnapshotStream string // default SNAPSHOTS
	SnapshotPrefix string // default snapshots
	Limits         scripting.Limits
}

// Reader loads actors: their latest snapshot, or their state now (latest
// snapshot plus the events after it, folded). It is safe for concurrent use.
type Reader struct {
	cfg      ReaderConfig
	js       jetstream.JetStream
	store    *store
	scripts  *scripting.Registry
	runtimes sync.Pool
}

// NewReader builds a Reader. scripts may be nil for a Reader that only
// reads snapshots (Latest).
func NewReader(cfg ReaderConfig, nc *nats.Conn, scripts *scripting.Registry) *Reader {
	c := Config{EventStream: cfg.EventStream, SnapshotStream: cfg.SnapshotStream, SnapshotPrefix: cfg.SnapshotPrefix}
	c.setDefaults()
	cfg.EventStream, cfg.SnapshotStream, cfg.SnapshotPrefix = c.EventStream, c.SnapshotStream, c.SnapshotPrefix
	js, _ := jetstream.New(nc) // fails only for invalid options
	r := &Reader{cfg: cfg, js: js, store: &store{nc: nc, events: cfg.EventStream, snaps: cfg.SnapshotStream}, scripts: scripts}
	r.runtimes.New = func() any { return scripting.NewRuntime(cfg.Limits) }
	return r
}

// Latest returns the actor's latest snapshot, or an error wrapping
// ErrNoSnapshot.
func (r *Reader) Latest(ctx context.Context, actor string) (Snapshot, error) {
	if _, _, err := SplitActor(actor); err != nil {
		return Snapshot{}, err
	}
	snap, err := r.store.latestSnapshot(ctx, r.snapshotSubject(actor))
	if err != nil {
		return Snapshot{}, fmt.Errorf("latest snapshot of %s: %w", actor, err)
	}
	return snap, nil
}

// State is an actor's state as Load folded it.
type State struct {
	Snapshot          // the state now: State, Version, LastSeq, Reducer, EventTime
	Base     Snapshot // the latest stored snapshot, zero if none
	Folded   int      // events folded on top of the base (or from version 0)
	Rebuilt  bool     // Base was made by another reducer and not used
}

// Load returns the actor's state now: its latest snapshot (if made by the
// current reducer) plus its events after the snapshot, folded with the
// current reducer. Nothing is published.
func (r *Reader) Load(ctx context.Context, actor string) (State, error) {
	typ, id, err := SplitActor(actor)
	if err != nil {
		return State{}, err
	}
	if r.scripts == nil {
		return State{}, errors.New("snapshotter: this Reader has no reducers; use Latest")
	}
	script, ok := r.scripts.Lookup(typ)
	if !ok {
		return State{}, fmt.Errorf("%w %q: add %s.js to JETSNAP_SCRIPTS_DIR", ErrNoReducer, typ, typ)
	}
	base, err := r.store.latestSnapshot(ctx, r.snapshotSubject(actor))
	if err != nil && !errors.Is(err, ErrNoSnapshot) {
		return State{}, err
	}
	st := State{Base: base}
	if err == nil {
		if base.Reducer == script.Reducer() {
			st.Snapshot = base
		} else {
			st.Rebuilt = true
		}
	}
	st.Actor, st.Reducer, st.Seq, st.Stored = actor, script.Reducer(), 0, time.Time{}
	var events []scripting.Event
	_, err = r.store.scan(ctx, r.cfg.Pattern.ActorFilter(typ, id), st.LastSeq+1, math.MaxUint64, 0, func(sm storedMsg) error {
		_, _, tok, _ := r.cfg.Pattern.Match(sm.Subject)
		events = append(events, toEvent(actor, tok, st.Version+uint64(len(events))+1, sm))
		return nil
	})
	if err != nil {
		return State{}, err
	}
	if len(events) == 0 {
		if st.Version == 0 {
			return State{}, fmt.Errorf("%w: %s has no events in stream %s and no snapshot", ErrUnknownActor, actor, r.cfg.EventStream)
		}
		return st, nil
	}
	rt := r.runtimes.Get().(*scripting.Runtime)
	out, err := rt.Fold(ctx, script, actor, st.State, events)
	r.runtimes.Put(rt)
	if err != nil {
		return State{}, &ReducerError{Actor: actor, Version: st.Version + uint64(len(events)), Err: err}
	}
	last := events[len(events)-1]
	st.State, st.Folded = out, len(events)
	st.Version += uint64(len(events))
	st.LastSeq, st.EventTime = last.Seq, last.Time
	return st, nil
}

// Errors of the read side.
var (
	// ErrUnknownActor: no events and no snapshot.
	ErrUnknownActor = errors.New("snapshotter: unknown actor")
	// ErrNoNewEvents: the latest snapshot is at the actor's current
	// version but was made by another reducer; a snapshot with the current
	// reducer comes with the actor's next event.
	ErrNoNewEvents = errors.New("snapshotter: no events after the latest snapshot")
	// ErrForgotten: the actor's snapshots were purged by Forget and no
	// event arrived since.
	ErrForgotten = errors.New("snapshotter: actor forgotten")
)

// Capture publishes a snapshot of the actor's state now and returns it. When
// the latest snapshot is already at the actor's version and made by the
// current reducer, it is returned as is. Versions never go back: the
// publish expects the subject's last sequence that Load saw.
func (r *Reader) Capture(ctx context.Context, actor string) (State, error) {
	for range 5 {
		st, err := r.Load(ctx, actor)
		if err != nil {
			return State{}, err
		}
		if st.Version <= st.Base.Version {
			if !st.Rebuilt {
				st.Snapshot, st.Folded = st.Base, 0
				return st, nil
			}
			return State{}, fmt.Errorf("%w: %s is at version %d, snapshotted by %s; a snapshot by %s comes with its next event",
				ErrNoNewEvents, actor, st.Version, st.Base.Reducer, st.Reducer)
		}
		if st.Base.Version == 0 {
			if forgotten, err := r.store.forgotten(ctx, r.cfg.SnapshotPrefix, actor); err != nil {
				return State{}, err
			} else if st.LastSeq <= forgotten {
				return State{}, fmt.Errorf("%w: no event of %s since `jetsnap forget`", ErrForgotten, actor)
			}
		}
		seq, err := publishSnapshot(ctx, r.js, r.store, r.snapshotSubject(actor), st.Snapshot, st.Base.Seq)
		if errors.Is(err, errConflict) {
			continue
		}
		if errors.Is(err, errUpToDate) {
			if latest, err := r.store.latestSnapshot(ctx, r.snapshotSubject(actor)); err == nil {
				st.Snapshot, st.Folded = latest, 0
			}
			return st, nil
		}
		if err != nil {
			return State{}, err
		}
		st.Seq, st.Stored = seq, time.Now().UTC()
		return st, nil
	}
	return State{}, fmt.Errorf("publish snapshot %s: the subject kept changing", actor)
}

// Actors lists the actors of a type (all types when actorType is empty)
// that have events in the EVENTS stream, from the stream's subjects.
func (r *Reader) Actors(ctx context.Context, actorType string) ([]string, error) {
	filter := r.cfg.Pattern.Filter()
	if actorType != "" {
		filter = r.cfg.Pattern.ActorFilter(actorType, "*")
	}
	stream, err := r.js.Stream(ctx, r.cfg.EventStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", r.cfg.EventStream, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("list subjects %s of stream %s: %w", filter, r.cfg.EventStream, err)
	}
	seen := make(map[string]bool, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		if typ, id, _, ok := r.cfg.Pattern.Match(subject); ok {
			seen[typ+"."+id] = true
		}
	}
	actors := slices.Sorted(maps.Keys(seen))
	return actors, nil
}

// History returns the actor's kept snapshots (JETSNAP_KEEP), newest first.
func (r *Reader) History(ctx context.Context, actor string) ([]Snapshot, error) {
	if _, _, err := SplitActor(actor); err != nil {
		return nil, err
	}
	var out []Snapshot
	_, err := r.store.scanIn(ctx, r.cfg.SnapshotStream, r.snapshotSubject(actor), 1, math.MaxUint64, 0, func(sm storedMsg) error {
		snap, err := parseSnapshot(sm)
		if err != nil {
			return err
		}
		out = append(out, snap)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// Forget purges the actor's snapshots (for data-protection requests) and
// returns how many were removed. Its events belong to the producers'
// stream and are not touched. A marker records the actor's last event, so
// that no snapshot of it is made again until new events arrive.
func (r *Reader) Forget(ctx context.Context, actor string) (uint64, error) {
	typ, id, err := SplitActor(actor)
	if err != nil {
		return 0, err
	}
	var lastSeq uint64
	_, err = r.store.scan(ctx, r.cfg.Pattern.ActorFilter(typ, id), 1, math.MaxUint64, 0, func(sm storedMsg) error {
		lastSeq = sm.Seq
		return nil
	})
	if err != nil {
		return 0, err
	}
	marker := &nats.Msg{Subject: forgetSubject(r.cfg.SnapshotPrefix, actor), Header: nats.Header{headerForgotten: {strconv.FormatUint(lastSeq, 10)}}}
	if _, err := r.js.PublishMsg(ctx, marker); err != nil {
		return 0, fmt.Errorf("record forget marker of %s: %w", actor, err)
	}
	stream, err := r.js.Stream(ctx, r.cfg.SnapshotStream)
	if err != nil {
		return 0, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(r.snapshotSubject(actor)))
	if err != nil {
		return 0, err
	}
	n := info.State.Subjects[r.snapshotSubject(actor)]
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(r.snapshotSubject(actor))); err != nil {
		return 0, fmt.Errorf("purge snapshots of %s: %w", actor, err)
	}
	return n, nil
}

func (r *Reader) snapshotSubject(actor string) string { return r.cfg.SnapshotPrefix + "." + actor }

// The forget marker of an actor lives beside its snapshots, on a subject
// one token longer than any snapshot subject, so no snapshot read sees it.
const headerForgotten = "Jetsnap-Forgotten-Seq"

func forgetSubject(prefix, actor string) string { return prefix + "._forgotten." + actor }

// forgotten returns the last event sequence of the actor when it was
// forgotten, or 0.
func (s *store) forgotten(ctx context.Context, prefix, actor string) (uint64, error) {
	sm, err := s.last(ctx, forgetSubject(prefix, actor))
	if errors.Is(err, errNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	seq, _ := strconv.ParseUint(sm.Header.Get(headerForgotten), 10, 64)
	return seq, nil
}

// StreamConfig describes the SNAPSHOTS stream.
type StreamConfig struct {
	Name     string // default SNAPSHOTS
	Prefix   string // default snapshots
	Keep     int    // snapshots kept per actor, default 3
	Replicas int    // default 1
}

// EnsureSnapshotStream creates the snapshot stream, or updates it to cfg:
// file storage, direct gets allowed, Keep messages per subject.
func EnsureSnapshotStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	if cfg.Name == "" {
		cfg.Name = "SNAPSHOTS"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "snapshots"
	}
	cfg.Keep = max(cfg.Keep, 1)
	cfg.Replicas = max(cfg.Replicas, 1)
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              cfg.Name,
		Description:       "jetsnap snapshots: one subject per actor, latest last",
		Subjects:          []string{cfg.Prefix + ".>"},
		Storage:           jetstream.FileStorage,
		AllowDirect:       true,
		MaxMsgsPerSubject: int64(cfg.Keep),
		Replicas:          cfg.Replicas,
		Duplicates:        2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("create or update stream %s (JETSNAP_SNAPSHOT_STREAM) on %s.>: %w", cfg.Name, cfg.Prefix, err)
	}
	return nil
}
