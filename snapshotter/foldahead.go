package snapshotter

import (
	"context"
	"errors"

	"github.com/jetsnap/jetsnap/scripting"
)

// Folds made ahead. Actors that move at the same pace become due together,
// and a capture folds every event since the actor's last snapshot: on a
// busy machine that wave of folds takes the CPU from the consumer and the
// server just when many snapshots are due, and their lag grows. So while
// the consumer keeps up, an actor's tail is folded ahead every aheadEvents
// events, onto its last snapshot, in the capture queue with its captures
// (so in order); the state is kept as the actor's base (bases.go), not
// published. Its next capture folds only the events after it, and
// publishes expecting the last snapshot's sequence, as it would have.
//
// A fold made ahead gives the same snapshot, for a reducer whose state is
// plain data (README, The state): its state between two events is the JSON
// it stores (the same round trip as from one snapshot to the next), and
// Date.now and Math.random depend on each event, not on where a fold
// starts. If the fold cannot be made (no snapshot lines up with the
// events, a reducer error), its events are left to the capture to read
// back from the stream and fold, reporting the error if it meets it.
//
// While the consumer is behind (a backlog, a restart), folds are not made
// ahead: there, throughput counts, and a fold of a whole capture's events
// costs less than the same events in several folds.
const (
	aheadEvents  = 32   // a tail this long is folded ahead...
	aheadBacklog = 1000 // ...while fewer events than this wait to be delivered
)

// foldAhead queues a fold of t's tail ahead of its next placement, if it
// is long enough, the consumer keeps up and the workers have room. ev is the
// event just counted, key the actor key when already built (else
// s.keyBuf). The caller holds s.mu.
func (s *Snapshotter) foldAhead(t *tally, ev event, key *string) {
	if t.tail == nil || len(t.tail.events) < aheadEvents || t.snap == 0 || ev.pending >= aheadBacklog ||
		s.stats.Queued.Load()+s.stats.Ahead.Load() >= int64(s.cfg.Workers) {
		return
	}
	k := ""
	if key != nil {
		k = *key
	} else {
		k = string(s.keyBuf)
	}
	next := newTail(t.tail.from, min(s.cfg.Strategy.Next(t.snap)-t.version, aheadEvents))
	s.stats.Ahead.Add(1)
	j := job{key: k, typ: ev.typ, id: ev.id, version: t.version, seq: ev.seq, tail: t.tail, gen: s.gen.Load(), ahead: true}
	if !s.captures.tryPut(j) {
		s.stats.Ahead.Add(-1)
		return
	}
	t.tail = next
}

// runAhead folds the events of j, queued by foldAhead, onto its actor's
// base, and keeps the state as the base of the actor's next capture. It
// gives up when no base lines up with them or the fold fails.
func (s *Snapshotter) runAhead(stop context.Context, rt *scripting.Runtime, j job) {
	defer s.unqueue(j)
	script, ok := s.scripts.Lookup(j.typ)
	if !ok || j.gen != s.gen.Load() || stop.Err() != nil {
		return
	}
	ctx, cancel := s.drops.bind(stop, requestTimeout+s.cfg.Limits.Timeout)
	defer cancel()
	base, kept := s.takeBase(j.key, j.gen)
	if !kept {
		s.stats.BaseReads.Add(1)
		var err error
		if base, err = s.store.latestSnapshot(ctx, s.snapshotSubject(j.key)); err != nil {
			return // none (the actor's first snapshot failed, or was forgotten), or unreachable
		}
	}
	evs := j.tail.events
	snap, err := Snapshot{}, error(nil)
	if base.Reducer != script.Reducer() || base.Version+uint64(len(evs)) != j.version || base.LastSeq >= evs[0].seq {
		err = errNoBase
	} else {
		snap, err = s.fold(ctx, rt, script, j, base, true)
	}
	if err != nil {
		s.log.Debug("fold ahead given up; the next capture reads the events back", "actor", j.key, "version", j.version, "err", err)
		if kept {
			s.keepBase(j.key, base, j.gen)
		}
		return
	}
	snap.Seq = base.Seq // the publish that follows expects the snapshot it started from
	s.release(j.tail)   // first: the base takes the room of the events
	if j.gen == s.gen.Load() {
		s.keepBase(j.key, snap, j.gen)
		s.stats.FoldsAhead.Add(1)
	}
}

// errNoBase: no snapshot lines up with the events of a fold made ahead (the
// actor's last capture failed, or was made by another reducer).
var errNoBase = errors.New("no snapshot ends where the events begin")
