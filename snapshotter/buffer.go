package snapshotter

import (
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/nats-io/nats.go"
)

// buffer is the events of one actor after its last placement, kept so that
// a capture folds them from memory instead of reading them back from the
// stream. The message's own slices are kept: nothing is copied.
type buffer struct {
	events []buffered
	bytes  int64
	// from is the sequence of the actor's first event after its last
	// placement: the first of events, or of those before them folded
	// ahead (foldahead.go).
	from uint64
}

type buffered struct {
	subject string
	token   string
	data    []byte
	header  nats.Header
	seq     uint64
	time    int64 // unix ns
}

// emptyTail is the tail of an actor just snapshotted: valid, with no event
// yet. It is shared and never written; buffer replaces it on the first
// event, so that an idle actor costs no buffer.
var emptyTail = &buffer{}

// maxPrealloc bounds the events a new tail makes room for at once.
const maxPrealloc = 512

// bufferedOverhead approximates what a buffered event costs beyond its
// payload and headers.
const bufferedOverhead = 96

// buffer appends ev to the actor's tail, or drops the tail when the total
// would pass Config.BufferBytes: that actor's next capture then reads from
// the stream. The caller holds s.mu.
func (s *Snapshotter) buffer(t *tally, ev event) {
	if t.tail == nil {
		return
	}
	header := ev.msg.Headers()
	if len(header) == 0 {
		// Often a map that package consumer emptied (it deletes the
		// Nats-Pin-Id of batched acks): not kept alive for as long as the
		// tail, where the GC walks it at every cycle.
		header = nil
	}
	s.keep(t, buffered{subject: ev.msg.Subject(), token: ev.token, data: ev.msg.Data(), header: header, seq: ev.seq, time: ev.time}, ev.pending)
}

// bufferStored is buffer for an event read from the stream.
func (s *Snapshotter) bufferStored(t *tally, sm storedMsg, pending uint64) {
	s.keep(t, buffered{subject: sm.Subject, token: s.token(sm.Subject), data: sm.Data, header: sm.Header, seq: sm.Seq, time: sm.Time.UnixNano()}, pending)
}

// keep appends e to the actor's tail (see buffer); pending is how far
// behind the consumer was when it came.
func (s *Snapshotter) keep(t *tally, e buffered, pending uint64) {
	if t.tail == nil {
		return
	}
	if t.tail == emptyTail {
		// e is the first event after the placement. Room for the events
		// up to the next placement on counts or, while the consumer keeps
		// up, to the next fold made ahead.
		n := s.cfg.Strategy.Next(t.snap) - t.version + 1
		if t.snap > 0 && pending < aheadBacklog {
			n = min(n, aheadEvents)
		}
		t.tail = newTail(e.seq, n)
	}
	size := eventSize(e.subject, e.data, e.header)
	if s.stats.Buffered.Load()+size > s.cfg.BufferBytes {
		s.stats.Evictions.Add(1)
		s.release(t.tail)
		t.tail = nil
		return
	}
	t.tail.events = append(t.tail.events, e)
	t.tail.bytes += size
	s.stats.Buffered.Add(size)
}

// eventSize is what an event costs in a tail or a catch-up window.
func eventSize(subject string, data []byte, header nats.Header) int64 {
	size := int64(len(data)+len(subject)) + bufferedOverhead
	for k, vs := range header {
		size += int64(len(k))
		for _, v := range vs {
			size += int64(len(v))
		}
	}
	return size
}

// newTail makes a tail whose first event after its actor's placement is at
// stream sequence from, with room for n events (those up to the actor's
// next placement on counts, or to its next fold made ahead), so that it is
// not copied as it grows.
func newTail(from, n uint64) *buffer {
	return &buffer{events: make([]buffered, 0, min(n, maxPrealloc)), from: from}
}

// holds reports whether the event at stream sequence seq, one of the
// tail's actor's, was counted after the actor's last placement: the tail
// held it, or holds it (the actor's last event counted is at lastSeq). A
// nil tail (not kept) holds nothing.
func (b *buffer) holds(seq, lastSeq uint64) bool {
	return b != nil && b.from != 0 && b.from <= seq && seq <= lastSeq
}

// release gives a tail's bytes back to the budget.
func (s *Snapshotter) release(b *buffer) {
	if b != nil && b.bytes > 0 {
		s.stats.Buffered.Add(-b.bytes)
		b.bytes = 0
	}
}

// eventsFrom turns buffered events into reducer events numbered from
// fromVersion+1, exactly as toEvent does for events read from the stream.
func eventsFrom(key string, b []buffered, fromVersion uint64) []scripting.Event {
	out := make([]scripting.Event, len(b))
	for i, e := range b {
		typ := givenType(e.token, e.header)
		out[i] = scripting.Event{
			Actor:        key,
			Type:         typ,
			TypeFromData: typ == "",
			Subject:      e.subject,
			Data:         e.data,
			Seq:          e.seq,
			Version:      fromVersion + uint64(i) + 1,
			Time:         time.Unix(0, e.time).UTC(),
			Headers:      e.header,
		}
	}
	return out
}
