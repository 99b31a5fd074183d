package snapshotter

import "sync"

// Bases. A capture starts from its actor's last snapshot, which is most
// often the one this process published at the actor's previous capture,
// or, for an actor new to this process, the one read to count it. bases
// keeps that snapshot for the next capture, which then does not read it
// back from the stream: a round trip less, on a server that is often
// busiest exactly when many actors are due at once.
//
// A kept base is only ever a hint. The publish that follows expects the
// subject's last sequence to be the base's (as after a read), so if
// anything else published on the subject, or purged it (jetsnap forget, a
// recreated stream), in between, the publish is refused and the capture
// reads the base from the stream and folds again. Keeping one that is out
// of date costs a fold, never a wrong snapshot.
//
// A reset drops them all, and a base kept by a capture that began before
// the reset is not taken after it (each base has the reset generation of
// the job that kept it); a fold that fails on a kept base for another
// reason than the reducer (a mismatch with the stream) reads it instead.
//
// A base may also be a fold made ahead (foldahead.go): the state after
// some of the events since the last snapshot, not published, whose Seq is
// that of the last snapshot it starts from. It is used as any other base,
// and the publish that follows expects that same sequence.
//
// Bases share Config.BufferBytes with the buffered tails, up to a quarter
// of it: past that a new base replaces an old one at random. Tails matter
// more: a tail not kept costs reading back every event of a capture, a
// base not kept costs one read.
type bases struct {
	mu    sync.Mutex
	m     map[string]keptBase // by actor key
	bytes int64
}

type keptBase struct {
	snap Snapshot
	gen  uint64 // the reset generation of the job that kept it
}

// baseOverhead approximates what a kept base costs beyond its state and
// key: the map entry and the Snapshot's other fields.
const baseOverhead = 160

func baseSize(key string, snap Snapshot) int64 {
	return int64(len(key)+len(snap.State)+len(snap.Reducer)) + baseOverhead
}

// keepBase keeps snap, just published, read or folded ahead, as the base
// of key's next capture; gen is the reset generation of the job or the
// count that has it.
func (s *Snapshotter) keepBase(key string, snap Snapshot, gen uint64) {
	b := &s.bases
	size := baseSize(key, snap)
	limit := s.cfg.BufferBytes / 4
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.m[key]; ok {
		s.dropBase(key, old.snap)
	}
	tails := s.stats.Buffered.Load() - b.bytes
	if size > limit || tails+size > s.cfg.BufferBytes {
		return // no room even without the other bases: the tails have it
	}
	for k, old := range b.m { // random order: evict at random
		if b.bytes+size <= limit && tails+b.bytes+size <= s.cfg.BufferBytes {
			break
		}
		s.dropBase(k, old.snap)
	}
	if b.m == nil {
		b.m = make(map[string]keptBase)
	}
	b.m[key] = keptBase{snap: snap, gen: gen}
	b.bytes += size
	s.stats.Buffered.Add(size)
}

// takeBase returns and forgets the base kept for key's next capture, if
// one was kept in reset generation gen.
func (s *Snapshotter) takeBase(key string, gen uint64) (Snapshot, bool) {
	b := &s.bases
	b.mu.Lock()
	defer b.mu.Unlock()
	kb, ok := b.m[key]
	if ok {
		s.dropBase(key, kb.snap)
	}
	return kb.snap, ok && kb.gen == gen
}

// dropBases drops every base, at a reset: the streams may have been
// recreated, and a snapshot stream made again numbers its messages from 1,
// so that a kept base's sequence could be another snapshot's. (A capture
// that publishes after the reset keeps its own, which is in the stream.)
func (s *Snapshotter) dropBases() {
	s.bases.mu.Lock()
	defer s.bases.mu.Unlock()
	for k, kb := range s.bases.m {
		s.dropBase(k, kb.snap)
	}
}

// dropBase drops key's base. The caller holds s.bases.mu.
func (s *Snapshotter) dropBase(key string, snap Snapshot) {
	size := baseSize(key, snap)
	delete(s.bases.m, key)
	s.bases.bytes -= size
	s.stats.Buffered.Add(-size)
}
