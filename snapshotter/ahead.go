package snapshotter

import "context"

// Reading ahead. Counting an actor new to this process (resync) starts
// with reads of the streams: its last snapshot, then its events around
// the snapshot's end, a round trip after another. Handle does not wait for
// them with every delivery behind stalled: it makes a new actor's reads in
// the background, keeps the deliveries from there on waiting, in order,
// and handles them once the reads at their head are back, while it makes
// the reads of the next new actors among them. So after a restart, or at
// the start, thousands of new actors cost a few round trips, not one each.
//
// Deliveries are still handled one at a time and in the order they came,
// each as it would have been at once: only the reads happen sooner, and
// they read what is already in the streams. The event being handled is in
// the EVENTS stream, and so is everything before it, which does not change
// as the stream grows. The actor's last snapshot may: another replica, the
// capture service, or a capture of this process from before a reset can
// publish one in between, as they could during a read made in place, only
// in a shorter window. Versions stay exact, as they are counted from the
// EVENTS stream, and placements too, snapshots being made at placements; a
// reset in between (gen) makes Handle read again. A session's deliveries
// still waiting when it ends are handled before its last acks (Flush).

// maxWaiting bounds the deliveries waiting behind reads; when it is
// reached, Handle waits for the oldest reads.
const maxWaiting = 1024

// delivery is one event as Handle got it, and what it needs to handle it.
type delivery struct {
	ev        event
	dseq      uint64 // the consumer's delivery sequence
	delivered uint64 // times delivered, 1 the first time
	key       string // the actor's key, once waiting
	ahead     *readAhead
}

// readAhead is what counting an actor new to this process reads first:
// its last snapshot, the stream's event at the snapshot's end (the
// anchor) and its first event after it (or from the stream's start).
type readAhead struct {
	done     chan struct{} // closed once the reads are back (nil: made in place)
	gen      uint64        // s.gen when the reads began
	snap     Snapshot
	snapErr  error
	anchor   nextResult // the first event at or after snap.LastSeq
	next     nextResult // the first event at or after nextFrom
	nextFrom uint64
}

// readNew makes an actor's first reads. Most actors new to this process
// have no snapshot: their count starts at the stream's start, so the first
// event there is read while the snapshot is looked up.
func (s *Snapshotter) readNew(ctx context.Context, a *readAhead, key, filter string) {
	first := s.store.nextAsync(ctx, filter, 1)
	a.snap, a.snapErr = s.store.latestSnapshot(ctx, s.snapshotSubject(key))
	if a.snapErr != nil || a.snap.LastSeq == 0 {
		a.next, a.nextFrom = <-first, 1
		return
	}
	anchor := s.store.nextAsync(ctx, filter, a.snap.LastSeq)
	a.nextFrom = a.snap.LastSeq + 1
	a.next.msg, a.next.err = s.store.next(ctx, filter, a.nextFrom)
	a.anchor = <-anchor
}

// readAhead starts the first reads of the actor of d, new to this process.
// The caller holds s.mu.
func (s *Snapshotter) readAhead(d *delivery) *readAhead {
	a := &readAhead{done: make(chan struct{}), gen: s.gen.Load()}
	filter := s.cfg.Pattern.ActorFilter(d.ev.typ, d.ev.id)
	key := d.key
	s.reading[key] = true
	s.readers.Go(func() {
		ctx, cancel := s.drops.bind(s.readCtx, ioTimeout)
		s.readNew(ctx, a, key, filter)
		cancel()
		close(a.done)
		s.mu.Lock()
		s.drain(false)
		s.mu.Unlock()
	})
	return a
}

// wait queues d behind the deliveries waiting, reading ahead for its actor
// if it is new, then handles what can be. The caller holds s.mu and has
// put d's actor key in s.keyBuf.
func (s *Snapshotter) wait(d delivery) {
	d.key = string(s.keyBuf)
	if s.tallies[d.key] == nil && !s.reading[d.key] {
		d.ahead = s.readAhead(&d)
	}
	if s.waitHead > 0 && len(s.waiting) == cap(s.waiting) {
		n := copy(s.waiting, s.waiting[s.waitHead:])
		clear(s.waiting[n:])
		s.waiting, s.waitHead = s.waiting[:n], 0
	}
	s.waiting = append(s.waiting, d)
	s.drain(false)
	for len(s.waiting)-s.waitHead >= maxWaiting {
		s.drain(true)
	}
}

// drain handles the waiting deliveries in order, up to the first whose
// reads are not back; with block, it first waits for the oldest's. After
// close it drops them: not acknowledged, they are delivered again. The
// caller holds s.mu.
func (s *Snapshotter) drain(block bool) {
	defer func() { s.stats.Waiting.Store(int64(len(s.waiting) - s.waitHead)) }()
	for s.waitHead < len(s.waiting) {
		d := s.waiting[s.waitHead]
		if s.closed {
			s.dropWaiting()
			return
		}
		if d.ahead != nil {
			if block {
				<-d.ahead.done
				block = false
			}
			select {
			case <-d.ahead.done:
			default:
				return
			}
			delete(s.reading, d.key)
		}
		s.waiting[s.waitHead] = delivery{}
		if s.waitHead++; s.waitHead == len(s.waiting) {
			s.waiting, s.waitHead = s.waiting[:0], 0
		}
		s.keyBuf = append(s.keyBuf[:0], d.key...)
		s.handle(d, s.tallies[d.key])
	}
}

// dropWaiting drops the waiting deliveries, unacknowledged: delivered
// again after a reset of the consumer or a restart. The caller holds s.mu.
func (s *Snapshotter) dropWaiting() {
	clear(s.waiting)
	s.waiting, s.waitHead = s.waiting[:0], 0
	clear(s.reading)
	s.stats.Waiting.Store(0)
}

// drainAll handles every waiting delivery, waiting for their reads. The
// caller holds s.mu.
func (s *Snapshotter) drainAll() {
	for s.waitHead < len(s.waiting) {
		s.drain(true)
	}
}

// firstReads returns the first reads for counting the new actor key: those
// made ahead if they are still good, else made now.
func (s *Snapshotter) firstReads(ctx context.Context, a *readAhead, key, filter string) *readAhead {
	if a != nil && a.gen == s.gen.Load() {
		return a
	}
	a = &readAhead{gen: s.gen.Load()}
	s.readNew(ctx, a, key, filter)
	return a
}
