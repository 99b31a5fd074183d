package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	r := &Reader{cfg: cfg, store: &store{nc: nc, events: cfg.EventStream, snaps: cfg.SnapshotStream}, scripts: scripts}
	r.runtimes.New = func() any { return scripting.NewRuntime(cfg.Limits) }
	return r
}

// Latest returns the actor's latest snapshot, or an error wrapping
// ErrNoSnapshot.
func (r *Reader) Latest(ctx context.Context, actor string) (Snapshot, error) {
	if _, _, err := SplitActor(actor); err != nil {
		return Snapshot{}, err
	}
	snap, err := r.store.latestSnapshot(ctx, r.cfg.SnapshotPrefix+"."+actor)
	if err != nil {
		return Snapshot{}, fmt.Errorf("latest snapshot of %s: %w", actor, err)
	}
	return snap, nil
}

// State is an actor's state as Load folded it.
type State struct {
	Snapshot      // Version, LastSeq, Reducer and EventTime describe the state; Seq and Stored the snapshot it started from (0 if none)
	Folded   int  // events folded on top of the snapshot
	Rebuilt  bool // the latest snapshot was made by another reducer and was not used
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
	base, err := r.store.latestSnapshot(ctx, r.cfg.SnapshotPrefix+"."+actor)
	if err != nil && !errors.Is(err, ErrNoSnapshot) {
		return State{}, err
	}
	st := State{Snapshot: base}
	if err == nil && base.Reducer != script.Reducer() {
		st.Rebuilt = true
		st.Snapshot = Snapshot{Seq: base.Seq, Stored: base.Stored}
	}
	st.Actor, st.Reducer = actor, script.Reducer()
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
		if st.State == nil && st.Version == 0 {
			return State{}, fmt.Errorf("actor %s has no events in stream %s: %w", actor, r.cfg.EventStream, ErrNoSnapshot)
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
